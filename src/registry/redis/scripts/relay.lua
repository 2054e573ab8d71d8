-- Signaling relays: the sender's room, if the target is a participant of it too. With a
-- relay to forward (the target's socket is on another instance), publishes it to the
-- instance holding the target; the body is the sender's JSON, passed through untouched.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 target socket id,
--       6 '1' to forward, 7 kind, 8 body JSON ('' for none), 9 instance
local sid, target = ARGV[2], ARGV[5]
local id = current_room(sid, ARGV[3], ARGV[4])
if not id then return status('not_in_room') end
local stored = redis.call('HGET', people_key(id), target)
if not stored then return status('target_not_in_room') end
if ARGV[6] == '1' then
  local holder_instance = holder(stored)
  if holder_instance then
    local body = ARGV[8]
    if body == '' then body = 'null' end
    publish_to(holder_instance, ARGV[9], {
      '{"t":"relay","roomId":' .. cjson.encode(id) .. ',"sender":' .. cjson.encode(sid)
        .. ',"target":' .. cjson.encode(target) .. ',"kind":' .. cjson.encode(ARGV[7])
        .. ',"body":' .. body .. '}' })
  end
end
return '{"status":"ok","roomId":' .. cjson.encode(id) .. '}'
