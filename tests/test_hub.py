"""The chat hub without sockets: routing, rooms, names, history, held sessions."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from ackchat.chat.hub import ChatError, ChatHub
from ackchat.chat.names import InvalidNameError, check_name, room_name


class Inbox:
    """A peer that keeps what it is sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def deliver(self, data: bytes) -> None:
        self.lines.extend(data.decode().splitlines())

    def texts(self) -> list[str]:
        return [line.split(" ", 3)[3] for line in self.lines]


def hub_with(
    *names: str, room_history: int = 50, resume_grace: float = 60.0, resume_buffer: int = 200
) -> tuple[ChatHub, dict[str, Inbox]]:
    hub = ChatHub(room_history=room_history, resume_grace=resume_grace, resume_buffer=resume_buffer)
    inboxes = {name: Inbox() for name in names}
    for name, inbox in inboxes.items():
        hub.attach(name, inbox)
    return hub, inboxes


def test_a_direct_message_goes_to_the_recipient_only() -> None:
    hub, inbox = hub_with("alice", "bob", "carol")
    hub.direct("alice", "BOB", "hi", 0.0)
    assert inbox["bob"].texts() == ["alice>bob: hi"]
    assert inbox["alice"].lines == inbox["carol"].lines == []


def test_a_broadcast_is_encoded_once_and_skips_the_sender() -> None:
    hub, inbox = hub_with("a", "b", "c")
    assert hub.broadcast("a", "news", 0.0) == 2
    assert inbox["b"].lines == inbox["c"].lines
    assert inbox["b"].texts() == ["a: news"]
    assert inbox["a"].lines == []


def test_room_messages_and_presence() -> None:
    hub, inbox = hub_with("a", "b")
    assert hub.join("a", "Dev", 0.0) == ("#dev", 1, [])
    assert hub.join("b", "#dev", 0.0)[:2] == ("#dev", 2)
    assert inbox["a"].texts() == ["*: b joined"]
    hub.say("b", "dev", "hello", 0.0)
    assert inbox["a"].texts()[-1] == "b: hello"
    assert hub.rooms() == [("#dev", 2)]
    assert hub.members("dev") == ("#dev", ["a", "b"])
    assert hub.leave("a", "dev", 0.0) == "#dev"
    assert inbox["b"].texts()[-1] == "*: a left"
    with pytest.raises(ChatError, match="you are not in #dev"):
        hub.say("a", "dev", "let me back", 0.0)


def test_an_empty_room_disappears() -> None:
    hub, _ = hub_with("a")
    hub.join("a", "tmp", 0.0)
    hub.leave("a", "tmp", 0.0)
    assert hub.rooms() == []
    with pytest.raises(ChatError, match="no such room"):
        hub.members("tmp")


def test_room_history_is_bounded_and_pages_by_id() -> None:
    hub, _ = hub_with("a", "b", room_history=3)
    hub.join("a", "r", 0.0)
    for number in range(5):
        hub.say("a", "r", f"m{number}", float(number))
    _, _, recent = hub.join("b", "r", 9.0)
    assert [event.text for event in recent] == ["m2", "m3", "m4"]
    page = hub.history("b", "r", None, 2)
    assert (page.scope, [event.text for event in page.events], page.more) == (
        "#r",
        ["m3", "m4"],
        True,
    )
    older = hub.history("b", "r", page.events[0].id, 2)
    assert ([event.text for event in older.events], older.more) == (["m2"], False)
    assert all(a.id < b.id for a, b in pairwise(recent))


def test_renaming_checks_and_announces() -> None:
    hub, inbox = hub_with("Client01", "bob")
    hub.join("Client01", "r", 0.0)
    hub.join("bob", "r", 0.0)
    with pytest.raises(ChatError, match="name taken: BOB"):
        hub.rename("Client01", "BOB", 0.0)
    assert hub.rename("Client01", "alice", 0.0) == "alice"
    assert inbox["bob"].texts()[-1] == "*: Client01 is now alice"
    hub.direct("bob", "alice", "found you", 0.0)
    assert inbox["Client01"].texts()[-1] == "bob>alice: found you"


