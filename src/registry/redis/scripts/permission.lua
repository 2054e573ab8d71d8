-- admin-toggle-mic-permission, admin-toggle-camera-permission,
-- admin-toggle-screen-share-permission (host only): sets a participant's permission flag;
-- withdrawing it turns the media it covers off as the participant's own change would.
-- Publishes the toggle (if any), the target's permission-changed and the room's list.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 target socket id, 8 permission ('mic', 'camera' or 'screen'), 9 allowed ('1'/'0')
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local target, permission, allowed = ARGV[7], ARGV[8], ARGV[9] == '1'
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
local stored = redis.call('HGET', people_key(id), target)
if not stored then return status('target_not_in_room') end
local ok, p = pcall(cjson.decode, stored)
if not ok or type(p) ~= 'table' then
  return redis.error_reply('malformed participant ' .. target .. ' in room ' .. id)
end

local change = nil
if permission == 'mic' then
  p.canUseMic = allowed
  if not allowed and not p.audioMuted then
    p.audioMuted = true
    change = '{"audio":false}'
  end
elseif permission == 'camera' then
  p.canUseCamera = allowed
  if not allowed and not p.videoOff then
    p.videoOff = true
    change = '{"video":false}'
  end
else
  p.canShareScreen = allowed
  if not allowed and p.screenSharing then
    p.screenSharing = false
    change = '{"screenShare":false}'
  end
end
local encoded = cjson.encode(p)
redis.call('HSET', people_key(id), target, encoded)
local events = {}
if change then events[#events + 1] = toggled_event(id, encoded, change) end
events[#events + 1] = '{"t":"permission","roomId":' .. cjson.encode(id)
  .. ',"socket":' .. cjson.encode(target) .. ',"permission":' .. cjson.encode(permission)
  .. ',"allowed":' .. tostring(allowed) .. ',"byId":' .. cjson.encode(sid)
  .. ',"byName":' .. cjson.encode(host.userName) .. '}'
events[#events + 1] = list_event(id)
publish_room(id, instance, ticket, events)
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
