-- Media and screen-share toggles: sets one flag of the sender's participant and publishes the
-- change.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room,
--       5 field ('audioMuted', 'videoOff' or 'screenSharing'), 6 value ('1'/'0'),
--       7 change JSON (as the instances decode it), 8 instance, 9 ticket ('' for none)
local sid, field, value = ARGV[2], ARGV[5], ARGV[6] == '1'
local change, instance, ticket = ARGV[7], ARGV[8], ARGV[9]

local id, participant = sender_in_room(sid, ARGV[3], ARGV[4])
if not id then return participant end
participant[field] = value
redis.call('HSET', people_key(id), sid, cjson.encode(participant))
local list = json_array(people(id))
publish(instance, ticket, {
  '{"t":"updated","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',"participants":' .. list .. ',"change":' .. change .. '}' })
return '{"status":"updated","roomId":' .. cjson.encode(id) .. ',"participants":' .. list .. '}'
