-- Removes the rooms whose empty or unused deadline has passed, publishing each removal;
-- returns their ids. Any instance may run it: the deadlines live in Redis, and each room is
-- removed (and announced) once. A batch at a time keeps each run short; the rest go on the
-- next run.
-- ARGV: 2 batch size, 3 instance
local out = {}
local due = redis.call('ZRANGEBYSCORE', ROOMS, '-inf', ms(now_ms()), 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  if redis.call('LLEN', order_key(id)) == 0 then
    delete_room(id)
    publish_room(id, ARGV[3], '', {})
    out[#out + 1] = cjson.encode(id)
  else
    -- Someone is in it: it must not expire (repairs a deadline left by an interrupted writer).
    redis.call('ZADD', ROOMS, '+inf', id)
  end
end
return json_array(out)
