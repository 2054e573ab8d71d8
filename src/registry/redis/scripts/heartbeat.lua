-- Records an instance as alive now, by Redis' clock (the one the reapers compare with), and
-- tells it whether the others declared it dead meanwhile (it was cut off from Redis longer
-- than the liveness timeout while still running): then its participants are gone from the
-- registry and it must drop its sockets, whose clients reconnect and join again.
-- ARGV: 2 instance id
redis.call('ZADD', INSTANCES, ms(now_ms()), ARGV[2])
if redis.call('DEL', reaped_key(ARGV[2])) == 1 then
  return 'true'
end
return 'false'
