-- chat-message: records a message under the sender's registered name and avatar, keeping the
-- last CHAT_HISTORY_LIMIT messages of at most CHAT_HISTORY_BYTES (0 = none kept, the message
-- is still delivered), all rooms within CHAT_HISTORY_TOTAL_BYTES (the history of empty rooms
-- goes first), and publishes it.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 text, 6 message id, 7 timestamp
--       (ISO), 8 history limit, 9 instance, 10 ticket ('' for none), 11 bytes per room,
--       12 bytes in all
local sid, text, message_id, timestamp = ARGV[2], ARGV[5], ARGV[6], ARGV[7]
local limit, instance, ticket = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local max_bytes, total_budget = tonumber(ARGV[11]), tonumber(ARGV[12])

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
  -- Each write's answer is used (the new length, the bytes kept), so nothing is read again.
  local key = chat_key(id)
  local length = redis.call('RPUSH', key, message)
  local grown = #message
  if length > limit then
    for _, old in ipairs(redis.call('LPOP', key, length - limit)) do grown = grown - #old end
  end
  local bytes = redis.call('HINCRBY', room_key(id), 'chatbytes', grown)
  local total = redis.call('INCRBY', CHATBYTES, grown)
  while bytes > max_bytes and bytes > 0 do
    local freed = drop_oldest_message(id)
    if freed == 0 then break end
    bytes = bytes - freed
    total = total - freed
  end
  if total > total_budget then
    local function over() return tonumber(redis.call('GET', CHATBYTES) or '0') > total_budget end
    -- Rooms nobody is in have a deadline: the earliest emptied go first.
    for _, empty in ipairs(redis.call('ZRANGEBYSCORE', ROOMS, '-inf', '(+inf')) do
      if not over() then break end
      if empty ~= id and redis.call('LLEN', order_key(empty)) == 0 then clear_history(empty) end
    end
    while over() and drop_oldest_message(id) > 0 do end
  end
end
publish(instance, ticket, {
  '{"t":"said","roomId":' .. cjson.encode(id) .. ',"message":' .. message .. '}' })
return '{"status":"said","roomId":' .. cjson.encode(id) .. ',"message":' .. message .. '}'
