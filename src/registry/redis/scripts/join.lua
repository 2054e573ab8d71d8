-- join-room: puts a socket in a room (creating it within MAX_ROOMS) or in its lobby, then
-- takes it out of the room (or lobby) it was in. Refused, in this order: a locked room, a
-- password room without the proof that the password was checked (the room's stored hash,
-- which the caller gets back to check against and passes again), a full room, a full lobby;
-- the socket then stays where it was. Joining the room one is in (or waits for) changes
-- nothing. Publishes the new room's opening (if it is new), the departure from the old room
-- (a switch), then either the joiner's welcome (to its own instance only: it carries the
-- chat history), the host change of a host by token, and the join; or its waiting and the
-- request to the host.
-- ARGV: 2 socket id, 3 room id, 4 participant JSON, 5 created (ISO, if the room is new),
--       6 max participants, 7 max rooms (0 = no cap), 8 empty-room TTL ms, 9 instance,
--       10 ticket ('' for none), 11 creator address (of the room, if it is new),
--       12 max rooms per address (0 = no cap), 13 '1' if the creator may make a room,
--       14 the password hash the caller checked the joiner's password against ('' if none),
--       15 '1' if the joiner becomes the host (a JWT host claim: first in join order)
local sid, id, participant, created = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_participants, max_rooms = tonumber(ARGV[6]), tonumber(ARGV[7])
local empty_ttl_ms, instance, ticket = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local creator, max_per_address, may_create = ARGV[11], tonumber(ARGV[12]), ARGV[13] == '1'
local checked = ARGV[14]
local as_host = ARGV[15] == '1'
local decoded, joiner = pcall(cjson.decode, participant)
if not decoded or type(joiner) ~= 'table' then
  return redis.error_reply('malformed participant for ' .. sid)
end

local current = redis.call('HGET', MEMBER, sid)
if current == id and redis.call('HEXISTS', people_key(id), sid) == 1 then
  return '{"status":"already_in","joined":' .. joined_json(id, false) .. '}'
end
local waits_in = redis.call('HGET', WAITING, sid)
if waits_in == id and redis.call('HEXISTS', waiters_key(id), sid) == 1 then
  return '{"status":"already_waiting","roomId":' .. cjson.encode(id) .. '}'
end

local exists = redis.call('ZSCORE', ROOMS, id)
local lobby = false
if not exists then
  if not may_create then return status('needs_new_room') end
  local refused = room_cap(creator, max_rooms, max_per_address)
  if refused then return refused end
else
  local f = redis.call('HMGET', room_key(id), 'locked', 'password', 'lobby')
  if f[1] == '1' then return status('room_locked') end
  if f[2] and f[2] ~= checked then
    return '{"status":"password","hash":' .. cjson.encode(f[2]) .. '}'
  end
  -- A host by token is never held: it is the one who admits.
  lobby = f[3] == '1' and redis.call('LLEN', order_key(id)) > 0 and not as_host
end
if redis.call('LLEN', order_key(id)) >= max_participants then
  return status('room_full')
end
if lobby and redis.call('LLEN', queue_key(id)) >= MAX_WAITERS then
  return status('lobby_full')
end

-- An instance holding sockets must be known to the reapers even before its first heartbeat
-- (and, as a room's webhook owner, be known alive).
redis.call('ZADD', INSTANCES, 'NX', ms(now_ms()), instance)

if not exists then
  make_room(id, created, creator, instance)
  redis.call('ZADD', ROOMS, '+inf', id)
  publish_room(id, instance, '', { opened_event(id, created) })
end

if waits_in then
  local cancelled, waited = cancel_waiter(sid)
  if cancelled then publish_room(waited, instance, '', { cancelled }) end
end
local left = 'null'
if current and current ~= id then
  local extras
  left, extras = remove_participant(current, sid, empty_ttl_ms)
  left = left or 'null'
  if left ~= 'null' then
    local events = { left_event(left, 'switched') }
    for _, e in ipairs(extras) do events[#events + 1] = e end
    publish_room(current, instance, '', events)
  end
end
redis.call('HDEL', MEMBER, sid)
redis.call('SADD', on_key(instance), sid)

if lobby then
  local host = host_of(id)
  redis.call('RPUSH', queue_key(id), sid)
  redis.call('HSET', waiters_key(id), sid, participant)
  redis.call('HSET', WAITING, sid, id)
  publish_room(id, instance, ticket, {
    '{"t":"waiting","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid) .. '}',
    knock_event(id, host, participant) })
  return '{"status":"waiting","left":' .. left .. ',"roomId":' .. cjson.encode(id) .. '}'
end

local previous_host = host_of(id)
if as_host or redis.call('LLEN', order_key(id)) == 0 then
  redis.call('HSET', room_key(id), 'host', sid)
end
if as_host then
  redis.call('LPUSH', order_key(id), sid)
else
  redis.call('RPUSH', order_key(id), sid)
end
seat(id, sid, joiner, participant)
redis.call('ZADD', ROOMS, '+inf', id)
redis.call('HSET', MEMBER, sid, id)

local outcome = joined_json(id, not exists)
publish_to(instance, instance, {
  '{"t":"welcome","socket":' .. cjson.encode(sid) .. ',"joined":' .. outcome .. '}' })
local events = {}
if as_host and previous_host and previous_host ~= sid then
  events[#events + 1] = '{"t":"host","roomId":' .. cjson.encode(id) .. ',"host":'
    .. cjson.encode(sid) .. ',"previous":' .. cjson.encode(previous_host) .. '}'
  for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
    local w = redis.call('HGET', waiters_key(id), waiter)
    if w then events[#events + 1] = knock_event(id, sid, w) end
  end
end
events[#events + 1] = joined_event(id, sid)
publish_room(id, instance, ticket, events)
return '{"status":"joined","left":' .. left .. ',"joined":' .. outcome .. '}'
