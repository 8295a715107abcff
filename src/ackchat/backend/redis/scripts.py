"""The Lua scripts: every change to a cluster's state, each one atomic in Redis.

Each script runs whole or not at all with respect to other clients, so the checks and
the changes of one operation cannot interleave with another node's: exactly
``max_clients`` are admitted under a race, a name is claimed once in any case, an event
id is drawn, kept and published in one step (so ids increase in the stream's order).

The scripts are the functions of one Lua library, loaded once per Redis (``FUNCTION
LOAD``) and called by name (``FCALL``): the helpers and the key names are made when the
library loads, not on every call, as an ``EVALSHA`` of the same code would (that set-up
cost Redis about 8 µs a call, several times what most scripts do). The library's name
carries a hash of its code, so nodes of two versions can share one Redis.

Every script is called with ``KEYS[1]`` the cluster's event counter (it routes the call
to the cluster's slot) and ``ARGV`` = prefix, stream cap, resume buffer, the time as
event lines show it, then its own arguments. Its keys come from the prefix (see
keys.py: all of them share the cluster's hash tag, so they are in one slot). A script
that changes something answers ``{status, position, ...}``: ``ok`` or a refusal code,
and the last event id at the moment it ran (its own event's, if it made one). Every
event id drawn is published on the stream in the same script, so a node's reader
reaches every position. Deadlines are read from Redis's clock (``TIME``), which every
node shares; the wall times passed in are only shown.

Besides the clients' operations there are the nodes' own: ``beat`` (a heartbeat that
also reaps the nodes whose heartbeat expired, and publishes a notice the node's own
reader must hear), ``reregister`` (a node's live clients, brought back into a state that
lost them), ``set_max`` and ``share`` (a new limit, new live settings, announced to
every node) and ``kick`` (an operator's, told to the node the client is on). Notices for
the nodes travel on the stream with ids of their own, headed ``n <node> <what>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ackchat.backend.redis.keys import lua_key_names


@dataclass(frozen=True, slots=True)
class Script:
    """One of the library's functions, by the name FCALL calls it by."""

    name: str
    function: bytes


@dataclass(frozen=True, slots=True)
class Library:
    """The Lua library whose functions are the scripts: its name and its code."""

    name: bytes
    source: bytes


# What a call was given, set as it starts (begin): the helpers below read it. Redis runs
# one call at a time, so one call's values cannot meet another's. The key names of each
# cluster prefix are made once and kept (a cache: what they are follows from the prefix).
_CALL_STATE = r"""
local ARGV, K, key, STREAM_CAP, RESUME_BUFFER, WHEN, written_ms
local names_by_prefix = {}

local function begin(args)
  ARGV = args
  local names = names_by_prefix[args[1]]
  if not names then
    names = {key_names(args[1])}
    names_by_prefix[args[1]] = names
  end
  K, key = names[1], names[2]
  STREAM_CAP, RESUME_BUFFER, WHEN = args[2], tonumber(args[3]), args[4]
  written_ms = nil
end
"""

