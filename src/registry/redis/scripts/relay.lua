-- Signaling relays: the sender's room, if the target is a participant of it too.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 target socket id
local id = current_room(ARGV[2], ARGV[3], ARGV[4])
if not id then return status('not_in_room') end
if redis.call('HEXISTS', people_key(id), ARGV[5]) == 0 then
  return status('target_not_in_room')
end
return '{"status":"ok","roomId":' .. cjson.encode(id) .. '}'
