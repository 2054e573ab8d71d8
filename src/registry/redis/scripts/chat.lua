-- chat-messages: records a batch of chat messages (those an instance gathered while its
-- previous batch was in flight), each under its sender's registered name and avatar, keeping
-- the last CHAT_HISTORY_LIMIT messages of at most CHAT_HISTORY_BYTES per room (0 = none kept,
-- the message is still delivered), all rooms within CHAT_HISTORY_TOTAL_BYTES (the history of
-- empty rooms goes first), and publishes them as one message: an array of batches, one per
-- message, so each keeps its own ticket and the room orders stay those of the messages.
-- One call for many messages is what makes cluster chat cheap: the script's prelude, the
-- request, the reply and the publication to every instance are paid once per batch.
-- ARGV: 2 instance, 3 history limit, 4 bytes per room, 5 bytes in all, 6 messages; then
--       4 per message: socket id; '' or '=' and the room it named; the message's JSON fields
--       but the sender's (`"id":…,"senderId":…,"message":…,"timestamp":…`, made by the
--       instance); ticket ('' for none)
-- Reply: three strings per message, in order: 'said', the room id, the sender's fields as
-- JSON members (`"userName":…,"userAvatar":…` or `null`); or 'not_in_room' and two empty
-- strings; or 'malformed', what is malformed and an empty string.
local instance, limit = ARGV[2], tonumber(ARGV[3])
local max_bytes, total_budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local count = tonumber(ARGV[6])

-- Strings are built as few times as possible: Redis' Lua hashes every byte of every string
-- it makes, and that hashing was a quarter of this script's time.
local origin = '{"origin":{"instance":' .. cjson.encode(instance) .. ',"ticket":'
-- The batch each message is published in, as pieces, 7 per message.
local replies, published = {}, {}
local written = {} -- the rooms this batch added history to, in order
local grown_in_all = 0
for i = 0, count - 1 do
  local base = 7 + i * 4
  local sid, named, fields, ticket = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local id, sender, refusal
  if named == '' then
    id = redis.call('HGET', MEMBER, sid)
  else
    id = string.sub(named, 2)
  end
  if id then
    -- Listed in the room's senders exactly while listed in its people (see `seat`).
    sender = redis.call('HGET', senders_key(id), sid)
    if sender and string.sub(sender, 1, 12) ~= '"userName":"' then
      -- Not what `sender_fields` writes: published, it would spoil the whole batch's JSON.
      sender, refusal = nil, redis.error_reply('malformed chat sender ' .. sid .. ' in room ' .. id)
    elseif not sender then
      -- Seated before senders were kept (a server upgraded under a live room), or not in
      -- the room: the participant itself decides, and its fields are kept from now on.
      local found, participant = sender_in_room(sid, '1', id)
      if found then
        sender = sender_fields(participant)
        if sender then
          redis.call('HSET', senders_key(id), sid, sender)
        else
          refusal = redis.error_reply('participant ' .. sid .. ' has no name')
        end
      elseif type(participant) == 'table' then
        refusal = participant
      end
    end
  end
  if not sender then
    -- Refused, or a malformed participant in the store (an error for this message alone:
    -- the batch's other messages are made and published all the same).
    if refusal then
      replies[#replies + 1] = 'malformed'
      replies[#replies + 1] = tostring(refusal.err)
    else
      replies[#replies + 1] = 'not_in_room'
      replies[#replies + 1] = ''
    end
    replies[#replies + 1] = ''
  else
    local message = '{' .. fields .. ',' .. sender .. '}'
    if limit > 0 then
      -- Each write's answer is used (the new length, the bytes kept), so nothing is read
      -- again; the total over all rooms is written once, at the end.
      local key = chat_key(id)
      local length = redis.call('RPUSH', key, message)
      local grown = #message
      if length > limit then
        for _, old in ipairs(redis.call('LPOP', key, length - limit)) do grown = grown - #old end
      end
      local bytes = redis.call('HINCRBY', room_key(id), 'chatbytes', grown)
      grown_in_all = grown_in_all + grown
      written[#written + 1] = id
      while bytes > max_bytes and bytes > 0 do
        -- drop_oldest_message takes its bytes off the total itself.
        local freed = drop_oldest_message(id)
        if freed == 0 then break end
        bytes = bytes - freed
      end
    end
    replies[#replies + 1] = 'said'
    replies[#replies + 1] = id
    replies[#replies + 1] = sender
    if ticket == '' then ticket = 'null' end
    -- The pieces of this message's batch; joined once, at the end, into what is published.
    local n = #published
    published[n + 1] = origin
    published[n + 2] = ticket
    published[n + 3] = '},"events":[{"t":"said","roomId":'
    published[n + 4] = cjson.encode(id)
    published[n + 5] = ',"message":'
    published[n + 6] = message
    published[n + 7] = '}]},'
  end
end

if grown_in_all ~= 0 then
  local total = redis.call('INCRBY', CHATBYTES, grown_in_all)
  if total > total_budget then
    local function over() return tonumber(redis.call('GET', CHATBYTES) or '0') > total_budget end
    -- Rooms nobody is in have a deadline: the earliest emptied go first; then the oldest
    -- messages of the rooms this batch wrote to, in turn.
    for _, empty in ipairs(redis.call('ZRANGEBYSCORE', ROOMS, '-inf', '(+inf')) do
      if not over() then break end
      if redis.call('LLEN', order_key(empty)) == 0 then clear_history(empty) end
    end
    local dropped = true
    while over() and dropped do
      dropped = false
      for _, id in ipairs(written) do
        if over() then break end
        if drop_oldest_message(id) > 0 then dropped = true end
      end
    end
  end
end

if #published > 0 then
  published[1] = '[' .. origin
  published[#published] = '}]}]'
  redis.call('PUBLISH', EVENTS, table.concat(published))
end
return replies
