"""The server's log lines: text for people, or one JSON object per line for machines.

Both forms carry the same events (every record the server logs); ``--log-format json``
only changes how each is written, so a log collector can parse it without patterns:

    {"time": "2026-11-25T13:40:00.123+00:00", "level": "info", "logger": "ackchat.server",
     "message": "listening on 127.0.0.1:1234 (at most 3 clients)"}

with ``"exception"`` added when the record carries a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Each record as one line of JSON: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created)
            .astimezone()
            .isoformat("T", "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` and above, as ``text`` (with a timestamp) or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