# Helpers every script shares.
_LIBRARY = r"""
local function position()
  return tonumber(redis.call('GET', K.event_seq) or '0')
end

local function redis_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1000000
end

local function sorted_members(set)
  local items = redis.call('SMEMBERS', set)
  table.sort(items)
  return items
end

-- Keep a line for a held member, up to the resume buffer (the oldest are dropped).
local function keep_missed(mid, data)
  local missed = key.member_missed(mid)
  local excess = redis.call('RPUSH', missed, data) - RESUME_BUFFER
  if excess > 0 then
    redis.call('LTRIM', missed, excess, -1)
    redis.call('HINCRBY', key.member(mid), 'dropped', excess)
  end
end

-- Append to a capped list; a cap of 0 keeps nothing.
local function keep_capped(list, value, cap)
  if cap > 0 and redis.call('RPUSH', list, value) > cap then
    redis.call('LTRIM', list, -cap, -1)
  end
end

-- When the script writes to the stream, by Redis's clock in milliseconds (seconds * 1000
-- + the milliseconds of the microseconds): every entry's last field, t, so that the
-- readers measure how long it took them to deliver it (fanout.py).
local function written()
  if not written_ms then
    local time = redis.call('TIME')
    written_ms = time[1] .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
  end
  return written_ms
end

-- Draw an event id and publish the event: returns the id and the encoded line.
local function publish(header, rest)
  local eid = redis.call('INCR', K.event_seq)
  local data = '@' .. eid .. ' ' .. rest
  redis.call('XADD', K.events, 'MAXLEN', '~', STREAM_CAP, eid .. '-0',
    'h', header, 'd', data, 't', written())
  return eid, data
end

-- An event for a room's members but ``from``; held members have it kept.
local function to_room(room, from, rest)
  local eid, data = publish('r ' .. from .. ' ' .. room, rest)
  for _, mid in ipairs(redis.call('SMEMBERS', key.room_away(room))) do
    if mid ~= from then keep_missed(mid, data) end
  end
  return eid
end

-- Tell a room's other members what ``subject`` did (not kept in the room's history).
local function announce(room, subject, text)
  return to_room(room, subject, WHEN .. ' ' .. room .. ' *: ' .. text .. '\n')
end

local function leave_room(mid, room, text)
  redis.call('SREM', key.member_rooms(mid), room)
  redis.call('SREM', key.room_members(room), mid)
  redis.call('SREM', key.room_away(room), mid)
  if redis.call('HINCRBY', K.rooms, room, -1) > 0 then
    announce(room, mid, text)
  else
    redis.call('HDEL', K.rooms, room)
    redis.call('DEL', key.room_members(room), key.room_away(room), key.room_history(room))
  end
end

-- Forget a chat identity: it leaves its rooms (they hear ``<name> <how>``), its name
-- and token are free again. Returns its name.
local function forget(mid, how)
  local member = key.member(mid)
  local name = redis.call('HGET', member, 'name')
  for _, room in ipairs(sorted_members(key.member_rooms(mid))) do
    leave_room(mid, room, name .. ' ' .. how)
  end
  redis.call('HDEL', K.names, string.lower(name))
  redis.call('HDEL', K.tokens, redis.call('HGET', member, 'token'))
  redis.call('ZREM', K.held, mid)
  redis.call('DEL', member, key.member_rooms(mid), key.member_direct(mid), key.member_missed(mid))
  return name
end

-- Session records: [number, name, address, connected, disconnected, reason, earlier, node].
local function record_of(number)
  return cjson.decode(redis.call('HGET', K.sessions, number))
end

local function rename_record(number, name)
  local record = record_of(number)
  if record[7] == '' then record[7] = record[2] else record[7] = record[7] .. ' ' .. record[2] end
  record[2] = name
  redis.call('HSET', K.sessions, number, cjson.encode(record))
end

local function append_all(reply, items)
  for _, item in ipairs(items) do reply[#reply + 1] = item end
end

-- Publish a notice for the nodes (none of the clients'): ``what`` happened to ``node``.
local function notice(node, what, text)
  local eid = redis.call('INCR', K.event_seq)
  redis.call('XADD', K.events, 'MAXLEN', '~', STREAM_CAP, eid .. '-0',
    'h', 'n ' .. node .. ' ' .. what, 'd', text, 't', written())
  return eid
end

-- Store live settings (JSON object of setting -> value as JSON text) as set on ``node``;
-- if any changed, tell every node: a ``live`` notice of ``name old new`` triples.
local function share(node, values)
  local changes = {}
  for name, value in pairs(cjson.decode(values)) do
    local old = redis.call('HGET', K.live, name) or value
    redis.call('HSET', K.live, name, value)
    if old ~= value then
      changes[#changes + 1] = name .. ' ' .. old .. ' ' .. value
    end
  end
  if #changes == 0 then return position() end
  table.sort(changes)
  return notice(node, 'live', table.concat(changes, ' '))
end

-- A session ends at time ``at`` for ``reason``: its record joins the departed ones
-- (capped at ``limit``, the excess counted as dropped), its slot is free, and its chat
-- identity is held for ``grace`` seconds if ``hold`` (its rooms hear that it lost the
-- connection), else forgotten. A session already gone is left alone.
local function depart_session(number, at, reason, hold, grace, limit)
  local raw = redis.call('HGET', K.sessions, number)
  if not raw then return end
  local record = cjson.decode(raw)
  record[5], record[6] = at, reason
  redis.call('HDEL', K.sessions, number)
  redis.call('SREM', key.node_sessions(record[8]), number)
  if redis.call('HINCRBY', K.node_counts, record[8], -1) <= 0 then
    redis.call('HDEL', K.node_counts, record[8])
  end
  local excess = redis.call('RPUSH', K.departed, cjson.encode(record)) - limit
  if excess > 0 then
    redis.call('LTRIM', K.departed, excess, -1)
    redis.call('INCRBY', K.dropped, excess)
  end
  local mid = redis.call('HGET', K.names, string.lower(record[2]))
  if not mid or redis.call('HGET', key.member(mid), 'session') ~= number then return end
  if hold and grace > 0 then
    redis.call('HSET', key.member(mid), 'session', '')
    redis.call('ZADD', K.held, redis_now() + grace, mid)
    for _, room in ipairs(sorted_members(key.member_rooms(mid))) do
      redis.call('SADD', key.room_away(room), mid)
      announce(room, mid, record[2] .. ' lost the connection')
    end
  else
    forget(mid, 'left')
  end
end
"""

