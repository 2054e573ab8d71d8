-- Prepended (in Rust) to every script of the Redis registry: key names, the room operations
-- several scripts share (so a leave, a room switch, a kick and a reap hand the host over,
-- refuse an emptied room's waiters and apply the empty-room TTL the same way; a direct join
-- and an admission from the lobby are told alike), and the publishing of changes: every
-- script that changes a room publishes what changed, from inside the script, so all
-- instances receive each room's changes in the order they were made.
--
-- Every script gets KEYS[1] = '{p}:rooms' (only so Redis routes it; every key shares the
-- '{p}' hash tag, hence one slot) and ARGV[1] = '{p}', the prefix the keys are built from.
-- Replies are JSON strings; arrays are built by concatenation because cjson encodes an empty
-- table as '{}'.

local P = ARGV[1]
local ROOMS = P .. ':rooms'          -- ZSET room id -> deadline ms ('+inf' while occupied)
local MEMBER = P .. ':member'        -- HASH socket id -> room id
local INSTANCES = P .. ':instances'  -- ZSET instance id -> last heartbeat ms
local CREATORS = P .. ':creators'    -- HASH address -> rooms it made that still exist
local CHATBYTES = P .. ':chatbytes'  -- STRING bytes of chat history kept in all rooms
local EVENTS = P .. ':events'        -- pub/sub: every room change, for every instance
local WAITING = P .. ':waiting'      -- HASH socket id -> room id whose lobby it waits in
-- Most join requests a lobby holds (outcome::MAX_WAITERS).
local MAX_WAITERS = 100

-- HASH created, creator, chatbytes, host (socket id), locked ('1'), lobby ('1'),
-- password (a salted keyed hash, never the password)
local function room_key(id) return P .. ':room:' .. id end
local function order_key(id) return P .. ':order:' .. id end    -- LIST socket ids, join order
local function people_key(id) return P .. ':people:' .. id end  -- HASH socket id -> JSON
local function chat_key(id) return P .. ':chat:' .. id end      -- LIST message JSON, oldest first
-- HASH socket id -> its name (and avatar) as its chat messages carry them, JSON members
-- (`"userName":…,"userAvatar":…`): written beside people_key, so that a chat message needs
-- neither the sender's participant decoded nor its name encoded again (chat.lua).
local function senders_key(id) return P .. ':senders:' .. id end
local function queue_key(id) return P .. ':queue:' .. id end    -- LIST waiter socket ids, request order
local function waiters_key(id) return P .. ':waiters:' .. id end -- HASH waiter socket id -> JSON
local function on_key(instance) return P .. ':on:' .. instance end -- SET socket ids it holds
-- STRING set when an instance is reaped, until that instance (if it was alive after all) beats
local function reaped_key(instance) return P .. ':reaped:' .. instance end
-- STRING "<room id>\n<participant JSON>" of a socket's last leave, for a short while
local function left_key(sid) return P .. ':left:' .. sid end

