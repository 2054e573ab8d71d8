-- Records an instance as alive now, by Redis' clock (the one the reapers compare with).
-- ARGV: 2 instance id
redis.call('ZADD', INSTANCES, ms(now_ms()), ARGV[2])
return 'null'