# ARGV[5..]: address, connected-at time, node, node cap, token, this node's max_clients
# (used, and set, if the cluster has none). Answers ok: number, max_clients; full:
# max_clients; settling: nothing (a new run lets the live clients register first).
ADMIT = r"""
if redis.call('EXISTS', K.settling) == 1 then return {'settling', position()} end
local max = tonumber(redis.call('GET', K.max_clients))
if not max then
  max = tonumber(ARGV[10])
  redis.call('SET', K.max_clients, max)
end
local node, node_cap = ARGV[7], tonumber(ARGV[8])
if redis.call('HLEN', K.sessions) >= max
    or (node_cap > 0 and tonumber(redis.call('HGET', K.node_counts, node) or '0') >= node_cap) then
  redis.call('INCR', K.rejected)
  return {'full', position(), max}
end
local number = redis.call('INCR', K.session_seq)
local mid = tostring(number)
-- As registry.client_name names the number-th client.
local name = (number < 10 and 'Client0' or 'Client') .. mid
redis.call('HSET', K.sessions, mid,
  cjson.encode({number, name, ARGV[5], ARGV[6], '', '', '', node}))
redis.call('HINCRBY', K.node_counts, node, 1)
redis.call('SADD', key.node_sessions(node), mid)
redis.call('HSET', K.names, string.lower(name), mid)
redis.call('HSET', K.tokens, ARGV[9], mid)
redis.call('HSET', key.member(mid), 'name', name, 'token', ARGV[9], 'session', mid)
return {'ok', position(), number, max}
"""

# ARGV[5..]: the session's admission number, departure time, reason, hold (1 or 0),
# resume grace in seconds, history limit. The session is found by its number, so a
# rename or resume still in flight when the connection dropped cannot hide it.
DEPART = r"""
depart_session(ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1', tonumber(ARGV[9]), tonumber(ARGV[10]))
return {'ok', position()}
"""

# ARGV[5..]: the old name as the session gave it, its key, the new name, its key.
RENAME = r"""
local mid = redis.call('HGET', K.names, ARGV[6])
if not mid then return {'no-sender', position()} end
local holder = redis.call('HGET', K.names, ARGV[8])
if holder and holder ~= mid then return {'taken', position()} end
redis.call('HDEL', K.names, ARGV[6])
redis.call('HSET', K.names, ARGV[8], mid)
local member = key.member(mid)
redis.call('HSET', member, 'name', ARGV[7])
rename_record(redis.call('HGET', member, 'session'), ARGV[7])
for _, room in ipairs(sorted_members(key.member_rooms(mid))) do
  announce(room, mid, ARGV[5] .. ' is now ' .. ARGV[7])
end
return {'ok', position()}
"""

# ARGV[5..]: the member's name key, the room. Answers ok: member count, then the
# room's kept messages (before this join).
JOIN = r"""
local mid = redis.call('HGET', K.names, ARGV[5])
if not mid then return {'no-sender', position()} end
local room = ARGV[6]
if redis.call('SISMEMBER', key.member_rooms(mid), room) == 1 then
  return {'already', position()}
end
local recent = redis.call('LRANGE', key.room_history(room), 0, -1)
redis.call('SADD', key.room_members(room), mid)
redis.call('SADD', key.member_rooms(mid), room)
local count = redis.call('HINCRBY', K.rooms, room, 1)
local eid = announce(room, mid, redis.call('HGET', key.member(mid), 'name') .. ' joined')
local reply = {'ok', eid, count}
append_all(reply, recent)
return reply
"""

