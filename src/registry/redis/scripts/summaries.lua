-- Every room with its host and counts, for operators.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', ROOMS, 0, -1)) do
  local room = room_json(id, 'host')
  if room then out[#out + 1] = room end
end
return json_array(out)
