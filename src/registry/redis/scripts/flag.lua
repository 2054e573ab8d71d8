-- lock-room and set-lobby (host only): switches the room's lock or lobby and publishes it.
-- Switching the lobby off lets its waiters in, in the order they asked, as admissions, while
-- the room has places; the rest are refused (room full).
-- ARGV: 2 socket id, 3 named? ('1'/'0'), 4 named room, 5 instance, 6 ticket ('' for none),
--       7 flag ('lock' or 'lobby'), 8 on ('1'/'0'), 9 max participants, 10 now (ISO)
local sid, instance, ticket = ARGV[2], ARGV[5], ARGV[6]
local flag, on, max_participants, now_iso = ARGV[7], ARGV[8] == '1', tonumber(ARGV[9]), ARGV[10]
local id, host = hosted(sid, ARGV[3], ARGV[4])
if not id then return host end
local field = flag == 'lock' and 'locked' or 'lobby'
if on then
  redis.call('HSET', room_key(id), field, '1')
else
  redis.call('HDEL', room_key(id), field)
end
-- Events for every instance wait here until a welcome must go out first to one instance.
local pending = {
  '{"t":"flag","roomId":' .. cjson.encode(id) .. ',"flag":' .. cjson.encode(flag)
    .. ',"on":' .. tostring(on) .. ',"byId":' .. cjson.encode(sid) .. '}' }
if flag == 'lobby' and not on then
  for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
    local stored = take_waiter(id, waiter)
    if stored and redis.call('LLEN', order_key(id)) < max_participants then
      local welcome, holder_instance, joined = admit(id, stored, now_iso)
      if welcome then
        if holder_instance then
          publish_room(id, instance, '', pending)
          pending = {}
          publish_to(holder_instance, instance, { welcome })
        end
        pending[#pending + 1] = joined
      end
    elseif stored then
      release_waiter(waiter, stored)
      pending[#pending + 1] = denied_event(id, waiter, 'full', nil)
    end
  end
end
publish_room(id, instance, ticket, pending)
return '{"status":"done","roomId":' .. cjson.encode(id) .. '}'
