"""Where a cluster keeps its state in Redis: every key, named here and nowhere else.

Every key starts with the cluster's name in a hash tag, ``{<cluster>}:``, so that all of
a cluster's keys hash to one Redis Cluster slot (a Lua script may then touch any of them)
and two clusters can share one Redis without meeting. The scripts build the per-member
and per-room keys with the Lua function :func:`lua_key_names` writes from the same
templates, so the layout has one source.

Members are named by their member id (the admission number of the session that first
took the name), not by name: a rename changes one field, not every key of the member.
"""

from __future__ import annotations

import re

# A cluster name goes inside the hash tag and every key: no braces, spaces or colons.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The one placeholder of a per-member, per-room or per-node key template.
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

# The cluster's own keys, by what they hold.
FIXED = {
    # The cluster-wide client limit (a string holding an integer).
    "max_clients": "max",
    # The other live settings every node runs with: setting name -> its value as JSON
    # text (the idle timeout, the rate limits, status_recent, the history sizes).
    "live": "live",
    # Admission numbers: Client01, Client02, ... (INCR).
    "session_seq": "seq",
    # Connections turned away because the cluster (or a node) was full.
    "rejected": "rejected",
    # Departed sessions dropped from the capped list.
    "dropped": "dropped",
    # Connected sessions: admission number -> record (codec.encode_record).
    "sessions": "sessions",
    # Departed sessions, oldest first, capped at history_limit.
    "departed": "departed",
    # Connected sessions per node: node id -> count (for node_max_clients).
    "node_counts": "nodes",
    # Every chat identity, connected or held: name_key(name) -> member id.
    "names": "names",
    # Resume tokens: token -> member id.
    "tokens": "tokens",
    # Held members: member id -> deadline, in seconds of Redis's own clock (TIME).
    "held": "held",
    # Rooms: room -> member count.
    "rooms": "rooms",
    # Event ids (INCR), drawn by the script that records the event.
    "event_seq": "eid",
    # Every event, once, for every node's reader: a capped stream whose entry ids are
    # ``<event id>-0``.
    "events": "events",
    # The id of the cluster's run: made when Redis has none (the first node, or Redis lost
    # its data), so that a node can tell that the state it registered is gone.
    "run": "run",
    # Set for one heartbeat TTL when a node starts a new run over lost data: admissions
    # wait meanwhile, so that the live clients get their names back first.
    "settling": "settling",
}

# Per-member keys ({mid}: the member id), per-room keys ({room}: ``#dev``) and per-node
# keys ({node}: the node id).
PER_KEY = {
    # Hash: name, token, session (the admission number of its connection; "" while
    # held), dropped (missed messages dropped while held).
    "member": "m:{mid}",
    # Set: the member's rooms.
    "member_rooms": "m:{mid}:rooms",
    # List: the member's direct messages (codec event records), capped.
    "member_direct": "m:{mid}:direct",
    # List: encoded event lines kept for a held member, capped at resume_buffer.
    "member_missed": "m:{mid}:missed",
    # Set: member ids in the room, held ones included.
    "room_members": "r:{room}:members",
    # Set: the held member ids in the room (they get the room's lines kept for them).
    "room_away": "r:{room}:away",
    # List: the room's messages (codec event records), capped at room_history.
    "room_history": "r:{room}:history",
    # String: the node's heartbeat, its process's instance id, expiring after the TTL.
    "heartbeat": "hb:{node}",
    # Set: the admission numbers of the sessions connected to the node.
    "node_sessions": "n:{node}:sessions",
}


def key_prefix(cluster: str) -> str:
    """The prefix of every key of ``cluster``: its name in a hash tag."""
    if CLUSTER_NAME.fullmatch(cluster) is None:
        raise ValueError(
            f"invalid cluster name {cluster!r}: use 1 to 64 letters, digits, '_', '-' or '.'"
        )
    return f"{{{cluster}}}:"


class ClusterKeys:
    """The keys of one cluster, for the commands sent from Python."""

    def __init__(self, cluster: str) -> None:
        self.prefix = key_prefix(cluster)
        prefix = self.prefix
        self.max_clients = prefix + FIXED["max_clients"]
        self.session_seq = prefix + FIXED["session_seq"]
        self.rejected = prefix + FIXED["rejected"]
        self.dropped = prefix + FIXED["dropped"]
        self.departed = prefix + FIXED["departed"]
        self.live = prefix + FIXED["live"]
        self.rooms = prefix + FIXED["rooms"]
        self.event_seq = prefix + FIXED["event_seq"]
        self.events = prefix + FIXED["events"]
        self.run = prefix + FIXED["run"]

    def heartbeat(self, node: str) -> str:
        """The heartbeat key of ``node``."""
        return self.prefix + PER_KEY["heartbeat"].format(node=node)


def lua_key_names() -> str:
    """Lua for ``key_names(P)``, which names every key from the prefix ``P``: it returns
    ``K``, with ``K.<name>`` for the fixed keys, and ``key``, with ``key.<name>(mid)``,
    ``key.<name>(room)`` or ``key.<name>(node)`` for the others."""
    lines = ["local function key_names(P)", "  local K = {}"]
    lines += [f"  K.{name} = P .. {suffix!r}" for name, suffix in FIXED.items()]
    lines.append("  local key = {}")
    for name, template in PER_KEY.items():
        (argument,) = _PLACEHOLDER.findall(template)
        before, after = template.split("{" + argument + "}")
        lines.append(
            f"  key.{name} = function({argument}) return P .. {before!r} .. {argument}"
            f" .. {after!r} end"
        )
    lines += ["  return K, key", "end"]
    return "\n".join(lines) + "\n"
