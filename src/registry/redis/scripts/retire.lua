-- An instance shutting down takes out the participants it still holds (those whose
-- disconnects did not finish in time), and its waiters, and leaves the cluster. Publishes
-- (one batch per room, for its webhook owner, which is another instance if it was this one)
-- and returns the Lefts.
-- ARGV: 2 this instance, 3 empty-room TTL ms
local lefts, batches = {}, {}
remove_instance(ARGV[2], tonumber(ARGV[3]), lefts, batches)
for _, b in ipairs(batches) do publish_room(b.id, ARGV[2], '', b.events) end
return json_array(lefts)
