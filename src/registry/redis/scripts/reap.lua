-- Claims every other instance whose last heartbeat is older than the cutoff (removing it
-- from INSTANCES, so exactly one survivor reaps it) and takes its participants out of their
-- rooms as leaves would, room by room in join order (its waiters out of their lobbies).
-- Publishes (one batch per room, for its webhook owner) and returns the Lefts.
-- ARGV: 2 this instance, 3 dead after (ms), 4 empty-room TTL ms
local me, dead_after_ms, empty_ttl_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local cutoff = ms(now_ms() - dead_after_ms)
local lefts, batches = {}, {}
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', INSTANCES, '-inf', '(' .. cutoff)) do
  if instance ~= me then
    remove_instance(instance, empty_ttl_ms, lefts, batches)
    redis.call('SET', reaped_key(instance), '1', 'EX', 3600)
  end
end
for _, b in ipairs(batches) do publish_room(b.id, me, '', b.events) end
return json_array(lefts)
