-- leave-room from a socket waiting in a lobby: gives up its place there and tells the host.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none)
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local id = redis.call('HGET', WAITING, sid)
if not id then return status('none') end
if ARGV[3] == '1' and ARGV[4] ~= id then return status('not_in_room') end
local cancelled = cancel_waiter(sid)
if not cancelled then return status('none') end
publish_room(id, instance, ticket, { cancelled })
return '{"status":"withdrawn","roomId":' .. cjson.encode(id) .. '}'
