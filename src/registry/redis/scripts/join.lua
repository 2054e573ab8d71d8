-- join-room: puts a socket in a room (creating it within MAX_ROOMS), then takes it out of the
-- room it was in. A full room refuses and the socket stays where it was; joining the room
-- one is in changes nothing. Publishes the new room's opening (if it is new), the departure
-- from the old room (a switch), the joiner's welcome (to its own instance only: it carries
-- the chat history), then the join.
-- ARGV: 2 socket id, 3 room id, 4 participant JSON, 5 created (ISO, if the room is new),
--       6 max participants, 7 max rooms (0 = no cap), 8 empty-room TTL ms, 9 instance,
--       10 ticket ('' for none), 11 creator address (of the room, if it is new),
--       12 max rooms per address (0 = no cap), 13 '1' if the creator may make a room,
--       14 '1' if the joiner becomes the host (first in join order)
local sid, id, participant, created = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_participants, max_rooms = tonumber(ARGV[6]), tonumber(ARGV[7])
local empty_ttl_ms, instance, ticket = tonumber(ARGV[8]), ARGV[9], ARGV[10]
local creator, max_per_address, may_create = ARGV[11], tonumber(ARGV[12]), ARGV[13] == '1'
local as_host = ARGV[14] == '1'

local function joined(created_room)
  local messages = redis.call('LRANGE', chat_key(id), 0, -1)
  return '{"roomId":' .. cjson.encode(id)
    .. ',"participants":' .. json_array(people(id))
    .. ',"messages":' .. json_array(messages)
    .. ',"createdRoom":' .. tostring(created_room) .. '}'
end

local current = redis.call('HGET', MEMBER, sid)
if current == id and redis.call('HEXISTS', people_key(id), sid) == 1 then
  return '{"status":"already_in","joined":' .. joined(false) .. '}'
end

local exists = redis.call('ZSCORE', ROOMS, id)
if not exists then
  if not may_create then return status('needs_new_room') end
  local refused = room_cap(creator, max_rooms, max_per_address)
  if refused then return refused end
end
if redis.call('LLEN', order_key(id)) >= max_participants then
  return status('room_full')
end

-- An instance holding sockets must be known to the reapers even before its first heartbeat
-- (and, as a room's webhook owner, be known alive).
redis.call('ZADD', INSTANCES, 'NX', ms(now_ms()), instance)

if not exists then
  make_room(id, created, creator, instance)
  publish_room(id, instance, '', { opened_event(id, created) })
end

local left = 'null'
if current and current ~= id then
  left = remove_participant(current, sid, empty_ttl_ms) or 'null'
  if left ~= 'null' then publish_room(current, instance, '', { left_event(left, 'switched') }) end
end

if as_host then
  redis.call('LPUSH', order_key(id), sid)
else
  redis.call('RPUSH', order_key(id), sid)
end
redis.call('HSET', people_key(id), sid, participant)
redis.call('ZADD', ROOMS, '+inf', id)
redis.call('HSET', MEMBER, sid, id)
redis.call('SADD', on_key(instance), sid)

local outcome = joined(not exists)
publish_to(instance, instance, {
  '{"t":"welcome","socket":' .. cjson.encode(sid) .. ',"joined":' .. outcome .. '}' })
publish_room(id, instance, ticket, {
  '{"t":"joined","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',"participants":' .. json_array(people(id)) .. '}' })
return '{"status":"joined","left":' .. left .. ',"joined":' .. outcome .. '}'
