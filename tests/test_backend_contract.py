"""The contract every backend keeps, whether it answers at once or later.

Each test runs against every backend in ``BACKENDS`` (the ``open_backend`` fixture) and
speaks only the :class:`~ackchat.backend.interface.Backend` interface: calls, the
answers they give (through :func:`answer`, which waits for a pending one) and what
peers are sent. Nothing here looks inside a backend, so a new backend is held to the
same contract by adding it to ``BACKENDS`` and :func:`make_backend`. The Redis backend
runs on a real redis-server (one per module), in a cluster of its own per backend; its
held sessions' grace is measured by Redis's clock, so those tests let it pass through a
:class:`~backends.Lapse` rather than the manual clock.

Calls that race are *issued* together before any answer is awaited: a backend that
answers later (``memory-later``) then carries them out only once they are all
waiting, as concurrent sessions would ask a shared store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ackchat.backend.interface import Backend
from ackchat.backend.pending import Pending, Result
from ackchat.chat.hub import ChatError, ChatEvent
from ackchat.records import DisconnectReason, SessionRecord
from backends import (
    DeferredBackend,
    Lapse,
    ManualClock,
    ManualLapse,
    RedisLapse,
    memory_backend,
    redis_backend,
    redis_url,
)

T = TypeVar("T")
P = ParamSpec("P")

# "memory": the memory backend, answering at once; "memory-later": the same state
# behind answers that are pending until the test settles them, as a remote backend's;
# "redis": the Redis backend, one node of a cluster on a real redis-server.
BACKENDS = ["memory", "memory-later", "redis"]

# How long a pending answer may take to come (only a backend in another process waits).
WAIT = 5.0

UNKNOWN_TOKEN = "unknown or expired resume token"


def make_backend(kind: str, clock: ManualClock, url: str = "", **sizes: Any) -> Backend:
    """A backend of ``kind`` on ``clock``, not started; ``sizes`` as MemoryBackend takes them.

    A Redis backend uses the redis-server at ``url``, and a node id of "" so that its
    records are the ones the memory backend makes (test_redis_backend.py checks nodes).
    """
    if kind == "memory":
        return memory_backend(clock, **sizes)
    if kind == "memory-later":
        return cast(Backend, DeferredBackend(memory_backend(clock, **sizes)))
    if kind == "redis":
        return redis_backend(url, clock, **sizes)
    raise ValueError(f"no such backend: {kind}")


class OpenBackend(Protocol):
    """Make and start a backend with these sizes; it is closed after the test."""

    async def __call__(self, **sizes: Any) -> Backend: ...


@pytest.fixture
def clock() -> ManualClock:
    """The time every backend of the test reads; it moves only when the test says."""
    return ManualClock()


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Which backend the test holds to the contract."""
    return cast(str, request.param)


@pytest.fixture
def url(backend_kind: str, request: pytest.FixtureRequest) -> str:
    """The redis-server a Redis backend uses ("" for the others, which start none)."""
    if backend_kind != "redis":
        return ""
    return redis_url(request.getfixturevalue("redis_server").port)


@pytest.fixture
def lapse(backend_kind: str, clock: ManualClock, url: str) -> Lapse:
    """How the test lets a held session's grace pass for this backend."""
    return RedisLapse(url) if backend_kind == "redis" else ManualLapse(clock)


@pytest.fixture
async def open_backend(
    backend_kind: str, clock: ManualClock, url: str
) -> AsyncIterator[OpenBackend]:
    opened: list[Backend] = []

    async def open_one(**sizes: Any) -> Backend:
        backend = make_backend(backend_kind, clock, url, **sizes)
        await backend.start()
        opened.append(backend)
        return backend

    yield open_one
    for backend in opened:
        await backend.close()


# Answers


async def answer(backend: Backend, result: Result[T]) -> T:
    """The value of ``result``: at once, or once settled (a deferred backend is settled now)."""
    if not isinstance(result, Pending):
        return result
    if not result.done and isinstance(backend, DeferredBackend):
        backend.settle()
    if not result.done:
        # A backend in another process settles its answers from its own I/O.
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: Pending[T]) -> None:
            if not settled.done():
                settled.set_result(None)

        result.add_done_callback(wake)
        await asyncio.wait_for(settled, WAIT)
    return result.result()


def issue(operation: Callable[P, Result[T]], *args: P.args, **kwargs: P.kwargs) -> Result[T]:
    """Call ``operation`` without waiting for its answer; a refusal raised at once is
    kept as an answer that failed, as a backend answering later would give it."""
    try:
        return operation(*args, **kwargs)
    except ChatError as error:
        failed: Pending[T] = Pending()
        failed.set_exception(error)
        return failed


async def outcome(backend: Backend, result: Result[T]) -> T | ChatError:
    """The answer to a call that may be refused: its value or the ChatError."""
    try:
        return await answer(backend, result)
    except ChatError as error:
        return error


async def refusal(backend: Backend, operation: Callable[..., Result[Any]], *args: Any) -> str:
    """The message of the ChatError ``operation(*args)`` is refused with."""
    got = await outcome(backend, issue(operation, *args))
    assert isinstance(got, ChatError), f"{operation.__name__}{args} was not refused: {got!r}"
    return str(got)


# Peers and clients