# ARGV[5..]: the member's name key, the room.
LEAVE = r"""
local mid = redis.call('HGET', K.names, ARGV[5])
if not mid then return {'no-sender', position()} end
local room = ARGV[6]
if redis.call('SISMEMBER', key.member_rooms(mid), room) == 0 then
  return {'not-in', position()}
end
leave_room(mid, room, redis.call('HGET', key.member(mid), 'name') .. ' left')
return {'ok', position()}
"""

# ARGV[5..]: the sender's name key, the room, the text, the text as lines show it
# (sanitised), the time it was sent, the room history cap.
SAY = r"""
local mid = redis.call('HGET', K.names, ARGV[5])
if not mid then return {'no-sender', position()} end
local room = ARGV[6]
if redis.call('SISMEMBER', key.member_rooms(mid), room) == 0 then
  return {'join-first', position()}
end
local name = redis.call('HGET', key.member(mid), 'name')
local eid = to_room(room, mid, WHEN .. ' ' .. room .. ' ' .. name .. ': ' .. ARGV[8] .. '\n')
keep_capped(key.room_history(room), cjson.encode({eid, ARGV[9], room, name, ARGV[7]}),
  tonumber(ARGV[10]))
return {'ok', eid}
"""

# ARGV[5..]: the sender's name key, the recipient's, the text, the text as lines show
# it, the time it was sent, the direct history cap.
DIRECT = r"""
local from = redis.call('HGET', K.names, ARGV[5])
if not from then return {'no-sender', position()} end
local to = redis.call('HGET', K.names, ARGV[6])
if not to then return {'no-target', position()} end
local pair = redis.call('HGET', key.member(from), 'name') .. '>'
  .. redis.call('HGET', key.member(to), 'name')
local eid, data = publish('d ' .. to, WHEN .. ' direct ' .. pair .. ': ' .. ARGV[8] .. '\n')
local kept = cjson.encode({eid, ARGV[9], 'direct', pair, ARGV[7]})
local cap = tonumber(ARGV[10])
keep_capped(key.member_direct(from), kept, cap)
if to ~= from then keep_capped(key.member_direct(to), kept, cap) end
if redis.call('ZSCORE', K.held, to) then keep_missed(to, data) end
return {'ok', eid}
"""

# ARGV[5..]: the sender's name key, the text as lines show it. Answers ok: how many
# others (held ones too) it is for.
BROADCAST = r"""
local from = redis.call('HGET', K.names, ARGV[5])
if not from then return {'no-sender', position()} end
local name = redis.call('HGET', key.member(from), 'name')
local eid, data = publish('a ' .. from, WHEN .. ' all ' .. name .. ': ' .. ARGV[6] .. '\n')
for _, mid in ipairs(redis.call('ZRANGE', K.held, 0, -1)) do
  if mid ~= from then keep_missed(mid, data) end
end
return {'ok', eid, redis.call('HLEN', K.names) - 1}
"""

# ARGV[5..]: the token, the current session's name key. Answers ok: the held member's
# name, its id, missed messages dropped, its room count, its rooms, the missed lines.
RESUME = r"""
local mid = redis.call('HGET', K.tokens, ARGV[5])
local deadline = mid and redis.call('ZSCORE', K.held, mid)
if not deadline or tonumber(deadline) < redis_now() then
  return {'bad-token', position()}
end
local fresh = redis.call('HGET', K.names, ARGV[6])
if not fresh then return {'no-sender', position()} end
if redis.call('SCARD', key.member_rooms(fresh)) > 0 then return {'has-rooms', position()} end
local fresh_member = key.member(fresh)
local number = redis.call('HGET', fresh_member, 'session')
redis.call('HDEL', K.names, ARGV[6])
redis.call('HDEL', K.tokens, redis.call('HGET', fresh_member, 'token'))
redis.call('DEL', fresh_member, key.member_direct(fresh), key.member_missed(fresh))
local member = key.member(mid)
local name = redis.call('HGET', member, 'name')
rename_record(number, name)
redis.call('HSET', member, 'session', number)
redis.call('ZREM', K.held, mid)
local missed = redis.call('LRANGE', key.member_missed(mid), 0, -1)
local dropped = tonumber(redis.call('HGET', member, 'dropped') or '0')
redis.call('DEL', key.member_missed(mid))
redis.call('HDEL', member, 'dropped')
local rooms = sorted_members(key.member_rooms(mid))
for _, room in ipairs(rooms) do
  redis.call('SREM', key.room_away(room), mid)
  announce(room, mid, name .. ' is back')
end
local reply = {'ok', position(), name, mid, dropped, #rooms}
append_all(reply, rooms)
append_all(reply, missed)
return reply
"""

