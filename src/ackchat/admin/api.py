"""Calls to the admin API, with every failure turned into one sentence and an exit code.

The standard library's HTTP client serves: one request per run needs nothing more, and
``ackchat admin`` then works without the ``http`` extra. Proxies from the environment
are not used: the admin API is reached directly, usually on this machine.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ackchat.client.errors import (
    EXIT_AUTH_FAILED,
    EXIT_CONNECT_FAILED,
    EXIT_ERROR,
    EXIT_REFUSED,
    EXIT_SERVER_CLOSED,
)
from ackchat.errors import AckchatError

# The exit codes of ``ackchat admin`` (admin/options.py lists them), the numbers of
# ``ackchat connect`` where the cause is alike; one more of its own:
EXIT_NO_SUCH_CLIENT = 8


class AdminError(AckchatError):
    """Ends ``ackchat admin``: one sentence for stderr, and the exit code to use."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class AdminApi:
    """One server's admin API: where it is, the token to show it, how long to wait."""

    url: str
    token: str
    timeout: float

    def status(self, show_all: bool) -> Any:
        """``GET /api/status``."""
        return self.call("GET", "/api/status?all=1" if show_all else "/api/status")

    def clients(self) -> Any:
        """``GET /api/clients``."""
        return self.call("GET", "/api/clients")

    def kick(self, name: str) -> Any:
        """``DELETE /api/clients/{name}``."""
        return self.call("DELETE", f"/api/clients/{quote(name, safe='')}")

    def set(self, key: str, value: object) -> Any:
        """``PATCH /api/config`` with one setting."""
        return self.call("PATCH", "/api/config", {key: value})

    def drain(self) -> Any:
        """``POST /api/drain``."""
        return self.call("POST", "/api/drain", {})

    def call(self, method: str, path: str, body: object = None) -> Any:
        """Send one request and return its JSON answer; raises :class:`AdminError`."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return _json(response.read(), response.status)
        except urllib.error.HTTPError as error:
            with error:
                raise self._refusal(error.code, error.read()) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AdminError(
                f"cannot reach the admin API at {self.url}: {_explain(reason)}"
                " (is the server running with --http?)",
                EXIT_CONNECT_FAILED,
            ) from None

    def _refusal(self, status: int, data: bytes) -> AdminError:
        """The error for a refusal: its sentence is the server's own where it has one."""
        try:
            answer = _json(data, status)
        except AdminError:
            answer = {}
        message, field = str(answer.get("error") or ""), answer.get("field")
        if status == 401:
            if not self.token:
                return AdminError(
                    "the admin API needs its token: give --token-file (the file the server"
                    " logged) or ACKCHAT_ADMIN_TOKEN",
                    EXIT_AUTH_FAILED,
                )
            return AdminError("the admin API refused the token", EXIT_AUTH_FAILED)
        if status == 400:
            return AdminError(f"the server refused it: {message}", EXIT_REFUSED)
        if status == 404 and field == "name":
            return AdminError(message, EXIT_NO_SUCH_CLIENT)
        if status == 409:
            return AdminError(message, EXIT_SERVER_CLOSED)
        detail = f": {message}" if message else ""
        hint = " (is --url right?)" if status in (404, 405) else ""
        return AdminError(f"the admin API answered {status}{detail}{hint}", EXIT_ERROR)


def _json(data: bytes, status: int) -> Any:
    """An answer's JSON object; AdminError if it is not one (not an admin API)."""
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise AdminError(
            f"the answer (status {status}) is not the admin API's JSON: is --url right?",
            EXIT_ERROR,
        )
    return answer


def _explain(reason: object) -> str:
    """Why a connection failed, in words."""
    if isinstance(reason, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)
