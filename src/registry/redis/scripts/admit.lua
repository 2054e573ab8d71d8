-- admit-participant (host only): moves a waiter of the lobby into the room, exactly as a
-- direct join (its welcome to its instance, then the others' news of it); a full room
-- refuses and the waiter stays.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 waiter socket id, 8 max participants, 9 now (ISO)
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local waiter, max_participants, now_iso = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
if redis.call('HGET', WAITING, waiter) ~= id
  or redis.call('HEXISTS', waiters_key(id), waiter) == 0 then
  return status('not_waiting')
end
if redis.call('LLEN', order_key(id)) >= max_participants then return status('room_full') end
local welcome, holder_instance, joined = admit(id, take_waiter(id, waiter), now_iso)
if not welcome then return status('not_waiting') end
if holder_instance then publish_to(holder_instance, instance, { welcome }) end
publish_room(id, instance, ticket, { joined })
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