# ARGV[5..]: history limit, room history cap, direct history cap, the node that sets
# them, the three as live settings (JSON). Trims what is kept now to the new sizes
# (departed sessions trimmed count as dropped) and shares them with every node.
RESIZE = r"""
local excess = redis.call('LLEN', K.departed) - tonumber(ARGV[5])
if excess > 0 then
  redis.call('LTRIM', K.departed, excess, -1)
  redis.call('INCRBY', K.dropped, excess)
end
local function trim(list, cap)
  if cap > 0 then redis.call('LTRIM', list, -cap, -1) else redis.call('DEL', list) end
end
local room_cap, direct_cap = tonumber(ARGV[6]), tonumber(ARGV[7])
for _, room in ipairs(redis.call('HKEYS', K.rooms)) do trim(key.room_history(room), room_cap) end
for _, mid in ipairs(redis.call('HVALS', K.names)) do trim(key.member_direct(mid), direct_cap) end
return {'ok', share(ARGV[8], ARGV[9])}
"""

# ARGV[5..]: the node that sets them, the live settings (JSON object of setting -> value
# as JSON text). Answers ok and the notice's event id (or the position).
SHARE = r"""
return {'ok', share(ARGV[5], ARGV[6])}
"""

# ARGV[5..]: the client's name key, the node asking. If a client of that name is
# connected (not held), its node is told to disconnect it: a ``kick`` notice of its
# member id, its session number and the node asking. Answers ok, the position, and the
# session's record (nothing if no such client is connected).
KICK = r"""
local mid = redis.call('HGET', K.names, ARGV[5])
local number = mid and redis.call('HGET', key.member(mid), 'session')
local raw = number and number ~= '' and redis.call('HGET', K.sessions, number)
if not raw then return {'ok', position()} end
local node = cjson.decode(raw)[8]
return {'ok', notice(node, 'kick', mid .. ' ' .. number .. ' ' .. ARGV[6]), raw}
"""

# Answers ok: the names of the held members forgotten, their grace being over.
EXPIRE = r"""
local names = {}
for _, mid in ipairs(redis.call('ZRANGEBYSCORE', K.held, '-inf', '(' .. redis_now())) do
  names[#names + 1] = forget(mid, 'did not come back')
end
local reply = {'ok', position()}
append_all(reply, names)
return reply
"""

# ARGV[5]: how many departed sessions to list (-1: all). Answers ok, 0, max_clients,
# seen, rejected, dropped, departed count, connected count, then the connected
# records, then the departed ones listed (oldest first).
SNAPSHOT = r"""
local limit = tonumber(ARGV[5])
local connected = redis.call('HVALS', K.sessions)
local departed = {}
if limit < 0 then
  departed = redis.call('LRANGE', K.departed, 0, -1)
elseif limit > 0 then
  departed = redis.call('LRANGE', K.departed, -limit, -1)
end
local reply = {'ok', 0,
  tonumber(redis.call('GET', K.max_clients) or '0'),
  tonumber(redis.call('GET', K.session_seq) or '0'),
  tonumber(redis.call('GET', K.rejected) or '0'),
  tonumber(redis.call('GET', K.dropped) or '0'),
  redis.call('LLEN', K.departed), #connected}
append_all(reply, connected)
append_all(reply, departed)
return reply
"""

# Answers ok, 0, then for each connected member: its name, its room count, its rooms.
WHO = r"""
local reply = {'ok', 0}
for _, mid in ipairs(redis.call('HVALS', K.names)) do
  if not redis.call('ZSCORE', K.held, mid) then
    local rooms = redis.call('SMEMBERS', key.member_rooms(mid))
    reply[#reply + 1] = redis.call('HGET', key.member(mid), 'name')
    reply[#reply + 1] = #rooms
    append_all(reply, rooms)
  end
end
return reply
"""

# ARGV[5]: the room. Answers ok, 0, then for each member: its name, 1 if held else 0.
MEMBERS = r"""
local room = ARGV[5]
if redis.call('HEXISTS', K.rooms, room) == 0 then return {'no-room', 0} end
local reply = {'ok', 0}
for _, mid in ipairs(redis.call('SMEMBERS', key.room_members(room))) do
  reply[#reply + 1] = redis.call('HGET', key.member(mid), 'name')
  reply[#reply + 1] = redis.call('ZSCORE', K.held, mid) and 1 or 0
end
return reply
"""

