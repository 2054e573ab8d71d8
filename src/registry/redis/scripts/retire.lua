-- An instance shutting down takes out the participants it still holds (those whose
-- disconnects did not finish in time), and its waiters, and leaves the cluster. Returns
-- the Lefts.
-- ARGV: 2 this instance, 3 empty-room TTL ms
local lefts, events = {}, {}
remove_instance(ARGV[2], tonumber(ARGV[3]), lefts, events)
if #events > 0 then publish(ARGV[2], '', events) end
return json_array(lefts)
