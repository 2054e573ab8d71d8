-- kick-participant (host only): takes a participant out of the room as a leave would (the
-- host itself is refused); publishes its `kicked`, then its departure.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 target socket id, 8 reason given? ('1'/'0'), 9 reason, 10 empty-room TTL ms
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local target, reason, empty_ttl_ms = ARGV[7], nil, tonumber(ARGV[10])
if ARGV[8] == '1' then reason = ARGV[9] end
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
if redis.call('HEXISTS', people_key(id), target) == 0 then
  return status('target_not_in_room')
end
if target == sid then return status('kick_self') end
if redis.call('HGET', MEMBER, target) == id then redis.call('HDEL', MEMBER, target) end
local left, extras = remove_participant(id, target, empty_ttl_ms)
local events = {
  '{"t":"kicked","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(target)
    .. ',"byId":' .. cjson.encode(sid) .. ',"byName":' .. cjson.encode(host.userName)
    .. ',"reason":' .. json_or_null(reason) .. '}',
  left_event(left, 'host-kicked') }
for _, e in ipairs(extras) do events[#events + 1] = e end
publish_room(id, instance, ticket, events)
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
