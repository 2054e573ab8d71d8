-- An instance shutting down takes out the participants it still holds (those whose
-- disconnects did not finish in time) and leaves the cluster. Publishes (one batch per room
-- left, for its webhook owner, which is another instance if it was this one) and returns
-- their Lefts.
-- ARGV: 2 this instance, 3 empty-room TTL ms
local lefts, rooms = {}, {}
remove_instance(ARGV[2], tonumber(ARGV[3]), lefts, rooms)
for i, left in ipairs(lefts) do
  publish_room(rooms[i], ARGV[2], '', { left_event(left, 'removed') })
end
return json_array(lefts)