# ARGV[5..]: the member's name key, the scope ("direct" or a room). Answers ok, 0,
# then the kept events of that scope, oldest first.
HISTORY = r"""
local mid = redis.call('HGET', K.names, ARGV[5])
if not mid then return {'no-sender', 0} end
local scope = ARGV[6]
local list
if scope == 'direct' then
  list = key.member_direct(mid)
elseif redis.call('SISMEMBER', key.member_rooms(mid), scope) == 1 then
  list = key.room_history(scope)
else
  return {'join-first', 0}
end
local reply = {'ok', 0}
append_all(reply, redis.call('LRANGE', list, 0, -1))
return reply
"""


# ARGV[5..]: the node, its instance id (this process's), the heartbeat TTL in
# milliseconds, 1 if the node may reap others (it has beaten for a TTL), the time as
# records keep it, the resume grace, the history limit, an id for a new run. Sets the
# node's heartbeat; reaps every other node that has sessions and no heartbeat (whoever
# runs first does it, in this one step: the others find nothing); makes a new run if
# Redis has none, letting the live clients register before anyone is admitted; and
# publishes a beat notice, which the node's own reader must hear; every reader hears of
# a node reaped from a notice too. Answers ok, the beat's event id, the run, and the
# heartbeat's previous value ('' if it had expired: this node may have been reaped).
BEAT = r"""
local node, ttl = ARGV[5], ARGV[7]
local run = redis.call('GET', K.run)
if not run then
  run = ARGV[12]
  redis.call('SET', K.run, run)
  redis.call('SET', K.settling, node, 'PX', ttl)
end
local previous = redis.call('SET', key.heartbeat(node), ARGV[6], 'PX', ttl, 'GET')
if ARGV[8] == '1' then
  for _, other in ipairs(redis.call('HKEYS', K.node_counts)) do
    if other ~= node and redis.call('EXISTS', key.heartbeat(other)) == 0 then
      local numbers = redis.call('SMEMBERS', key.node_sessions(other))
      for _, number in ipairs(numbers) do
        depart_session(number, ARGV[9], 'node lost', true, tonumber(ARGV[10]), tonumber(ARGV[11]))
      end
      redis.call('HDEL', K.node_counts, other)
      redis.call('DEL', key.node_sessions(other))
      notice(other, 'lost', node .. ' ' .. #numbers)
    end
  end
end
return {'ok', notice(node, 'beat', ''), run, previous or ''}
"""