-- pub/sub channel of one instance: what only it must act on (a joiner's welcome, relays)
local function to_instance(instance) return P .. ':to:' .. instance end

-- Redis' own clock, so instances with skewed clocks agree on heartbeats and deadlines.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A score as an integer string: Lua would print a large number as '1.7e+12'.
local function ms(n)
  return string.format('%.0f', n)
end

local function json_array(items)
  return '[' .. table.concat(items, ',') .. ']'
end

local function status(name)
  return '{"status":' .. cjson.encode(name) .. '}'
end

-- A string as JSON, or null for nil/false.
local function json_or_null(value)
  if value then return cjson.encode(value) end
  return 'null'
end

-- The host's socket id, or nil while nobody is in the room.
local function host_of(id)
  return redis.call('HGET', room_key(id), 'host') or nil
end

-- joined-room's `room`: the host and the moderation state.
local function room_state(id)
  local f = redis.call('HMGET', room_key(id), 'host', 'locked', 'lobby', 'password')
  return '{"hostId":' .. json_or_null(f[1]) .. ',"locked":' .. tostring(f[2] == '1')
    .. ',"lobby":' .. tostring(f[3] == '1') .. ',"hasPassword":' .. tostring(f[4] ~= false) .. '}'
end

-- A batch of events as the instances decode it: who made the change (instance, and the
-- ticket of the handler waiting for it, '' for none), the events, in order, and (for a
-- batch about one room) the instance that delivers the room's webhooks.
local function batch(instance, ticket, events, hooks)
  local t = 'null'
  if ticket ~= nil and ticket ~= '' then t = ticket end
  local out = '{"origin":{"instance":' .. cjson.encode(instance) .. ',"ticket":' .. t .. '}'
    .. ',"events":' .. json_array(events)
  if hooks then out = out .. ',"hooks":' .. cjson.encode(hooks) end
  return out .. '}'
end

local function publish(instance, ticket, events)
  redis.call('PUBLISH', EVENTS, batch(instance, ticket, events))
end

local function publish_to(target, instance, events)
  redis.call('PUBLISH', to_instance(target), batch(instance, '', events))
end

-- The event of a participant's departure (`left` is a Left as `left_json` makes it).
local function left_event(left, reason)
  return '{"t":"left","reason":' .. cjson.encode(reason) .. ',"left":' .. left .. '}'
end

-- The stored participants of a room (JSON strings), in join order: the host first.
local function people(id)
  local out = {}
  for _, sid in ipairs(redis.call('LRANGE', order_key(id), 0, -1)) do
    local stored = redis.call('HGET', people_key(id), sid)
    if stored then out[#out + 1] = stored end
  end
  return out
end

-- A room's list and host, as a fragment of a JSON object.
local function list_json(id)
  return '"participants":' .. json_array(people(id)) .. ',"host":' .. json_or_null(host_of(id))
end

-- The welcome a participant gets when it arrives (`createdRoom`: the join made the room).
local function joined_json(id, created_room)
  local messages = redis.call('LRANGE', chat_key(id), 0, -1)
  return '{"roomId":' .. cjson.encode(id)
    .. ',"participants":' .. json_array(people(id))
    .. ',"messages":' .. json_array(messages)
    .. ',"createdRoom":' .. tostring(created_room)
    .. ',"room":' .. room_state(id) .. '}'
end

-- The others' news of a participant's arrival.
local function joined_event(id, sid)
  return '{"t":"joined","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',"participants":' .. json_array(people(id)) .. ',"room":' .. room_state(id) .. '}'
end

-- participants-updated to the room after a moderation action.
local function list_event(id)
  return '{"t":"list","roomId":' .. cjson.encode(id) .. ',' .. list_json(id) .. '}'
end

-- Media the host turned off: `stored` the participant's JSON after it, `change` as ChangeWire.
local function toggled_event(id, stored, change)
  return '{"t":"toggled","roomId":' .. cjson.encode(id) .. ',"participant":' .. stored
    .. ',"host":' .. json_or_null(host_of(id)) .. ',"change":' .. change .. '}'
end

-- admission-requested to the host, for a waiter (its stored JSON).
local function knock_event(id, host, stored)
  return '{"t":"knock","roomId":' .. cjson.encode(id) .. ',"host":' .. cjson.encode(host)
    .. ',"waiter":' .. stored .. '}'
end

-- A waiter's request ended without admission (cause as DenyCause names it).
local function denied_event(id, sid, cause, reason)
  return '{"t":"denied","roomId":' .. cjson.encode(id) .. ',"socket":' .. cjson.encode(sid)
    .. ',"cause":' .. cjson.encode(cause) .. ',"reason":' .. json_or_null(reason) .. '}'
end

-- The instance holding a participant's socket, or nil if its JSON is unreadable.
local function holder(stored)
  local ok, p = pcall(cjson.decode, stored)
  if ok and type(p) == 'table' and type(p.instance) == 'string' then return p.instance end
  return nil
end

-- Drops a room's oldest chat message; the bytes freed.
local function drop_oldest_message(id)
  local message = redis.call('LPOP', chat_key(id))
  if not message then return 0 end
  redis.call('HINCRBY', room_key(id), 'chatbytes', -#message)
  redis.call('DECRBY', CHATBYTES, #message)
  return #message
end

-- Drops a room's whole chat history.
local function clear_history(id)
  local bytes = tonumber(redis.call('HGET', room_key(id), 'chatbytes') or '0')
  redis.call('DEL', chat_key(id))
  redis.call('HDEL', room_key(id), 'chatbytes')
  if bytes > 0 then redis.call('DECRBY', CHATBYTES, bytes) end
end

-- Rooms this script deleted: id -> { created, hooks }, so their last batch can still name
-- their webhook owner and announce the removal (see publish_room).
local removed_rooms = {}

local function delete_room(id)
  removed_rooms[id] = {
    created = redis.call('HGET', room_key(id), 'created'),
    hooks = redis.call('HGET', room_key(id), 'hooks'),
  }
  clear_history(id)
  for _, sid in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
    if redis.call('HGET', WAITING, sid) == id then redis.call('HDEL', WAITING, sid) end
  end
  redis.call('DEL', queue_key(id), waiters_key(id))
  local creator = redis.call('HGET', room_key(id), 'creator')
  if creator and redis.call('HINCRBY', CREATORS, creator, -1) <= 0 then
    redis.call('HDEL', CREATORS, creator)
  end
  redis.call('DEL', room_key(id), order_key(id), people_key(id), senders_key(id), chat_key(id))
  redis.call('ZREM', ROOMS, id)
end

-- Whether `creator` may make one more room: the server's MAX_ROOMS and the address's
-- MAX_ROOMS_PER_ADDRESS (0 = no cap); nil if so, else the status to refuse with.
local function room_cap(creator, max_rooms, max_per_address)
  if max_rooms > 0 and redis.call('ZCARD', ROOMS) >= max_rooms then
    return status('too_many_rooms')
  end
  if max_per_address > 0
    and tonumber(redis.call('HGET', CREATORS, creator) or '0') >= max_per_address then
    return status('too_many_for_address')
  end
  return nil
end

-- Records a new room's creation time, its creator, and the instance that made it, which
-- delivers its webhooks (its webhook owner).
local function make_room(id, created, creator, instance)
  redis.call('HSET', room_key(id), 'created', created, 'creator', creator, 'hooks', instance)
  redis.call('HINCRBY', CREATORS, creator, 1)
end

-- Webhooks: all of a room's webhooks go out from one instance, its webhook owner, so they
-- leave in the room's order and once. The owner is the instance that made the room; once it
-- has left the cluster (shut down, or reaped), the instance making the room's next change
-- takes over (or, if that one is leaving too, the instance that beat last).
local function alive(instance)
  return redis.call('ZSCORE', INSTANCES, instance) ~= false
end

local function hooks_owner(id, me)
  local gone = removed_rooms[id]
  local owner
  if gone then owner = gone.hooks else owner = redis.call('HGET', room_key(id), 'hooks') end
  if owner and alive(owner) then return owner end
  local heir = me
  if not alive(me) then
    local latest = redis.call('ZREVRANGE', INSTANCES, 0, 0)
    if latest[1] then heir = latest[1] end
  end
  if gone then
    gone.hooks = heir
  elseif redis.call('EXISTS', room_key(id)) == 1 then
    redis.call('HSET', room_key(id), 'hooks', heir)
  end
  return heir
end

-- The event of a room's coming into existence.
local function opened_event(id, created)
  return '{"t":"opened","roomId":' .. cjson.encode(id) .. ',"createdAt":' .. cjson.encode(created) .. '}'
end

-- Publishes a batch about room `id` (to every instance) naming its webhook owner; if this
-- script deleted the room, the room's removal follows the batch's events (announced once).
local function publish_room(id, instance, ticket, events)
  local hooks = hooks_owner(id, instance)
  local gone = removed_rooms[id]
  if gone and not gone.announced then
    gone.announced = true
    events[#events + 1] = '{"t":"removed","roomId":' .. cjson.encode(id)
      .. ',"createdAt":' .. cjson.encode(gone.created) .. '}'
  end
  redis.call('PUBLISH', EVENTS, batch(instance, ticket, events, hooks))
end

-- A Left as the Rust side reads it: the room, the participant who left (its stored JSON),
-- who remains (JSON strings, join order) and its host, the new host if the leaver was it,
-- and whether the room went with it.
local function left_json(id, stored, rest, removed, host, new_host)
  return '{"roomId":' .. cjson.encode(id)
    .. ',"participant":' .. stored
    .. ',"participants":' .. json_array(rest)
    .. ',"host":' .. json_or_null(host)
    .. ',"newHost":' .. json_or_null(new_host)
    .. ',"roomRemoved":' .. tostring(removed) .. '}'
end

-- Takes waiter `sid` out of the lobby of room `id`; its stored JSON, or nil if it was not
-- waiting there. Its socket stays held by its instance (the caller decides).
local function take_waiter(id, sid)
  local stored = redis.call('HGET', waiters_key(id), sid)
  if not stored then return nil end
  redis.call('HDEL', waiters_key(id), sid)
  redis.call('LREM', queue_key(id), 1, sid)
  if redis.call('HGET', WAITING, sid) == id then redis.call('HDEL', WAITING, sid) end
  return stored
end

-- Forgets a socket that leaves a lobby for no room.
local function release_waiter(sid, stored)
  local instance = holder(stored)
  if instance then redis.call('SREM', on_key(instance), sid) end
end

-- Takes a waiting socket out of its lobby: the event telling the host (nil if there is no
-- host to tell) and the room it waited for (nil if it waited nowhere).
local function cancel_waiter(sid)
  local id = redis.call('HGET', WAITING, sid)
  if not id then return nil, nil end
  local stored = take_waiter(id, sid)
  if not stored then
    redis.call('HDEL', WAITING, sid)
    return nil, nil
  end
  release_waiter(sid, stored)
  local host = host_of(id)
  if not host then return nil, id end
  return '{"t":"cancelled","roomId":' .. cjson.encode(id) .. ',"host":' .. cjson.encode(host)
    .. ',"socket":' .. cjson.encode(sid) .. '}', id
end

-- Takes a socket out of a room as a leave does (its MEMBER entry is the caller's business):
-- if it was the host, the earliest remaining participant takes over and is told the lobby's
-- waiters again; an emptied room drops its lock and lobby, refuses its waiters, and goes at
-- once with a zero TTL, else gets its deadline. Returns the Left as JSON (nil if it was not
-- there) and the events that follow it.
local function remove_participant(id, sid, empty_ttl_ms)
  local stored = redis.call('HGET', people_key(id), sid)
  if not stored then return nil, {} end
  redis.call('HDEL', people_key(id), sid)
  redis.call('HDEL', senders_key(id), sid)
  redis.call('LREM', order_key(id), 1, sid)
  local instance = holder(stored)
  if instance then redis.call('SREM', on_key(instance), sid) end
  local new_host = nil
  if host_of(id) == sid then
    new_host = redis.call('LINDEX', order_key(id), 0) or nil
    if new_host then
      redis.call('HSET', room_key(id), 'host', new_host)
    else
      redis.call('HDEL', room_key(id), 'host')
    end
  end
  local extras = {}
  local rest = people(id)
  local host = host_of(id)
  local removed = false
  if redis.call('LLEN', order_key(id)) == 0 then
    redis.call('HDEL', room_key(id), 'locked', 'lobby', 'host')
    for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
      local w = take_waiter(id, waiter)
      if w then release_waiter(waiter, w) end
      extras[#extras + 1] = denied_event(id, waiter, 'emptied', nil)
    end
    if empty_ttl_ms == 0 then
      delete_room(id)
      removed = true
    else
      redis.call('ZADD', ROOMS, ms(now_ms() + empty_ttl_ms), id)
    end
  elseif new_host then
    for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
      local w = redis.call('HGET', waiters_key(id), waiter)
      if w then extras[#extras + 1] = knock_event(id, new_host, w) end
    end
  end
  return left_json(id, stored, rest, removed, host, new_host), extras
end

-- A participant's name and avatar as JSON members of its chat messages (`userAvatar` is
-- null, never absent, for none: the message's wire form); nil without a name.
local function sender_fields(p)
  if type(p.userName) ~= 'string' then return nil end
  local avatar = 'null'
  if type(p.avatar) == 'string' then avatar = cjson.encode(p.avatar) end
  return '"userName":' .. cjson.encode(p.userName) .. ',"userAvatar":' .. avatar
end

-- Writes participant `sid` (`p` decoded, `encoded` its JSON) into room `id`'s people, and
-- its chat fields beside it.
local function seat(id, sid, p, encoded)
  redis.call('HSET', people_key(id), sid, encoded)
  local fields = sender_fields(p)
  if fields then redis.call('HSET', senders_key(id), sid, fields) end
end

-- Moves a waiter out of the lobby into room `id` (its stored JSON, already taken out by
-- `take_waiter`), joined at `now_iso`, exactly as a direct join: returns its welcome (for
-- the instance holding it, also returned) and the others' news of its arrival; nil for an
-- unreadable waiter (dropped).
local function admit(id, stored, now_iso)
  local ok, p = pcall(cjson.decode, stored)
  if not ok or type(p) ~= 'table' or type(p.id) ~= 'string' then return nil end
  p.joinedAt = now_iso
  redis.call('RPUSH', order_key(id), p.id)
  seat(id, p.id, p, cjson.encode(p))
  redis.call('HSET', MEMBER, p.id, id)
  local welcome = '{"t":"welcome","socket":' .. cjson.encode(p.id) .. ',"joined":'
    .. joined_json(id, false) .. '}'
  return welcome, p.instance, joined_event(id, p.id)
end

-- Removes room `id` with its participants and its lobby: their MEMBER and instance entries
-- go. Returns its participants (JSON, join order) and the events refusing its waiters.
local function close_room(id)
  local list = people(id)
  for _, stored in ipairs(list) do
    local ok, p = pcall(cjson.decode, stored)
    if ok and type(p) == 'table' and type(p.id) == 'string' then
      if redis.call('HGET', MEMBER, p.id) == id then redis.call('HDEL', MEMBER, p.id) end
      if type(p.instance) == 'string' then redis.call('SREM', on_key(p.instance), p.id) end
    end
  end
  local denied = {}
  for _, waiter in ipairs(redis.call('LRANGE', queue_key(id), 0, -1)) do
    local w = take_waiter(id, waiter)
    if w then release_waiter(waiter, w) end
    denied[#denied + 1] = denied_event(id, waiter, 'ended', nil)
  end
  delete_room(id)
  return list, denied
end

-- The room a socket is in, if it matches the room the client named ('1', name) or
-- did not name one ('0', ''); nil means not_in_room.
local function current_room(sid, has_named, named)
  local id = redis.call('HGET', MEMBER, sid)
  if not id then return nil end
  if has_named == '1' and named ~= id then return nil end
  return id
end

-- The sender of an event, decoded, in its current room (checked as `current_room` does):
-- returns the room id and the participant table, or nil and the reply to refuse with.
local function sender_in_room(sid, has_named, named)
  local id = named
  if has_named ~= '1' then
    id = redis.call('HGET', MEMBER, sid)
    if not id then return nil, status('not_in_room') end
  end
  -- A socket is listed in a room's people exactly while MEMBER names that room, so for a
  -- named room this one read checks the room and finds the sender.
  local stored = redis.call('HGET', people_key(id), sid)
  if not stored then return nil, status('not_in_room') end
  local ok, participant = pcall(cjson.decode, stored)
  if not ok or type(participant) ~= 'table' then
    return nil, redis.error_reply('malformed participant ' .. sid .. ' in room ' .. id)
  end
  return id, participant
end

-- The sender of a moderation event, if it is the host of its room (checked as
-- `sender_in_room`): the room id and the host's participant table, or nil and the reply
-- to refuse with.
local function hosted(sid, has_named, named)
  local id, participant = sender_in_room(sid, has_named, named)
  if not id then return nil, participant end
  if host_of(id) ~= sid then return nil, status('forbidden') end
  return id, participant
end

-- A room as JSON for info, summaries and detail; `with` is 'none', 'host' or 'all'.
local function room_json(id, with)
  local f = redis.call('HMGET', room_key(id), 'created', 'host', 'password')
  local created, host = f[1], f[2]
  if not created then return nil end
  local out = '{"roomId":' .. cjson.encode(id)
    .. ',"createdAt":' .. cjson.encode(created)
    .. ',"participantCount":' .. redis.call('LLEN', order_key(id))
    .. ',"messageCount":' .. redis.call('LLEN', chat_key(id))
    .. ',"hasPassword":' .. tostring(f[3] ~= false)
    .. ',"hostId":' .. json_or_null(host)
  if with == 'all' then
    out = out .. ',"participants":' .. json_array(people(id))
  elseif with == 'host' and host then
    local stored = redis.call('HGET', people_key(id), host)
    if stored then out = out .. ',"host":' .. stored end
  end
  return out .. '}'
end

-- Takes every participant `instance` holds out of their rooms as leaves would, room by room
-- in join order, and its waiters out of their lobbies, and forgets the instance; appends
-- their Lefts to `lefts` and to `batches` what to publish, in order, one batch per room
-- ({id, events}: the caller publishes each for the room's webhook owner).
local function remove_instance(instance, empty_ttl_ms, lefts, batches)
  redis.call('ZREM', INSTANCES, instance)
  local held = {}
  for _, sid in ipairs(redis.call('SMEMBERS', on_key(instance))) do
    local id = redis.call('HGET', MEMBER, sid)
    if id then
      local position = redis.call('LPOS', order_key(id), sid) or -1
      held[#held + 1] = { id = id, position = position, sid = sid }
    else
      local cancelled, waited = cancel_waiter(sid)
      if cancelled then batches[#batches + 1] = { id = waited, events = { cancelled } } end
    end
  end
  table.sort(held, function(a, b)
    if a.id ~= b.id then return a.id < b.id end
    return a.position < b.position
  end)
  for _, h in ipairs(held) do
    redis.call('HDEL', MEMBER, h.sid)
    local left, extras = remove_participant(h.id, h.sid, empty_ttl_ms)
    if left then
      lefts[#lefts + 1] = left
      local events = { left_event(left, 'removed') }
      for _, e in ipairs(extras) do events[#events + 1] = e end
      batches[#batches + 1] = { id = h.id, events = events }
    end
  end
  redis.call('DEL', on_key(instance))
end
