"""A backend's answer awaited: the HTTP side's bridge from :class:`Pending` to asyncio."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from ackchat.backend.pending import Pending, Result

T = TypeVar("T")


async def settled(result: Result[T]) -> T:
    """A backend's answer: at once, or once a pending one is settled."""
    if not isinstance(result, Pending):
        return result
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def done(answer: Pending[T]) -> None:
        if future.cancelled():
            return
        try:
            future.set_result(answer.result())
        except Exception as error:
            future.set_exception(error)

    result.add_done_callback(done)
    return await future
