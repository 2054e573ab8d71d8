-- create-room: a new empty room under a fresh id, unless the id is taken or MAX_ROOMS is
-- reached. It expires UNUSED_ROOM_TTL after now unless someone joins.
-- ARGV: 2 room id, 3 created (ISO), 4 unused TTL ms, 5 max rooms (0 = no cap)
local id, created = ARGV[2], ARGV[3]
local unused_ttl_ms, max_rooms = tonumber(ARGV[4]), tonumber(ARGV[5])

if redis.call('ZSCORE', ROOMS, id) then return status('taken') end
if max_rooms > 0 and redis.call('ZCARD', ROOMS) >= max_rooms then
  return status('too_many_rooms')
end
redis.call('HSET', room_key(id), 'created', created)
redis.call('ZADD', ROOMS, ms(now_ms() + unused_ttl_ms), id)
return status('created')
