-- mute-all (host only): mutes every participant but the host whose audio is on, each as its
-- own media change would; publishes the toggles, then the room's list.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none)
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
local events = {}
for _, other in ipairs(redis.call('LRANGE', order_key(id), 0, -1)) do
  local stored = other ~= sid and redis.call('HGET', people_key(id), other)
  if stored then
    local ok, p = pcall(cjson.decode, stored)
    if ok and type(p) == 'table' and not p.audioMuted then
      p.audioMuted = true
      local encoded = cjson.encode(p)
      redis.call('HSET', people_key(id), other, encoded)
      events[#events + 1] = toggled_event(id, encoded, '{"audio":false}')
    end
  end
end
events[#events + 1] = list_event(id)
publish_room(id, instance, ticket, events)
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
