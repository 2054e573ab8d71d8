-- create-room: a new empty room (with a password, if given) under a fresh id, unless the id is taken or a room cap is
-- reached (MAX_ROOMS, the creator's MAX_ROOMS_PER_ADDRESS). It expires UNUSED_ROOM_TTL after
-- now unless someone joins.
-- ARGV: 2 room id, 3 created (ISO), 4 unused TTL ms, 5 max rooms (0 = no cap), 6 creator
--       address, 7 max rooms per address (0 = no cap), 8 password hash ('' for none)
local id, created = ARGV[2], ARGV[3]
local unused_ttl_ms, max_rooms = tonumber(ARGV[4]), tonumber(ARGV[5])
local creator, max_per_address = ARGV[6], tonumber(ARGV[7])

if redis.call('ZSCORE', ROOMS, id) then return status('taken') end
local refused = room_cap(creator, max_rooms, max_per_address)
if refused then return refused end
make_room(id, created, creator)
if ARGV[8] ~= '' then redis.call('HSET', room_key(id), 'password', ARGV[8]) end
redis.call('ZADD', ROOMS, ms(now_ms() + unused_ttl_ms), id)
return status('created')