EVENT_LINE = re.compile(r"@(\d+) \S+ (\S+) ([^ :]+): (.*)")


@dataclass(frozen=True)
class Seen:
    """An event line as a peer got it."""

    id: int
    scope: str
    sender: str
    text: str


def parse_event(line: str) -> Seen:
    match = EVENT_LINE.fullmatch(line)
    assert match is not None, f"not an event line: {line!r}"
    return Seen(int(match[1]), match[2], match[3], match[4])


class Inbox:
    """A peer that keeps the event lines it is sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def deliver(self, data: bytes) -> None:
        self.lines.extend(data.decode().splitlines())

    def events(self) -> list[Seen]:
        return [parse_event(line) for line in self.lines]

    def said(self) -> list[tuple[str, str, str]]:
        """(scope, sender, text) of each event, without ids."""
        return [(event.scope, event.sender, event.text) for event in self.events()]


@dataclass
class Client:
    """A connected client as a test holds it: its current name, token and peer."""

    name: str
    token: str
    record: SessionRecord
    inbox: Inbox = field(default_factory=Inbox)


async def connect(backend: Backend, name: str | None = None, address: str = "") -> Client:
    """Admit a client (it must fit) and give it ``name`` if one is given."""
    inbox = Inbox()
    admitted = await answer(backend, backend.admit(address or "127.0.0.1:40000", inbox))
    assert admitted is not None, "the backend is full"
    client = Client(admitted.record.name, admitted.token, admitted.record, inbox)
    if name is not None:
        client.name = await answer(backend, backend.rename(client.name, name))
    return client


def texts(events: list[ChatEvent]) -> list[str]:
    return [event.text for event in events]


def connected_names(records: list[SessionRecord]) -> list[str]:
    return [record.name for record in records if record.disconnected_at is None]


# Names are 1 to 20 ASCII letters, digits, '_' or '-' from a letter; ClientNN are assigned.
chosen_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,19}", fullmatch=True).filter(
    lambda name: re.fullmatch(r"client\d+", name, re.IGNORECASE) is None
)


@st.composite
def case_variants(draw: st.DrawFn) -> list[str]:
    """One chosen name written two to six ways, upper and lower case mixed."""
    name = draw(chosen_names)
    count = draw(st.integers(min_value=2, max_value=6))
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return [
        "".join(
            char.upper() if up else char.lower() for char, up in zip(name, draw(flips), strict=True)
        )
        for _ in range(count)
    ]


# Each example opens a fresh backend through the factory fixture, so sharing the
# fixture across examples shares no state.
contract_examples = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# Lifecycle


async def test_a_started_backend_answers_and_closes(
    backend_kind: str, clock: ManualClock, url: str
) -> None:
    backend = make_backend(backend_kind, clock, url, max_clients=2)
    await asyncio.wait_for(backend.start(), WAIT)
    try:
        admitted = await answer(backend, backend.admit("127.0.0.1:1", Inbox()))
        assert admitted is not None
        assert admitted.record.name == "Client01"
        assert backend.max_clients == 2
    finally:
        await asyncio.wait_for(backend.close(), WAIT)


# Assigned names


async def test_assigned_names_count_up_and_are_never_reused(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=2)
    reasons = list(DisconnectReason)
    names: list[str] = []
    tokens: set[str] = set()
    connected: list[str] = []
    for number in range(12):
        if len(connected) == 2:  # full: the oldest leaves, held for resume or not
            reason = reasons[number % len(reasons)]
            await answer(backend, backend.depart(connected.pop(0), reason, number % 2 == 0))
        admitted = await answer(backend, backend.admit(f"10.0.0.{number}:9", Inbox()))
        assert admitted is not None
        assert admitted.record.number == number + 1
        names.append(admitted.record.name)
        connected.append(admitted.record.name)
        tokens.add(admitted.token)
    assert names == [f"Client{number:02d}" for number in range(1, 13)]
    assert len(tokens) == 12
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", token) for token in tokens)
    assert (await answer(backend, backend.snapshot(None))).seen == 12


@contract_examples
@given(st.integers(min_value=1, max_value=8), st.integers(min_value=0, max_value=30))
async def test_admission_is_exact_under_concurrent_admits(
    open_backend: OpenBackend, max_clients: int, arriving: int
) -> None:
    backend = await open_backend(max_clients=max_clients)
    results = [backend.admit(f"10.0.0.1:{port}", Inbox()) for port in range(arriving)]
    answers = [await answer(backend, result) for result in results]
    admitted = [got for got in answers if got is not None]
    fits = min(max_clients, arriving)
    assert len(admitted) == fits
    assert sorted(got.record.number for got in admitted) == list(range(1, fits + 1))
    assert len({got.token for got in admitted}) == fits
    status = await answer(backend, backend.snapshot(None))
    assert (status.connected, status.seen, status.rejected) == (fits, fits, arriving - fits)
    assert status.max_clients == max_clients


async def test_max_clients_is_exact_and_a_departure_makes_room(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=5)
    first = [backend.admit(f"10.0.0.2:{port}", Inbox()) for port in range(20)]
    answers = [await answer(backend, result) for result in first]
    admitted = [got for got in answers if got is not None]
    assert len(admitted) == 5
    assert answers.count(None) == 15
    assert sorted(got.record.name for got in admitted) == [f"Client0{n}" for n in range(1, 6)]

    await answer(backend, backend.depart(admitted[2].record.name, DisconnectReason.RESET, False))
    second = [backend.admit(f"10.0.0.3:{port}", Inbox()) for port in range(3)]
    again = [await answer(backend, result) for result in second]
    fitted = [got for got in again if got is not None]
    assert [got.record.name for got in fitted] == ["Client06"]
    status = await answer(backend, backend.snapshot(None))
    assert (status.connected, status.seen, status.rejected) == (5, 6, 17)


async def test_lowering_max_clients_disconnects_nobody(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=5)
    clients = [await connect(backend) for _ in range(4)]
    await answer(backend, backend.set_max_clients(2))
    assert backend.max_clients == 2
    status = await answer(backend, backend.snapshot(None))
    assert (status.connected, status.max_clients) == (4, 2)
    assert connected_names(status.sessions) == [client.name for client in clients]
    assert [name for name, _ in await answer(backend, backend.who())] == [
        client.name for client in clients
    ]

    assert await answer(backend, backend.admit("10.0.0.4:1", Inbox())) is None
    for client in clients[:2]:
        await answer(backend, backend.depart(client.name, DisconnectReason.EXIT, False))
    assert await answer(backend, backend.admit("10.0.0.4:2", Inbox())) is None
    await answer(backend, backend.depart(clients[2].name, DisconnectReason.EXIT, False))
    assert (await connect(backend)).name == "Client05"

    await answer(backend, backend.set_max_clients(3))
    assert backend.max_clients == 3
    assert (await connect(backend)).name == "Client06"
    assert await answer(backend, backend.admit("10.0.0.4:3", Inbox())) is None


# Chosen names


@contract_examples
@given(case_variants())
async def test_names_are_unique_in_any_case_under_concurrent_claims(
    open_backend: OpenBackend, variants: list[str]
) -> None:
    backend = await open_backend(max_clients=len(variants))
    clients = [await connect(backend) for _ in variants]
    claims = [
        issue(backend.rename, client.name, variant)
        for client, variant in zip(clients, variants, strict=True)
    ]
    outcomes = []
    for claim in claims:  # not a comprehension, where mypy infers ``outcome``'s type wrong
        got = await outcome(backend, claim)
        outcomes.append(got)

    won = [index for index, got in enumerate(outcomes) if not isinstance(got, ChatError)]
    assert len(won) == 1, outcomes
    winner = won[0]
    assert outcomes[winner] == variants[winner]
    for index, got in enumerate(outcomes):
        if index != winner:
            assert str(got) == f"name taken: {variants[index]}"
    status = await answer(backend, backend.snapshot(None))
    expected = [client.name for client in clients]
    expected[winner] = variants[winner]
    assert connected_names(status.sessions) == expected
    assert status.sessions[winner].earlier_names == (clients[winner].name,)

    # Its holder leaving (with exit) frees the name for another, in any case.
    await answer(backend, backend.depart(variants[winner], DisconnectReason.EXIT, False))
    other = (winner + 1) % len(variants)
    renamed = await answer(backend, backend.rename(clients[other].name, variants[other]))
    assert renamed == variants[other]


async def test_a_name_given_up_can_be_claimed_again(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=3)
    ann = await connect(backend, "Ann")
    other = await connect(backend)
    assert await refusal(backend, backend.rename, other.name, "aNN") == "name taken: aNN"
    # Its holder may change its own name's case.
    assert await answer(backend, backend.rename("Ann", "ANN")) == "ANN"
    assert await answer(backend, backend.rename("ANN", "Bea")) == "Bea"
    assert await answer(backend, backend.rename(other.name, "ann")) == "ann"
    assert await refusal(backend, backend.rename, "Bea", "Ann") == "name taken: Ann"
    status = await answer(backend, backend.snapshot(None))
    assert [(record.name, record.earlier_names) for record in status.sessions] == [
        ("Bea", (ann.record.name, "Ann", "ANN")),
        ("ann", (other.record.name,)),
    ]
    assert [name for name, _ in await answer(backend, backend.who())] == ["Bea", "ann"]


@pytest.mark.parametrize(
    ("new_name", "rule"),
    [
        ("", "invalid name"),
        ("1abc", "invalid name"),
        ("has space", "invalid name"),
        ("a" * 21, "invalid name"),
        ("client07", "ClientNN names are assigned by the server"),
        ("CLIENT1", "ClientNN names are assigned by the server"),
    ],
)
async def test_invalid_names_are_refused_and_change_nothing(
    open_backend: OpenBackend, new_name: str, rule: str
) -> None:
    backend = await open_backend()
    client = await connect(backend)
    assert rule in await refusal(backend, backend.rename, client.name, new_name)
    status = await answer(backend, backend.snapshot(None))
    assert [(record.name, record.earlier_names) for record in status.sessions] == [("Client01", ())]


async def test_a_held_name_stays_reserved_until_it_expires(
    open_backend: OpenBackend, lapse: Lapse
) -> None:
    backend = await open_backend(max_clients=3, resume_grace=lapse.grace)
    await connect(backend, "Wanderer")
    newcomer = await connect(backend)
    await answer(backend, backend.depart("Wanderer", DisconnectReason.CLOSED_BY_PEER, True))
    assert await refusal(backend, backend.rename, newcomer.name, "wanderer") == (
        "name taken: wanderer"
    )
    await lapse.past_grace()
    assert await answer(backend, backend.expire()) == ["Wanderer"]
    assert await answer(backend, backend.rename(newcomer.name, "wanderer")) == "wanderer"


# Departures and status


async def test_departures_keep_their_reasons_and_times(
    open_backend: OpenBackend, clock: ManualClock
) -> None:
    reasons = list(DisconnectReason)
    backend = await open_backend(max_clients=len(reasons) + 1)
    start = clock.now
    clients = []
    for number in range(len(reasons) + 1):
        clients.append(await connect(backend, address=f"192.0.2.{number}:{5000 + number}"))
        clock.advance(10.0)
    for client, reason in zip(clients, reasons, strict=False):
        clock.advance(1.0)
        await answer(backend, backend.depart(client.name, reason, reason != DisconnectReason.EXIT))

    status = await answer(backend, backend.snapshot(None))
    count = len(reasons)
    departed_at = [start + 10.0 * (count + 1) + 1.0 * (n + 1) for n in range(count)]
    assert status.sessions == [
        SessionRecord(
            number + 1,
            f"Client{number + 1:02d}",
            f"192.0.2.{number}:{5000 + number}",
            start + 10.0 * number,
            departed_at[number] if number < count else None,
            reasons[number] if number < count else None,
        )
        for number in range(count + 1)
    ]
    assert (status.connected, status.seen, status.rejected, status.dropped, status.hidden) == (
        1,
        count + 1,
        0,
        0,
        0,
    )


async def test_status_limits_recent_departures_but_lists_every_connected(
    open_backend: OpenBackend,
) -> None:
    backend = await open_backend(max_clients=10, history_limit=100)
    staying = await connect(backend)
    for _ in range(6):
        leaving = await connect(backend)
        await answer(backend, backend.depart(leaving.name, DisconnectReason.IDLE_TIMEOUT, False))
    latest = await connect(backend)

    recent = await answer(backend, backend.snapshot(2))
    assert [record.name for record in recent.sessions] == [
        staying.name,
        "Client06",
        "Client07",
        latest.name,
    ]
    assert (recent.hidden, recent.connected, recent.seen) == (4, 2, 8)
    none = await answer(backend, backend.snapshot(0))
    assert ([record.name for record in none.sessions], none.hidden) == (
        [staying.name, latest.name],
        6,
    )
    every = await answer(backend, backend.snapshot(None))
    assert (len(every.sessions), every.hidden) == (8, 0)
    wide = await answer(backend, backend.snapshot(50))
    assert (wide.sessions, wide.hidden) == (every.sessions, 0)


async def test_the_cache_of_departed_sessions_is_bounded(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=3, history_limit=3)
    staying = await connect(backend)
    for _ in range(5):
        leaving = await connect(backend)
        await answer(backend, backend.depart(leaving.name, DisconnectReason.EXIT, False))
    status = await answer(backend, backend.snapshot(None))
    assert [record.name for record in status.sessions] == [
        staying.name,
        "Client04",
        "Client05",
        "Client06",
    ]
    assert (status.dropped, status.hidden, status.seen, status.connected) == (2, 0, 6, 1)


async def test_the_version_changes_on_every_admission_departure_and_refusal(
    open_backend: OpenBackend,
) -> None:
    backend = await open_backend(max_clients=2, history_limit=1)

    async def version() -> tuple[int, ...]:
        return await answer(backend, backend.version())

    versions = [await version()]
    assert await version() == versions[0], "nothing happened"
    first = await connect(backend)
    versions.append(await version())
    second = await connect(backend)
    versions.append(await version())
    assert await answer(backend, backend.admit("10.0.0.9:1", Inbox())) is None
    versions.append(await version())
    await answer(backend, backend.depart(first.name, DisconnectReason.EXIT, False))
    versions.append(await version())
    # The cache holds one departed session: this departure drops the first from it.
    await answer(backend, backend.depart(second.name, DisconnectReason.KICKED, True))
    versions.append(await version())
    await answer(backend, backend.set_max_clients(3))
    versions.append(await version())
    assert len(set(versions)) == len(versions), versions
    assert await version() == versions[-1], "nothing happened"


# Rooms


async def test_join_gives_the_room_its_size_and_recent_messages(
    open_backend: OpenBackend, clock: ManualClock
) -> None:
    backend = await open_backend(room_history=3)
    ann = await connect(backend, "Ann")
    bob = await connect(backend, "Bob")
    assert await answer(backend, backend.join("Ann", "Dev")) == ("#dev", 1, [])
    for number in range(4):
        clock.advance(1.0)
        await answer(backend, backend.say("Ann", "#dev", f"m{number}"))
    room, count, recent = await answer(backend, backend.join("Bob", "#DEV"))
    assert (room, count, texts(recent)) == ("#dev", 2, ["m1", "m2", "m3"])
    assert [(event.scope, event.sender, event.time) for event in recent] == [
        ("#dev", "Ann", clock.now - 2.0),
        ("#dev", "Ann", clock.now - 1.0),
        ("#dev", "Ann", clock.now),
    ]
    assert ann.inbox.said() == [("#dev", "*", "Bob joined")]
    assert bob.inbox.lines == []
    assert await refusal(backend, backend.join, "Bob", "dev") == "you are in #dev already"
    assert "invalid room" in await refusal(backend, backend.join, "Bob", "#no way")


async def test_concurrent_joins_count_every_member_once(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=6)
    clients = [await connect(backend) for _ in range(6)]
    joins = [backend.join(client.name, "#crowd") for client in clients]
    counts = [(await answer(backend, result))[1] for result in joins]
    assert sorted(counts) == [1, 2, 3, 4, 5, 6]
    assert await answer(backend, backend.rooms()) == [("#crowd", 6)]
    assert await answer(backend, backend.members("crowd")) == (
        "#crowd",
        [client.name for client in clients],
    )


async def test_rooms_members_who_and_leaving(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=4)
    ann = await connect(backend, "Ann")
    await connect(backend, "Bob")
    idle = await connect(backend)
    for name, room in [("Ann", "zoo"), ("Ann", "Dev"), ("Bob", "dev")]:
        await answer(backend, backend.join(name, room))

    assert await answer(backend, backend.rooms()) == [("#dev", 2), ("#zoo", 1)]
    assert await answer(backend, backend.members("#DEV")) == ("#dev", ["Ann", "Bob"])
    assert await answer(backend, backend.who()) == [
        ("Ann", ["#dev", "#zoo"]),
        ("Bob", ["#dev"]),
        (idle.name, []),
    ]

    assert await answer(backend, backend.leave("Bob", "Dev")) == "#dev"
    assert ann.inbox.said()[-1] == ("#dev", "*", "Bob left")
    assert await refusal(backend, backend.leave, "Bob", "dev") == "you are not in #dev"
    assert await refusal(backend, backend.say, "Bob", "dev", "hi") == (
        "you are not in #dev: send '/join #dev' first"
    )
    assert await answer(backend, backend.members("dev")) == ("#dev", ["Ann"])
    assert await answer(backend, backend.leave("Ann", "#zoo")) == "#zoo"
    assert await answer(backend, backend.rooms()) == [("#dev", 1)]
    assert await refusal(backend, backend.members, "zoo") == "no such room: #zoo"

    # A held client stays in its rooms, away, and leaves who's list.
    await answer(backend, backend.depart("Ann", DisconnectReason.RESET, True))
    assert await answer(backend, backend.members("dev")) == ("#dev", ["Ann (away)"])
    assert await answer(backend, backend.who()) == [("Bob", []), (idle.name, [])]
    # One that exits leaves its rooms at once.
    await answer(backend, backend.join("Bob", "dev"))
    await answer(backend, backend.depart("Bob", DisconnectReason.EXIT, False))
    assert await answer(backend, backend.members("dev")) == ("#dev", ["Ann (away)"])


# Messages


async def test_messages_reach_exactly_their_recipients(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=4)
    ann = await connect(backend, "Ann")
    bob = await connect(backend, "Bob")
    cat = await connect(backend, "Cat")
    away = await connect(backend, "Dee")
    for name in ("Ann", "Bob", "Dee"):
        await answer(backend, backend.join(name, "dev"))
    await answer(backend, backend.depart("Dee", DisconnectReason.RESET, True))
    for inbox in (ann.inbox, bob.inbox, cat.inbox):
        inbox.lines.clear()

    await answer(backend, backend.say("Ann", "#dev", "to the room"))
    await answer(backend, backend.direct("Bob", "CAT", "to cat"))
    assert await answer(backend, backend.broadcast("Cat", "to all")) == 3
    assert await refusal(backend, backend.direct, "Ann", "ghost", "x") == "no such client: ghost"
    assert await refusal(backend, backend.say, "Cat", "dev", "x") == (
        "you are not in #dev: send '/join #dev' first"
    )

    assert ann.inbox.said() == [("all", "Cat", "to all")]
    assert bob.inbox.said() == [("#dev", "Ann", "to the room"), ("all", "Cat", "to all")]
    assert cat.inbox.said() == [("direct", "Bob>Cat", "to cat")]
    assert away.inbox.lines == []


# History and event ids


async def test_room_history_pages_back_by_id(open_backend: OpenBackend, clock: ManualClock) -> None:
    backend = await open_backend(room_history=50)
    await connect(backend, "Ann")
    bob = await connect(backend, "Bob")
    await answer(backend, backend.join("Ann", "dev"))
    await answer(backend, backend.join("Bob", "dev"))
    sent = [f"m{number}" for number in range(7)]
    for text in sent:
        clock.advance(1.0)
        await answer(backend, backend.say("Ann", "dev", text))

    page = await answer(backend, backend.history("Bob", "#DEV", None, 3))
    assert (page.scope, texts(page.events), page.more) == ("#dev", ["m4", "m5", "m6"], True)
    assert page.events[-1].time == clock.now
    assert [event.id for event in page.events] == [event.id for event in bob.inbox.events()[-3:]]
    pages = [page.events]
    while page.more:
        page = await answer(backend, backend.history("Bob", "dev", page.events[0].id, 3))
        pages.insert(0, page.events)
    assert [texts(events) for events in pages] == [["m0"], ["m1", "m2", "m3"], ["m4", "m5", "m6"]]
    everything = await answer(backend, backend.history("Ann", "dev", None, 100))
    assert (texts(everything.events), everything.more) == (sent, False)
    assert [event.id for events in pages for event in events] == [
        event.id for event in everything.events
    ]
    assert await refusal(backend, backend.history, "Bob", "zoo", None, 3) == (
        "you are not in #zoo: send '/join #zoo' first"
    )


async def test_room_history_is_bounded(open_backend: OpenBackend) -> None:
    backend = await open_backend(room_history=3)
    await connect(backend, "Ann")
    await answer(backend, backend.join("Ann", "dev"))
    for number in range(5):
        await answer(backend, backend.say("Ann", "dev", f"m{number}"))
    page = await answer(backend, backend.history("Ann", "dev", None, 10))
    assert (texts(page.events), page.more) == (["m2", "m3", "m4"], False)
    older = await answer(backend, backend.history("Ann", "dev", page.events[0].id, 10))
    assert (older.events, older.more) == ([], False)


async def test_direct_history_pages_back_by_id(open_backend: OpenBackend) -> None:
    backend = await open_backend(direct_history=50)
    await connect(backend, "Ann")
    await connect(backend, "Bob")
    await connect(backend, "Cat")
    for number in range(5):
        sender, recipient = ("Ann", "Bob") if number % 2 == 0 else ("Bob", "Ann")
        await answer(backend, backend.direct(sender, recipient, f"d{number}"))
    await answer(backend, backend.direct("Cat", "Bob", "aside"))

    page = await answer(backend, backend.history("Ann", "Direct", None, 2))
    assert (page.scope, texts(page.events), page.more) == ("direct", ["d3", "d4"], True)
    assert [event.sender for event in page.events] == ["Bob>Ann", "Ann>Bob"]
    older = await answer(backend, backend.history("Ann", "direct", page.events[0].id, 10))
    assert (texts(older.events), older.more) == (["d0", "d1", "d2"], False)
    bobs = await answer(backend, backend.history("Bob", "direct", None, 10))
    assert texts(bobs.events) == ["d0", "d1", "d2", "d3", "d4", "aside"]
    assert all(a.id < b.id for a, b in pairwise(bobs.events))
    before_aside = await answer(backend, backend.history("Bob", "direct", bobs.events[-1].id, 10))
    assert texts(before_aside.events) == ["d0", "d1", "d2", "d3", "d4"]
    cats = await answer(backend, backend.history("Cat", "direct", None, 10))
    assert texts(cats.events) == ["aside"]


@contract_examples
@given(st.lists(st.tuples(st.sampled_from(["#a", "#b", "direct", "all"]), st.booleans())))
async def test_event_ids_increase_within_every_scope(
    open_backend: OpenBackend, actions: list[tuple[str, bool]]
) -> None:
    backend = await open_backend(max_clients=3, room_history=100, direct_history=100)
    ann, bob, cat = [await connect(backend, name) for name in ("Ann", "Bob", "Cat")]
    for client in (ann, bob, cat):
        for room in ("#a", "#b"):
            await answer(backend, backend.join(client.name, room))
    # Every message is sent before any is answered, from two senders; Cat sees them all.
    sent: list[Result[Any]] = []
    for number, (scope, by_ann) in enumerate(actions):
        sender = "Ann" if by_ann else "Bob"
        text = f"{scope} {number}"
        if scope == "direct":
            sent.append(backend.direct(sender, "Cat", text))
        elif scope == "all":
            sent.append(backend.broadcast(sender, text))
        else:
            sent.append(backend.say(sender, scope, text))
    for result in sent:
        await answer(backend, result)

    seen = cat.inbox.events()
    assert len({event.id for event in seen}) == len(seen)
    assert all(event.id > 0 for event in seen)
    for scope in ("#a", "#b", "direct", "all"):
        ids = [event.id for event in seen if event.scope == scope]
        assert ids == sorted(ids), scope
        expected = [f"{scope} {n}" for n, (wanted, _) in enumerate(actions) if wanted == scope]
        messages = [event for event in seen if event.scope == scope and event.sender != "*"]
        assert [event.text for event in messages] == expected
        if scope != "all":
            kept = await answer(backend, backend.history("Cat", scope, None, 100))
            assert texts(kept.events) == expected
            assert all(a.id < b.id for a, b in pairwise(kept.events))


# Resume


async def test_resume_gives_back_the_name_rooms_and_missed_messages(
    open_backend: OpenBackend, clock: ManualClock
) -> None:
    backend = await open_backend(max_clients=3, resume_grace=60.0)
    wanderer = await connect(backend, "Wanderer")
    friend = await connect(backend, "Friend")
    for name, room in [("Wanderer", "camp"), ("Wanderer", "fire"), ("Friend", "camp")]:
        await answer(backend, backend.join(name, room))
    wanderer.inbox.lines.clear()
    clock.advance(5.0)
    await answer(backend, backend.depart("Wanderer", DisconnectReason.RESET, True))
    assert friend.inbox.said()[-1] == ("#camp", "*", "Wanderer lost the connection")

    await answer(backend, backend.say("Friend", "camp", "are you there?"))
    await answer(backend, backend.direct("Friend", "wanderer", "call me"))
    assert await answer(backend, backend.broadcast("Friend", "anyone?")) == 1
    assert wanderer.inbox.lines == []

    clock.advance(30.0)
    returning = await connect(backend, address="198.51.100.7:1234")
    back = Inbox()
    resumed = await answer(backend, backend.resume(wanderer.token, returning.name, back))
    assert (resumed.name, resumed.rooms, resumed.dropped) == ("Wanderer", ["#camp", "#fire"], 0)
    missed = [parse_event(data.decode().rstrip("\n")) for data in resumed.missed]
    assert [(event.scope, event.sender, event.text) for event in missed] == [
        ("#camp", "Friend", "are you there?"),
        ("direct", "Friend>Wanderer", "call me"),
        ("all", "Friend", "anyone?"),
    ]
    assert friend.inbox.said()[-1] == ("#camp", "*", "Wanderer is back")

    assert await answer(backend, backend.who()) == [
        ("Friend", ["#camp"]),
        ("Wanderer", ["#camp", "#fire"]),
    ]
    assert await answer(backend, backend.members("camp")) == ("#camp", ["Friend", "Wanderer"])
    status = await answer(backend, backend.snapshot(None))
    assert [(r.name, r.reason, r.earlier_names) for r in status.sessions] == [
        ("Wanderer", DisconnectReason.RESET, ("Client01",)),
        ("Friend", None, ("Client02",)),
        ("Wanderer", None, (returning.name,)),
    ]
    assert status.sessions[2].address == "198.51.100.7:1234"
    direct = await answer(backend, backend.history("Wanderer", "direct", None, 10))
    assert texts(direct.events) == ["call me"]

    # The resumed session is the one messages reach now.
    await answer(backend, backend.say("Friend", "camp", "welcome back"))
    assert [parse_event(line).text for line in back.lines] == ["welcome back"]
    # A token serves once per hold: the session it names is connected again.
    spare = await connect(backend)
    assert await refusal(backend, backend.resume, wanderer.token, spare.name, Inbox()) == (
        UNKNOWN_TOKEN
    )


async def test_what_a_held_session_misses_is_bounded(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=3, resume_buffer=2)
    away = await connect(backend, "Away")
    await connect(backend, "Friend")
    await answer(backend, backend.depart("Away", DisconnectReason.LINE_TIMEOUT, True))
    for number in range(5):
        await answer(backend, backend.direct("Friend", "Away", f"d{number}"))
    returning = await connect(backend)
    resumed = await answer(backend, backend.resume(away.token, returning.name, Inbox()))
    assert [parse_event(data.decode().rstrip("\n")).text for data in resumed.missed] == [
        "d3",
        "d4",
    ]
    assert resumed.dropped == 3


async def test_a_held_session_expires_after_the_grace_period(
    open_backend: OpenBackend, lapse: Lapse
) -> None:
    backend = await open_backend(max_clients=3, resume_grace=lapse.grace)
    wanderer = await connect(backend, "Wanderer")
    friend = await connect(backend, "Friend")
    await answer(backend, backend.join("Wanderer", "camp"))
    await answer(backend, backend.join("Friend", "camp"))
    await answer(backend, backend.depart("Wanderer", DisconnectReason.IDLE_TIMEOUT, True))

    await lapse.within_grace()
    assert await answer(backend, backend.expire()) == []
    assert await answer(backend, backend.members("camp")) == (
        "#camp",
        ["Friend", "Wanderer (away)"],
    )
    await lapse.past_grace()
    # Past the grace period the token is refused, whether or not expire() has run.
    late = await connect(backend)
    assert await refusal(backend, backend.resume, wanderer.token, late.name, Inbox()) == (
        UNKNOWN_TOKEN
    )
    assert await answer(backend, backend.expire()) == ["Wanderer"]
    assert await answer(backend, backend.expire()) == []
    assert friend.inbox.said()[-1] == ("#camp", "*", "Wanderer did not come back")
    assert await answer(backend, backend.members("camp")) == ("#camp", ["Friend"])
    assert await refusal(backend, backend.resume, wanderer.token, late.name, Inbox()) == (
        UNKNOWN_TOKEN
    )
    assert await refusal(backend, backend.direct, "Friend", "Wanderer", "x") == (
        "no such client: Wanderer"
    )


async def test_tokens_that_are_not_held_are_refused(open_backend: OpenBackend) -> None:
    backend = await open_backend(max_clients=4)
    leaver = await connect(backend, "Leaver")
    held = await connect(backend, "Held")
    present = await connect(backend, "Present")
    fresh = await connect(backend)
    await answer(backend, backend.depart("Leaver", DisconnectReason.EXIT, False))
    await answer(backend, backend.depart("Held", DisconnectReason.RESET, True))

    for token in (leaver.token, present.token, fresh.token, "A" * 24, ""):
        assert await refusal(backend, backend.resume, token, fresh.name, Inbox()) == UNKNOWN_TOKEN
    await answer(backend, backend.join(fresh.name, "lobby"))
    assert await refusal(backend, backend.resume, held.token, fresh.name, Inbox()) == (
        "resume before joining rooms: this session has rooms already"
    )
    # A refused resume changes nothing: the held session can still come back.
    newest = await connect(backend)
    resumed = await answer(backend, backend.resume(held.token, newest.name, Inbox()))
    assert resumed.name == "Held"
    assert [name for name, _ in await answer(backend, backend.who())] == [
        fresh.name,
        "Held",
        "Present",
    ]


async def test_history_sizes_change_while_running_and_drop_the_oldest_at_once(
    open_backend: OpenBackend,
) -> None:
    backend = await open_backend(max_clients=9, history_limit=10, room_history=10)
    await connect(backend, "Ann")
    await connect(backend, "Bob")
    await answer(backend, backend.join("Ann", "dev"))
    for number in range(5):
        await answer(backend, backend.say("Ann", "dev", f"m{number}"))
        await answer(backend, backend.direct("Ann", "Bob", f"d{number}"))
    for _ in range(4):
        departing = await connect(backend)
        await answer(backend, backend.depart(departing.name, DisconnectReason.EXIT, False))

    await answer(backend, backend.set_history_sizes(2, 3, 1))
    status = await answer(backend, backend.snapshot(None))
    departed = [record.name for record in status.sessions if record.disconnected_at is not None]
    assert departed == ["Client05", "Client06"]
    assert status.dropped == 2
    room = await answer(backend, backend.history("Ann", "dev", None, 100))
    assert texts(room.events) == ["m2", "m3", "m4"]
    direct = await answer(backend, backend.history("Bob", "direct", None, 100))
    assert texts(direct.events) == ["d4"]

    await answer(backend, backend.say("Ann", "dev", "m5"))
    room = await answer(backend, backend.history("Ann", "dev", None, 100))
    assert texts(room.events) == ["m3", "m4", "m5"]
    await answer(backend, backend.set_history_sizes(10, 10, 10))
    await answer(backend, backend.say("Ann", "dev", "m6"))
    room = await answer(backend, backend.history("Ann", "dev", None, 100))
    assert texts(room.events) == ["m3", "m4", "m5", "m6"]


# Kicks


class Kickable(Inbox):
    """A peer that ends its own session when kicked, as a server's session does: it says
    goodbye and records its departure as ``kicked`` through ``leave``."""

    def __init__(self) -> None:
        super().__init__()
        self.leave: Callable[[], object] = lambda: None
        self.kicks = 0

    def kick(self) -> bool:
        self.kicks += 1
        self.leave()
        return True


async def test_a_kick_disconnects_a_connected_client_and_records_kicked(
    open_backend: OpenBackend,
) -> None:
    backend = await open_backend(max_clients=4, resume_grace=60.0)
    peer = Kickable()
    admitted = await answer(backend, backend.admit("192.0.2.4:5", peer))
    assert admitted is not None
    name = await answer(backend, backend.rename(admitted.record.name, "Kim"))
    peer.leave = lambda: backend.depart(name, DisconnectReason.KICKED, hold=False)
    plain = await connect(backend, "Pat")
    stays = await connect(backend, "Sam")

    kicked = await answer(backend, backend.kick("KIM"))
    assert kicked is not None
    assert (kicked.name, kicked.address, kicked.earlier_names) == (
        "Kim",
        "192.0.2.4:5",
        ("Client01",),
    )
    assert peer.kicks == 1
    # A peer that cannot end its session itself is told why, and the backend records it.
    pat = await answer(backend, backend.kick("pat"))
    assert pat is not None
    assert pat.name == "Pat"
    assert plain.inbox.lines == ["Disconnected by the server's operator. Goodbye."]

    status = await answer(backend, backend.snapshot(None))
    assert [(record.name, record.reason) for record in status.sessions] == [
        ("Kim", DisconnectReason.KICKED),
        ("Pat", DisconnectReason.KICKED),
        ("Sam", None),
    ]
    # Kicked clients are not held for /resume: their names are free at once.
    spare = await connect(backend)
    assert await refusal(backend, backend.resume, plain.token, spare.name, Inbox()) == (
        UNKNOWN_TOKEN
    )
    assert await answer(backend, backend.rename(spare.name, "kim")) == "kim"
    assert [name for name, _ in await answer(backend, backend.who())] == ["Sam", "kim"]
    assert stays.inbox.lines == []


async def test_a_kick_of_a_name_connected_nowhere_finds_nothing(
    open_backend: OpenBackend,
) -> None:
    backend = await open_backend(max_clients=3, resume_grace=60.0)
    await connect(backend, "Held")
    gone = await connect(backend, "Gone")
    await answer(backend, backend.depart("Held", DisconnectReason.RESET, True))
    await answer(backend, backend.depart("Gone", DisconnectReason.EXIT, False))

    for name in ("Held", "gone", "nobody", "Client01"):
        assert await answer(backend, backend.kick(name)) is None
    assert gone.inbox.lines == []
    status = await answer(backend, backend.snapshot(None))
    assert [record.reason for record in status.sessions] == [
        DisconnectReason.RESET,
        DisconnectReason.EXIT,
    ]


async def test_shared_live_settings_are_taken(open_backend: OpenBackend) -> None:
    backend = await open_backend()
    changes = {"idle_timeout": 30.0, "rate_limit": 5.0, "rate_burst": 10, "rate_strikes": 3}
    await answer(backend, backend.share_settings(changes))
    assert await answer(backend, backend.admit("127.0.0.1:1", Inbox())) is not None
