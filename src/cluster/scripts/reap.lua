-- Claims every other instance whose last heartbeat is older than the cutoff (removing it
-- from INSTANCES, so exactly one survivor reaps it) and takes its participants out of their
-- rooms as leaves would, room by room in join order. Returns their Lefts.
-- ARGV: 2 this instance, 3 dead after (ms), 4 empty-room TTL ms
local me, dead_after_ms, empty_ttl_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local cutoff = ms(now_ms() - dead_after_ms)
local lefts = {}
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', INSTANCES, '-inf', '(' .. cutoff)) do
  if instance ~= me then
    redis.call('ZREM', INSTANCES, instance)
    local held = {}
    for _, sid in ipairs(redis.call('SMEMBERS', on_key(instance))) do
      local id = redis.call('HGET', MEMBER, sid)
      if id then
        local position = redis.call('LPOS', order_key(id), sid) or -1
        held[#held + 1] = { id = id, position = position, sid = sid }
      end
    end
    table.sort(held, function(a, b)
      if a.id ~= b.id then return a.id < b.id end
      return a.position < b.position
    end)
    for _, h in ipairs(held) do
      redis.call('HDEL', MEMBER, h.sid)
      local left = remove_participant(h.id, h.sid, empty_ttl_ms)
      if left then lefts[#lefts + 1] = left end
    end
    redis.call('DEL', on_key(instance))
    redis.call('SET', reaped_key(instance), '1', 'EX', 3600)
  end
end
return json_array(lefts)
