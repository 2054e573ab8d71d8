-- create-room: a new empty room (with a password, if given) under a fresh id, unless the id is taken or a room cap is
-- reached (MAX_ROOMS, the creator's MAX_ROOMS_PER_ADDRESS). It expires UNUSED_ROOM_TTL after
-- now unless someone joins. Publishes its opening.
-- ARGV: 2 room id, 3 created (ISO), 4 unused TTL ms, 5 max rooms (0 = no cap), 6 creator
--       address, 7 max rooms per address (0 = no cap), 8 instance, 9 password hash ('' for none)
local id, created = ARGV[2], ARGV[3]
local unused_ttl_ms, max_rooms = tonumber(ARGV[4]), tonumber(ARGV[5])
local creator, max_per_address, instance = ARGV[6], tonumber(ARGV[7]), ARGV[8]

if redis.call('ZSCORE', ROOMS, id) then return status('taken') end
local refused = room_cap(creator, max_rooms, max_per_address)
if refused then return refused end
make_room(id, created, creator, instance)
if ARGV[9] ~= '' then redis.call('HSET', room_key(id), 'password', ARGV[9]) end
redis.call('ZADD', ROOMS, ms(now_ms() + unused_ttl_ms), id)
-- The room's webhook owner must be known alive even before its first heartbeat.
redis.call('ZADD', INSTANCES, 'NX', ms(now_ms()), instance)
publish_room(id, instance, '', { opened_event(id, created) })
return status('created')
