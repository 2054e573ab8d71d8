-- chat-message: records a message under the sender's registered name and avatar, keeping the
-- last CHAT_HISTORY_LIMIT (0 = none kept, the message is still delivered), and publishes it.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 text, 6 message id, 7 timestamp
--       (ISO), 8 history limit, 9 instance, 10 ticket ('' for none)
local sid, text, message_id, timestamp = ARGV[2], ARGV[5], ARGV[6], ARGV[7]
local limit, instance, ticket = tonumber(ARGV[8]), ARGV[9], ARGV[10]

local id, sender = sender_in_room(sid, ARGV[3], ARGV[4])
if not id then return sender end

local message = cjson.encode({
  id = message_id,
  senderId = sid,
  userName = sender.userName,
  message = text,
  timestamp = timestamp,
  userAvatar = sender.avatar,
})
if limit > 0 then
  redis.call('RPUSH', chat_key(id), message)
  redis.call('LTRIM', chat_key(id), -limit, -1)
end
publish(instance, ticket, {
  '{"t":"said","roomId":' .. cjson.encode(id) .. ',"message":' .. message .. '}' })
return '{"status":"said","roomId":' .. cjson.encode(id) .. ',"message":' .. message .. '}'