# ARGV[5..]: the node, the time as records keep it, the resume grace, the history limit,
# the node's max_clients (set if the cluster has none), its live settings (JSON object
# of setting -> value as JSON text; each set if the cluster has none), then the node's
# live clients as
# one JSON array of [number, member id, name, name key, token, address, connected at,
# earlier names, rooms]. Makes the cluster's state agree with what the node has: a
# client the cluster still has as it was is left alone ('ok'); one held because its node
# was reaped is taken back, its rooms hear it is back ('back'); one the cluster forgot
# (Redis lost its data, or its grace ran out) claims its name again, with new numbers if
# its own went to others meanwhile ('restored'); one whose name is another session's
# now is not registered ('taken'). The node's sessions that it does not have any more
# (gone while it could not tell Redis, or left by an earlier process of the node) end
# as 'node lost'. Answers ok, the position, how many sessions ended so, then for each
# client its outcome, member id and number.
REREGISTER = r"""
local node, at = ARGV[5], ARGV[6]
local grace, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('SET', K.max_clients, ARGV[9], 'NX')
for name, value in pairs(cjson.decode(ARGV[10])) do redis.call('HSETNX', K.live, name, value) end
local live = {}
local reply = {'ok', 0, 0}
for _, client in ipairs(cjson.decode(ARGV[11])) do
  local number, mid, name, name_key = client[1], client[2], client[3], client[4]
  local holder = redis.call('HGET', K.names, name_key)
  local outcome
  if holder == mid and redis.call('HGET', key.member(mid), 'session') == number then
    outcome = 'ok'
  elseif holder == mid and redis.call('ZSCORE', K.held, mid) then
    outcome = 'back'
    redis.call('HSET', key.member(mid), 'session', number)
    redis.call('ZREM', K.held, mid)
    for _, room in ipairs(sorted_members(key.member_rooms(mid))) do
      redis.call('SREM', key.room_away(room), mid)
      announce(room, mid, name .. ' is back')
    end
  elseif holder then
    outcome = 'taken'
  else
    outcome = 'restored'
    if redis.call('EXISTS', key.member(mid)) == 1
        or redis.call('HEXISTS', K.sessions, number) == 1 then
      number = tostring(redis.call('INCR', K.session_seq))
      mid = number
    end
    local top = math.max(tonumber(number), tonumber(mid))
    if tonumber(redis.call('GET', K.session_seq) or '0') < top then
      redis.call('SET', K.session_seq, top)
    end
    redis.call('HSET', K.names, name_key, mid)
    redis.call('HSET', key.member(mid), 'name', name, 'token', client[5], 'session', number)
    redis.call('HSETNX', K.tokens, client[5], mid)
    for _, room in ipairs(client[9]) do
      redis.call('SADD', key.member_rooms(mid), room)
      if redis.call('SADD', key.room_members(room), mid) == 1 then
        redis.call('HINCRBY', K.rooms, room, 1)
      end
    end
  end
  if outcome ~= 'taken' then
    if redis.call('HEXISTS', K.sessions, number) == 0 then
      redis.call('HSET', K.sessions, number,
        cjson.encode({tonumber(number), name, client[6], client[7], '', '', client[8], node}))
      redis.call('HINCRBY', K.node_counts, node, 1)
    end
    redis.call('SADD', key.node_sessions(node), number)
    live[number] = true
  end
  append_all(reply, {outcome, mid, number})
end
for _, number in ipairs(redis.call('SMEMBERS', key.node_sessions(node))) do
  if not live[number] then
    depart_session(number, at, 'node lost', true, grace, limit)
    reply[3] = reply[3] + 1
  end
end
reply[2] = position()
return reply
"""

# ARGV[5..]: the new limit, the node that sets it. Every node's reader hears of a change
# (a notice), and logs it. Answers ok and the notice's event id (or the position).
SET_MAX = r"""
local old = redis.call('GET', K.max_clients) or ARGV[5]
redis.call('SET', K.max_clients, ARGV[5])
if old == ARGV[5] then return {'ok', position()} end
return {'ok', notice(ARGV[6], 'max_clients', old .. ' ' .. ARGV[5])}
"""


# The scripts, by name, and their bodies.
_BODIES = {
    "admit": ADMIT,
    "depart": DEPART,
    "rename": RENAME,
    "join": JOIN,
    "leave": LEAVE,
    "say": SAY,
    "direct": DIRECT,
    "broadcast": BROADCAST,
    "resume": RESUME,
    "expire": EXPIRE,
    "resize": RESIZE,
    "snapshot": SNAPSHOT,
    "who": WHO,
    "members": MEMBERS,
    "history": HISTORY,
    "beat": BEAT,
    "reregister": REREGISTER,
    "set_max": SET_MAX,
    "share": SHARE,
    "kick": KICK,
}
_SHARED = lua_key_names() + _CALL_STATE + _LIBRARY
# The library's name: ackchat and a hash of its code, so that another version's differs.
_NAME = "ackchat_" + hashlib.sha1((_SHARED + "".join(_BODIES.values())).encode()).hexdigest()[:16]


def _registered(name: str, body: str) -> str:
    """Lua that registers ``body`` as the function of the script ``name``."""
    return f"redis.register_function('{_NAME}_{name}', function(_, args)\nbegin(args)\n{body}end)\n"


LIBRARY = Library(
    _NAME.encode(),
    (
        f"#!lua name={_NAME}\n"
        + _SHARED
        + "".join(_registered(name, body) for name, body in _BODIES.items())
    ).encode(),
)


def _script(name: str) -> Script:
    return Script(name, f"{_NAME}_{name}".encode())


admit = _script("admit")
depart = _script("depart")
rename = _script("rename")
join = _script("join")
leave = _script("leave")
say = _script("say")
direct = _script("direct")
broadcast = _script("broadcast")
resume = _script("resume")
expire = _script("expire")
resize = _script("resize")
snapshot = _script("snapshot")
who = _script("who")
members = _script("members")
history = _script("history")
beat = _script("beat")
reregister = _script("reregister")
set_max = _script("set_max")
share = _script("share")
kick = _script("kick")
