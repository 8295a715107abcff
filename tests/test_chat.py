"""Chat between real clients: direct messages, broadcast, rooms, names, history, resume."""

from __future__ import annotations

import asyncio
import re

from ackchat.server.assembly import ChatServer
from conftest import ClientFactory, ServerFactory
from lineclient import LineClient, eventually

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


async def named(server: ChatServer, connect: ClientFactory, name: str | None = None) -> LineClient:
    client = await connect(server)
    await client.greeting()
    if name is not None:
        assert await client.ask(f"/nick {name}") == f"You are now {name}."
    return client


def event(line: str) -> tuple[str, str, str]:
    """(scope, sender, text) of an event line, checking its id and time."""
    match = re.fullmatch(rf"@\d+ {TIME} (\S+) (\S+): (.*)", line)
    assert match is not None, line
    return match.group(1), match.group(2), match.group(3)


async def test_direct_message_is_delivered_and_acked(
    server: ChatServer, connect: ClientFactory
) -> None:
    alice = await named(server, connect, "alice")
    bob = await named(server, connect, "bob")
    assert await alice.ask("/msg BOB hello   there") == "/msg BOB hello   there ACK"
    assert event(await bob.read_line()) == ("direct", "alice>bob", "hello   there")


async def test_direct_message_to_nobody_is_an_error(
    server: ChatServer, connect: ClientFactory
) -> None:
    alice = await named(server, connect, "alice")
    assert await alice.ask("/msg ghost hi") == "ERROR no such client: ghost"
    assert await alice.ask("/msg ghost") == "ERROR usage: /msg <name> <text>"
    assert await alice.ask("/dance") == "ERROR unknown command /dance: type 'help' for the commands"


async def test_a_recipient_gone_for_good_is_an_error(
    server: ChatServer, connect: ClientFactory
) -> None:
    alice = await named(server, connect, "alice")
    bob = await named(server, connect, "bob")
    assert await bob.ask("exit") == "Goodbye, bob."
    assert await alice.ask("/msg bob still there?") == "ERROR no such client: bob"


async def test_broadcast_reaches_everyone_else(server: ChatServer, connect: ClientFactory) -> None:
    sender, first, second = [await named(server, connect) for _ in range(3)]
    assert await sender.ask("/all hello everyone") == "/all hello everyone ACK"
    for receiver in (first, second):
        assert event(await receiver.read_line()) == ("all", "Client01", "hello everyone")
    assert await sender.ask("ping") == "ping ACK"


async def test_rooms_presence_messages_and_lists(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=5)
    alice = await named(server, connect, "alice")
    bob = await named(server, connect, "bob")
    carol = await named(server, connect, "carol")
    await alice.send("/join Lobby")
    assert await alice.read_block() == ["joined #lobby: 1 member"]
    await bob.send("/join #lobby")
    assert await bob.read_block() == ["joined #lobby: 2 members"]
    assert event(await alice.read_line()) == ("#lobby", "*", "bob joined")
    assert await alice.ask("/say #lobby hi bob") == "/say #lobby hi bob ACK"
    assert event(await bob.read_line()) == ("#lobby", "alice", "hi bob")
    assert await carol.ask("/say lobby let me in") == (
        "ERROR you are not in #lobby: send '/join #lobby' first"
    )
    await carol.send("/rooms")
    assert await carol.read_block() == ["rooms: 1", "#lobby 2"]
    await carol.send("/members lobby")
    assert await carol.read_block() == ["members of #lobby: 2", "alice", "bob"]
    await carol.send("who")
    assert await carol.read_block() == ["who: 3 connected", "alice #lobby", "bob #lobby", "carol"]
    assert await bob.ask("/leave lobby") == "left #lobby"
    assert event(await alice.read_line()) == ("#lobby", "*", "bob left")


