"""``--log-format json``: one JSON object per line, with the same events as the text form."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from pathlib import Path

import pytest

from ackchat.server.logs import JsonFormatter
from lineclient import LineClient
from serverprocess import ServerProcess

TEXT_LINE = re.compile(r"\S+ \S+ (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)")


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("ackchat.server", logging.WARNING, __file__, 1, message, args, None)


def test_a_record_is_one_line_of_json_with_its_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("%s reads too slowly: %d queued", "alice", 5000))
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"]) == ("warning", "ackchat.server")
    assert entry["message"] == "alice reads too slowly: 5000 queued"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", entry["time"])


def test_a_traceback_and_line_breaks_stay_inside_the_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        failed = record("it failed: %s", "two\nlines")
        failed.exc_info = sys.exc_info()
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "it failed: two\nlines"
    assert entry["exception"].startswith("Traceback")


async def events_of(log_format: str, tmp_path: Path) -> list[tuple[str, str, str]]:
    """The (level, logger, message) of every line a server logs for the same story: start
    with the admin API, a client that comes and goes, a reload, a stop. Numbers and the
    token file's name are left out, as they differ from run to run."""
    server = await ServerProcess.start(
        "--http", "0", "--log-level", "debug", "--log-format", log_format,
        env={"XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    await server.wait_for_log("admin token written")
    client = await LineClient.open(server.port)
    await client.greeting()
    await client.ask("exit")
    assert await client.at_eof()
    client.close()
    await server.wait_for_log(r"disconnected \(exit\)")
    server.send_signal(signal.SIGHUP)
    await server.wait_for_log("no config file to reload")
    assert await server.stop() == 0
    events = []
    for line in server.log:
        if log_format == "json":
            entry = json.loads(line)
            level, logger, message = entry["level"].upper(), entry["logger"], entry["message"]
        else:
            match = TEXT_LINE.fullmatch(line)
            assert match is not None, line
            level, logger, message = match["level"], match["logger"], match["message"]
        message = re.sub(r"\d+", "N", message.replace(str(tmp_path), "DIR"))
        events.append((level, logger, re.sub(r"ackchat-admin-\S+\.token", "FILE", message)))
    return events


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_json_logs_are_json_and_tell_what_text_logs_tell(tmp_path: Path) -> None:
    # Both servers at once (each start is mostly a new process's imports), each with a
    # runtime directory of its own for its token file.
    (tmp_path / "json").mkdir()
    (tmp_path / "text").mkdir()
    as_json, as_text = await asyncio.gather(
        events_of("json", tmp_path / "json"), events_of("text", tmp_path / "text")
    )
    assert as_json == as_text
    messages = [message for _, _, message in as_json]
    assert messages[0] == "listening on N.N.N.N:N (at most N clients)"
    assert "admin token written to DIR/FILE (readable by you only)" in messages
    assert messages[-1] == "server stopped"
