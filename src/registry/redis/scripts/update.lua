-- Media and screen-share toggles: sets one flag of the sender's participant and publishes the
-- change. Turning on what the host does not allow (the permission flag is false) is
-- refused and changes nothing.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room,
--       5 field ('audioMuted', 'videoOff' or 'screenSharing'), 6 value ('1'/'0'),
--       7 change JSON (as the instances decode it), 8 instance, 9 ticket ('' for none),
--       10 the permission field this change needs ('canUseMic', …; '' for none)
local sid, field, value = ARGV[2], ARGV[5], ARGV[6] == '1'
local change, instance, ticket, needs = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local id, participant = sender_in_room(sid, ARGV[3], ARGV[4])
if not id then return participant end
if needs ~= '' and participant[needs] == false then return status('forbidden') end
participant[field] = value
redis.call('HSET', people_key(id), sid, cjson.encode(participant))
local list = list_json(id)
publish(instance, ticket, {
  '{"t":"updated","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',' .. list .. ',"change":' .. change .. '}' })
return '{"status":"updated","roomId":' .. cjson.encode(id) .. ',' .. list .. '}'
