-- leave-room, disconnect, kick, eviction: takes a socket out of its room and publishes the
-- departure with its reason; 'null' if it was in none. A socket waiting in a lobby gives up
-- its place there (the host is told) and gets 'null' too. A leave that ran but whose answer was
-- lost (Redis stalled past the client's timeout) is retried with replay: the socket is in no
-- room any more, and gets the Left of that leave (with who remains now) for the handler;
-- the departure itself was published by the first run.
-- ARGV: 2 socket id, 3 empty-room TTL ms, 4 '1' to replay, 5 reason, 6 instance,
--       7 ticket ('' for none)
local sid, empty_ttl_ms, replay = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local reason, instance, ticket = ARGV[5], ARGV[6], ARGV[7]
local REMEMBER_SECS = 30

local id = redis.call('HGET', MEMBER, sid)
if not id then
  local cancelled, waited = cancel_waiter(sid)
  if cancelled then publish_room(waited, instance, ticket, { cancelled }) end
  if not replay then return 'null' end
  local last = redis.call('GET', left_key(sid))
  if not last then return 'null' end
  redis.call('DEL', left_key(sid))
  local cut = string.find(last, '\n', 1, true)
  if not cut then return 'null' end
  local room = string.sub(last, 1, cut - 1)
  local exists = redis.call('ZSCORE', ROOMS, room) ~= false
  local rest = exists and people(room) or {}
  return left_json(room, string.sub(last, cut + 1), rest, not exists, host_of(room), nil)
end
redis.call('HDEL', MEMBER, sid)
local stored = redis.call('HGET', people_key(id), sid)
local left, extras = remove_participant(id, sid, empty_ttl_ms)
if not left then return 'null' end
redis.call('SET', left_key(sid), id .. '\n' .. stored, 'EX', REMEMBER_SECS)
local events = { left_event(left, reason) }
for _, e in ipairs(extras) do events[#events + 1] = e end
publish_room(id, instance, ticket, events)
return left
