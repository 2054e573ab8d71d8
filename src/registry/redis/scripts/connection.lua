-- Connection state recovery: records whether a participant's client is connected or
-- reconnecting, and publishes the change. 'unchanged' if it already was, or if the participant
-- carries no connection state (joined while recovery was off).
-- ARGV: 2 socket id, 3 state ('connected' or 'reconnecting'), 4 instance,
--       5 ticket ('' for none)
local sid, state, instance, ticket = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local id, participant = sender_in_room(sid, '0', '')
if not id then return participant end
if type(participant.connection) ~= 'string' or participant.connection == state then
  return status('unchanged')
end
participant.connection = state
redis.call('HSET', people_key(id), sid, cjson.encode(participant))
local list = list_json(id)
local change = '{"reconnecting":' .. tostring(state == 'reconnecting') .. '}'
publish(instance, ticket, {
  '{"t":"updated","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',' .. list .. ',"change":' .. change .. '}' })
return '{"status":"updated","roomId":' .. cjson.encode(id) .. ',' .. list .. '}'
