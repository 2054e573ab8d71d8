-- transfer-host (host only): makes another participant the host; publishes host-changed,
-- the room's list, then the lobby's waiters again for the new host.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 target socket id
local sid, instance, ticket, target = ARGV[2], ARGV[5], ARGV[6], ARGV[7]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
if redis.call('HEXISTS', people_key(id), target) == 0 then
  return status('target_not_in_room')
end
if target == sid then return status('transfer_self') end
redis.call('HSET', room_key(id), 'host', target)
local events = {
  '{"t":"host","roomId":' .. cjson.encode(id) .. ',"host":' .. cjson.encode(target)
    .. ',"previous":' .. cjson.encode(sid) .. '}',
  list_event(id) }
for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
  local w = redis.call('HGET', waiters_key(id), waiter)
  if w then events[#events + 1] = knock_event(id, target, w) end
end
publish_room(id, instance, ticket, events)
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
