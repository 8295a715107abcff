"""Answers that come later: what a backend returns when it must ask another process.

A backend operation returns its value at once when it can (the memory backend always
can) or a :class:`Pending` that is settled later. ``Pending`` is plain Python, without
an event loop: whoever settles it (the Redis backend, from its own I/O) runs the
callbacks, so a session can park on an answer without a task per operation, and the
sans-I/O layers can be tested with answers settled by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar, Union, cast

T = TypeVar("T")
U = TypeVar("U")

_UNSET = object()


class Pending(Generic[T]):
    """A value or an error that is not there yet; callbacks run once it is."""

    __slots__ = ("_callbacks", "_error", "_value")

    def __init__(self) -> None:
        self._value: object = _UNSET
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Pending[T]], None]] = []

    @property
    def done(self) -> bool:
        """Whether it is settled, with a value or an error."""
        return self._value is not _UNSET or self._error is not None

    def result(self) -> T:
        """The value; raises the error if it failed, or RuntimeError if not settled yet."""
        if self._error is not None:
            raise self._error
        if self._value is _UNSET:
            raise RuntimeError("the answer is not there yet")
        return cast(T, self._value)

    def set_result(self, value: T) -> None:
        """Settle with ``value`` and run the callbacks."""
        self._settle(value, None)

    def set_exception(self, error: BaseException) -> None:
        """Settle with ``error`` and run the callbacks."""
        self._settle(_UNSET, error)

    def add_done_callback(self, callback: Callable[[Pending[T]], None]) -> None:
        """Call ``callback(self)`` once settled (at once if it is already)."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def then(self, transform: Callable[[T], U]) -> Pending[U]:
        """A pending ``transform(value)``; an error, or one ``transform`` raises, passes on."""
        derived: Pending[U] = Pending()

        def settle(source: Pending[T]) -> None:
            try:
                value = transform(source.result())
            except Exception as error:
                derived.set_exception(error)
            else:
                derived.set_result(value)

        self.add_done_callback(settle)
        return derived

    def _settle(self, value: object, error: BaseException | None) -> None:
        if self.done:
            raise RuntimeError("an answer is settled only once")
        self._value, self._error = value, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


# What a backend operation returns: the value now, or later.
Result: TypeAlias = Union[T, "Pending[T]"]


def then(result: Result[T], transform: Callable[[T], U]) -> Result[U]:
    """``transform`` applied to a result: at once to a value, later to a pending one."""
    if isinstance(result, Pending):
        return result.then(transform)
    return transform(result)


def all_of(results: list[Result[None]]) -> Result[None]:
    """None once every result is in: at once if none is pending, else a pending one that
    settles when the last does, or fails with the first error."""
    waiting = [result for result in results if isinstance(result, Pending)]
    if not waiting:
        return None
    combined: Pending[None] = Pending()
    left = len(waiting)

    def settled(part: Pending[None]) -> None:
        nonlocal left
        left -= 1
        if combined.done:
            return
        try:
            part.result()
        except Exception as error:
            combined.set_exception(error)
            return
        if not left:
            combined.set_result(None)

    for part in waiting:
        part.add_done_callback(settled)
    return combined
