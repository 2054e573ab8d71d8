-- set-room-password (host only): sets, replaces or removes the room's password (a salted
-- keyed hash made by the caller, never the password) for later joins. Members are not told.
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 password hash ('' to remove)
local sid, hash = ARGV[2], ARGV[5]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
if hash == '' then
  redis.call('HDEL', room_key(id), 'password')
else
  redis.call('HSET', room_key(id), 'password', hash)
end
return '{"status":"done","roomId":' .. cjson.encode(id) .. ',"hasPassword":'
  .. tostring(hash ~= '') .. '}'