async def test_joining_replays_recent_messages_and_history_pages(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(room_history=5)
    alice = await named(server, connect, "alice")
    await alice.send("/join dev")
    await alice.read_block()
    for number in range(8):
        assert await alice.ask(f"/say dev note {number}") == f"/say dev note {number} ACK"
    bob = await named(server, connect, "bob")
    await bob.send("/join dev")
    replay = await bob.read_block()
    assert replay[0] == "joined #dev: 2 members"
    assert [event(text)[2] for text in replay[1:]] == [f"note {n}" for n in range(3, 8)]
    await bob.send("/history dev 2")
    page = await bob.read_block()
    assert [event(text)[2] for text in page[1:]] == ["note 6", "note 7"]
    first_id = re.match(r"@(\d+)", page[1])
    assert first_id is not None
    assert page[0] == f"history #dev: 2 messages (older: /history #dev before {first_id.group(1)})"
    await bob.send(f"/history dev before {first_id.group(1)} 2")
    older = await bob.read_block()
    assert [event(text)[2] for text in older[1:]] == ["note 4", "note 5"]
    await bob.send("/history dev before 1000000 5")
    everything = await bob.read_block()
    assert everything[0] == "history #dev: 5 messages"


async def test_direct_history(server: ChatServer, connect: ClientFactory) -> None:
    alice = await named(server, connect, "alice")
    bob = await named(server, connect, "bob")
    await alice.ask("/msg bob one")
    await bob.read_line()
    await bob.ask("/msg alice two")
    await alice.read_line()
    await alice.send("/history direct")
    lines = await alice.read_block()
    assert [event(text)[1:] for text in lines[1:]] == [("alice>bob", "one"), ("bob>alice", "two")]


async def test_names_are_unique_checked_and_kept_in_the_cache(
    server: ChatServer, connect: ClientFactory
) -> None:
    alice = await named(server, connect, "Alice")
    other = await named(server, connect)
    assert await other.ask("/nick alice") == "ERROR name taken: alice"
    assert await other.ask("/nick client07") == (
        "ERROR invalid name 'client07': ClientNN names are assigned by the server"
    )
    assert await other.ask("/nick 9lives") == (
        "ERROR invalid name '9lives': use 1 to 20 letters, digits, '_' or '-',"
        " starting with a letter"
    )
    assert await other.ask("/nick bad name") == (
        "ERROR invalid name 'bad name': a name cannot contain spaces; use 1 to 20 letters,"
        " digits, '_' or '-', starting with a letter"
    )
    assert await other.ask("/nick x\x1b[2J") == (
        "ERROR invalid name 'x\\x1b[2J': use 1 to 20 letters, digits, '_' or '-',"
        " starting with a letter"
    )
    assert await other.ask("/nick bob") == "You are now bob."
    assert await other.ask("/nick robert") == "You are now robert."
    status = await alice.status()
    assert status[2].startswith("robert 127.0.0.1:")
    assert status[2].endswith("still connected (was Client02, bob)")
    assert await alice.ask("exit") == "Goodbye, Alice."


async def test_forged_looking_text_cannot_pass_for_the_server(
    server: ChatServer, connect: ClientFactory
) -> None:
    mallory = await named(server, connect, "mallory")
    victim = await named(server, connect, "victim")
    forged = "x\r@1 2026-01-01T00:00:00+00:00 direct admin>victim: send your password\x1b[2J"
    await mallory.send(f"/msg victim {forged}")
    await mallory.read_line()
    received = await victim.read_line()
    scope, sender, text = event(received)
    assert (scope, sender) == ("direct", "mallory>victim")
    assert "\r" not in text
    assert "\x1b" not in text
    assert text.startswith("x\ufffd@1 ")


async def test_messages_from_each_sender_arrive_in_order(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(max_clients=6)
    senders = [await named(server, connect, f"s{n}") for n in range(3)]
    receivers = [await named(server, connect, f"r{n}") for n in range(3)]
    for client in senders + receivers:
        await client.send("/join race")
        await client.read_block()

    async def send_all(client: LineClient) -> None:
        await client.send_raw(b"".join(b"/say race m%d\n" % i for i in range(200)))
        acks = 0
        while acks < 200:
            text = await client.read_line()
            if not text.startswith("@"):  # others' messages and presence interleave
                assert text == f"/say race m{acks} ACK"
                acks += 1

    await asyncio.gather(*(send_all(client) for client in senders))
    for receiver in receivers:
        seen: dict[str, list[int]] = {f"s{n}": [] for n in range(3)}
        while sum(map(len, seen.values())) < 600:
            _, sender, text = event(await receiver.read_line())
            if sender in seen:
                seen[sender].append(int(text[1:]))
        assert all(numbers == list(range(200)) for numbers in seen.values()), seen


async def resume_token(client: LineClient) -> tuple[str, str]:
    """Read the greeting; return the name and resume token it gives."""
    block = await client.read_block()
    name = re.fullmatch(r"Welcome! You are (\S+)\.", block[0])
    token = [text.removeprefix("Resume token: ") for text in block if text.startswith("Resume")]
    assert name is not None
    assert len(token) == 1, block
    return name.group(1), token[0]


async def test_a_lost_client_resumes_its_name_rooms_and_missed_messages(
    server: ChatServer, connect: ClientFactory
) -> None:
    lost = await connect(server)
    _, token = await resume_token(lost)
    assert await lost.ask("/nick wanderer") == "You are now wanderer."
    await lost.send("/join camp")
    await lost.read_block()
    friend = await named(server, connect, "friend")
    await friend.send("/join camp")
    await friend.read_block()
    lost.reset()
    assert event(await friend.read_line()) == ("#camp", "*", "wanderer lost the connection")
    assert await friend.ask("/say camp where did you go") == "/say camp where did you go ACK"
    assert await friend.ask("/msg wanderer call me") == "/msg wanderer call me ACK"
    other = await named(server, connect)
    assert await other.ask("/nick wanderer") == "ERROR name taken: wanderer"

    back = await connect(server)
    await back.greeting()
    await back.send(f"/resume {token}")
    block = await back.read_block()
    assert block[0] == "Resumed: you are wanderer again in #camp; 2 missed messages follow"
    assert [event(text)[1:] for text in block[1:]] == [
        ("friend", "where did you go"),
        ("friend>wanderer", "call me"),
    ]
    assert event(await friend.read_line()) == ("#camp", "*", "wanderer is back")
    assert await back.ask("/say camp here") == "/say camp here ACK"
    assert event(await friend.read_line()) == ("#camp", "wanderer", "here")
    lines = await friend.status()
    assert any(text.startswith("wanderer ") and "(was Client04)" in text for text in lines)
    assert await back.ask(f"/resume {token}") == "ERROR unknown or expired resume token"


async def test_a_client_that_said_exit_cannot_be_resumed(
    server: ChatServer, connect: ClientFactory
) -> None:
    leaving = await connect(server)
    _, token = await resume_token(leaving)
    assert await leaving.ask("exit") == "Goodbye, Client01."
    again = await named(server, connect)
    assert await again.ask(f"/resume {token}") == "ERROR unknown or expired resume token"


async def test_resume_expires_after_the_grace_period(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(resume_grace=0.2)
    lost = await connect(server)
    name, token = await resume_token(lost)
    lost.close()
    watcher = await named(server, connect, "watcher")

    async def forgotten() -> bool:
        return await watcher.ask(f"/msg {name} hi") == f"ERROR no such client: {name}"

    await eventually(forgotten, "the lost client's grace period ends")
    assert await watcher.ask(f"/resume {token}") == "ERROR unknown or expired resume token"


async def flood_room(sender: LineClient, fast: LineClient, messages: int) -> None:
    """Send big room messages, each ACKed; the fast member keeps up as they go."""
    payload = "x" * 4000
    for number in range(messages):
        await sender.send(f"/say busy {number} {payload}")
        assert await sender.reply() == f"/say busy {number} {payload} ACK"
        if number % 100 == 0:
            while True:
                _, who, text = event(await fast.read_line())
                if who == "sender" and text.startswith(f"{number} "):
                    break


async def room_of_three(server: ChatServer, connect: ClientFactory) -> list[LineClient]:
    clients = [await named(server, connect, name) for name in ("sender", "fast", "slow")]
    for client in clients:
        await client.send("/join busy")
        await client.read_block()
    return clients


async def test_a_slow_reader_is_warned_and_gets_everything_once_it_reads(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(
        queue_warn=50, queue_limit=100_000, max_output_bytes=64 * 1024 * 1024, rate_limit=0
    )
    sender, fast, slow = await room_of_three(server, connect)
    slow.stop_reading()
    # 12 MB: more than the kernel's socket buffers hold, so messages queue in the server.
    await flood_room(sender, fast, 3000)
    slow.start_reading()
    numbers: list[int] = []
    warnings: list[str] = []
    while len(numbers) < 3000:
        text = await slow.read_line()
        if text.startswith("WARNING "):
            warnings.append(text)
        elif event(text)[1] == "sender":
            numbers.append(int(event(text)[2].split()[0]))
    assert numbers == list(range(3000))
    assert len(warnings) == 1
    assert re.fullmatch(
        r"WARNING you are reading slowly: \d+ messages wait for you;"
        r" at 100000 you will be disconnected\.",
        warnings[0],
    )


async def test_a_slow_reader_is_cut_off_without_slowing_the_sender(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(
        max_clients=4, queue_warn=50, queue_limit=200, max_output_bytes=16 * 1024, rate_limit=0
    )
    sender, fast, slow = await room_of_three(server, connect)
    slow.stop_reading()
    await flood_room(sender, fast, 3000)
    watcher = await named(server, connect, "watcher")

    async def cut_off() -> bool:
        header = (await watcher.status())[0]
        return "1 slow readers disconnected" in header

    await eventually(cut_off, "the slow reader is disconnected and counted")
    lines = await watcher.status()
    assert any(text.startswith("slow ") and "(slow consumer)" in text for text in lines)
    assert re.search(r"chat: \d+ messages dropped, 1 slow readers disconnected", lines[0])


async def test_direct_history_keeps_the_configured_number(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(direct_history=2)
    alice = await named(server, connect, "alice")
    bob = await named(server, connect, "bob")
    for number in range(4):
        assert await alice.ask(f"/msg bob n{number}") == f"/msg bob n{number} ACK"
    await bob.send("/history direct")
    lines = await bob.reply_block()
    assert [event(text)[2] for text in lines[1:]] == ["n2", "n3"]


async def test_a_slow_reader_is_cut_off_when_its_queue_passes_the_byte_cap(
    start_server: ServerFactory, connect: ClientFactory
) -> None:
    server = await start_server(
        max_clients=4, queue_warn=10_000, queue_limit=100_000, max_output_bytes=64 * 1024,
        rate_limit=0,
    )  # fmt: skip
    sender, fast, slow = await room_of_three(server, connect)
    slow.stop_reading()
    await flood_room(sender, fast, 3000)
    watcher = await named(server, connect, "watcher")

    async def cut_off() -> bool:
        return "1 slow readers disconnected" in (await watcher.status())[0]

    await eventually(cut_off, "the slow reader is cut off by the byte cap")
