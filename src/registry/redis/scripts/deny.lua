-- deny-participant (host only): refuses a waiter of the lobby; publishes its refusal.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 waiter socket id, 8 reason given? ('1'/'0'), 9 reason
local sid, instance, ticket, waiter = ARGV[2], ARGV[5], ARGV[6], ARGV[7]
local reason = nil
if ARGV[8] == '1' then reason = ARGV[9] end
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
if redis.call('HGET', WAITING, waiter) ~= id then return status('not_waiting') end
local stored = take_waiter(id, waiter)
if not stored then return status('not_waiting') end
release_waiter(waiter, stored)
publish_room(id, instance, ticket, { denied_event(id, waiter, 'denied', reason) })
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
