-- Operator close: removes a room with its participants and history, publishes it, and
-- returns who was in it (join order), or 'null' if there was no such room. Sockets that have
-- already moved on to another room keep it.
-- ARGV: 2 room id, 3 instance, 4 ticket ('' for none)
local id = ARGV[2]

if not redis.call('ZSCORE', ROOMS, id) then return 'null' end
local list = people(id)
for _, stored in ipairs(list) do
  local ok, p = pcall(cjson.decode, stored)
  if ok and type(p) == 'table' and type(p.id) == 'string' then
    if redis.call('HGET', MEMBER, p.id) == id then redis.call('HDEL', MEMBER, p.id) end
    if type(p.instance) == 'string' then redis.call('SREM', on_key(p.instance), p.id) end
  end
end
delete_room(id)
publish_room(id, ARGV[3], ARGV[4], {
  '{"t":"closed","roomId":' .. cjson.encode(id) .. ',"participants":' .. json_array(list) .. '}' })
return json_array(list)
