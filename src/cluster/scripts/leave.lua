-- leave-room or disconnect: takes a socket out of its room; 'null' if it was in none.
-- ARGV: 2 socket id, 3 empty-room TTL ms
local sid, empty_ttl_ms = ARGV[2], tonumber(ARGV[3])

local id = redis.call('HGET', MEMBER, sid)
if not id then return 'null' end
redis.call('HDEL', MEMBER, sid)
return remove_participant(id, sid, empty_ttl_ms) or 'null'
