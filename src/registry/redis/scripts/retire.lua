-- An instance shutting down takes out the participants it still holds (those whose
-- disconnects did not finish in time) and leaves the cluster. Returns their Lefts.
-- ARGV: 2 this instance, 3 empty-room TTL ms
local lefts = {}
remove_instance(ARGV[2], tonumber(ARGV[3]), lefts)
if #lefts > 0 then
  local events = {}
  for i, left in ipairs(lefts) do events[i] = left_event(left, 'removed') end
  publish(ARGV[2], '', events)
end
return json_array(lefts)
