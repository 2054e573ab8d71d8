-- end-room (host only): removes the room at once with its participants, lobby and history,
-- whatever the empty-room TTL; publishes it (everyone but the host is told, waiters are
-- refused).
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none)
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
local list, denied = close_room(id)
local events = {
  '{"t":"closed","roomId":' .. cjson.encode(id) .. ',"participants":' .. json_array(list)
    .. ',"endedBy":' .. cjson.encode(sid) .. '}' }
for _, e in ipairs(denied) do events[#events + 1] = e end
publish_room(id, instance, ticket, events)
return '{"status":"done","roomId":' .. cjson.encode(id) .. ',"hasPassword":false}'
