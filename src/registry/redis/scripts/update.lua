-- Media and screen-share toggles: sets one flag of the sender's participant.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room,
--       5 field ('audioMuted', 'videoOff' or 'screenSharing'), 6 value ('1'/'0')
local sid, field, value = ARGV[2], ARGV[5], ARGV[6] == '1'

local id, participant = sender_in_room(sid, ARGV[3], ARGV[4])
if not id then return participant end
participant[field] = value
redis.call('HSET', people_key(id), sid, cjson.encode(participant))
return '{"status":"updated","roomId":' .. cjson.encode(id)
  .. ',"participants":' .. json_array(people(id)) .. '}'