def test_a_held_client_keeps_its_name_and_gets_what_it_missed() -> None:
    hub, inbox = hub_with("wanderer", "friend", resume_grace=60.0, resume_buffer=2)
    token = hub.token_of("wanderer")
    hub.join("wanderer", "camp", 0.0)
    hub.join("friend", "camp", 0.0)
    hub.detach("wanderer", 1.0, hold=True, mono=1.0)
    assert inbox["friend"].texts()[-1] == "*: wanderer lost the connection"
    for number in range(3):
        hub.say("friend", "camp", f"m{number}", 2.0)
    hub.attach("Client09", Inbox())
    with pytest.raises(ChatError, match="name taken"):
        hub.rename("Client09", "wanderer", 3.0)
    back = Inbox()
    resumed = hub.resume(token, "Client09", back, 4.0, mono=4.0)
    assert (resumed.name, resumed.rooms, resumed.dropped) == ("wanderer", ["#camp"], 1)
    assert [line.decode().split(" ", 3)[3].strip() for line in resumed.missed] == [
        "friend: m1",
        "friend: m2",
    ]
    hub.say("friend", "camp", "welcome back", 5.0)
    assert back.texts() == ["friend: welcome back"]


def test_held_clients_expire() -> None:
    hub, _ = hub_with("gone", resume_grace=10.0)
    token = hub.token_of("gone")
    hub.detach("gone", 0.0, hold=True, mono=0.0)
    assert hub.expire(5.0, mono=5.0) == []
    assert hub.expire(11.0, mono=11.0) == ["gone"]
    hub.attach("Client02", Inbox())
    with pytest.raises(ChatError, match="unknown or expired"):
        hub.resume(token, "Client02", Inbox(), 12.0, mono=12.0)


def test_resume_deadlines_follow_the_monotonic_clock_not_the_wall_clock() -> None:
    hub, _ = hub_with("drifter", "stepper", resume_grace=10.0)
    drifter, stepper = hub.token_of("drifter"), hub.token_of("stepper")
    hub.detach("drifter", 1000.0, hold=True, mono=50.0)
    hub.detach("stepper", 1000.0, hold=True, mono=50.0)
    # The wall clock jumps an hour ahead: nobody expires early.
    assert hub.expire(4600.0, mono=55.0) == []
    hub.attach("Client03", Inbox())
    assert hub.resume(drifter, "Client03", Inbox(), 4601.0, mono=56.0).name == "drifter"
    # It steps back an hour: the grace still ends on time.
    assert hub.expire(-2600.0, mono=61.0) == ["stepper"]
    hub.attach("Client04", Inbox())
    with pytest.raises(ChatError, match="unknown or expired"):
        hub.resume(stepper, "Client04", Inbox(), -2599.0, mono=62.0)


def test_an_exit_is_not_held() -> None:
    hub, _ = hub_with("leaver", "other")
    token = hub.token_of("leaver")
    hub.detach("leaver", 0.0, hold=False, mono=0.0)
    with pytest.raises(ChatError, match="no such client"):
        hub.direct("other", "leaver", "hi", 1.0)
    with pytest.raises(ChatError, match="unknown or expired"):
        hub.resume(token, "other", Inbox(), 1.0, mono=1.0)


@pytest.mark.parametrize("name", ["a", "Alice_2", "b-o-b", "x" * 20])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "2pac", "x" * 21, "a b", "a:b", "a>b", "Client01", "CLIENT7"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidNameError):
        check_name(name)


@pytest.mark.parametrize("name", ["bad name", "a\tb", " alice"])
def test_a_name_with_white_space_is_refused_for_it(name: str) -> None:
    with pytest.raises(InvalidNameError) as refusal:
        check_name(name)
    assert str(refusal.value) == (
        f"invalid name {name!r}: a name cannot contain spaces;"
        " use 1 to 20 letters, digits, '_' or '-', starting with a letter"
    )


def test_room_names_are_canonical() -> None:
    assert room_name("Lobby") == room_name("#lobby") == "#lobby"
    with pytest.raises(InvalidNameError):
        room_name("#no spaces")


def test_resume_tokens_are_distinct_and_url_safe() -> None:
    # More than one batch of tokens, so that a new batch is made on the way.
    hub, inboxes = hub_with(*(f"user{number}" for number in range(600)))
    tokens = [hub.token_of(name) for name in inboxes]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", token) for token in tokens)


def test_history_names_its_scope_canonically_and_says_when_older_ones_exist() -> None:
    hub, _ = hub_with("a", "b")
    hub.join("a", "#Dev", 0.0)
    hub.say("a", "dev", "first", 1.0)
    hub.say("a", "dev", "second", 2.0)
    whole = hub.history("a", "DEV", None, 5)
    assert (whole.scope, len(whole.events), whole.more) == ("#dev", 2, False)
    last = hub.history("a", "dev", None, 1)
    assert ([event.text for event in last.events], last.more) == (["second"], True)
    hub.direct("b", "a", "psst", 3.0)
    direct = hub.history("a", "Direct", None, 5)
    assert (direct.scope, [event.text for event in direct.events], direct.more) == (
        "direct",
        ["psst"],
        False,
    )
