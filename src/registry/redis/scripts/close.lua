-- Operator close: removes a room with its participants, lobby and history, publishes it
-- (its waiters refused), and returns who was in it (join order), or 'null' if there was no
-- such room. Sockets that have already moved on to another room keep it.
-- ARGV: 2 room id, 3 instance, 4 ticket ('' for none)
local id = ARGV[2]

if not redis.call('ZSCORE', ROOMS, id) then return 'null' end
local list, denied = close_room(id)
local events = {
  '{"t":"closed","roomId":' .. cjson.encode(id) .. ',"participants":' .. json_array(list)
    .. ',"endedBy":null}' }
for _, e in ipairs(denied) do events[#events + 1] = e end
publish_room(id, ARGV[3], ARGV[4], events)
return json_array(list)
