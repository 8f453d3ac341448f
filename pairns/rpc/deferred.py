"""A result that a plain method hands back before it is known.

An ``async`` method costs the daemon a task per call: spawn, context copy, park, wake,
reply through the connection's write lock. For a call that only waits for something
another task will finish anyway (a group commit, say), that bookkeeping costs more
than the call. A plain method can instead return a :class:`Deferred` and finish it
later from whichever task learns the outcome; the daemon writes the reply then, from
inside :meth:`Deferred.resolve` / :meth:`Deferred.fail`, without a task of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import outcome

__all__ = ["Deferred"]

DoneCallback = Callable[["outcome.Outcome[Any]"], None]


class Deferred:
    """The eventual result of a remote call (finish it once with :meth:`resolve` or :meth:`fail`).

    A method served by a :class:`~pairns.rpc.Daemon` may return one instead of its
    value; the caller gets the value (or the exception) once it is finished. Callbacks
    run synchronously, in the task that finishes it, in the order they were added; a
    callback added after the finish runs at once. If callbacks raise, all still run and
    the first exception comes out of ``resolve``/``fail``.
    """

    __slots__ = ("_callbacks", "_outcome")

    def __init__(self) -> None:
        self._callbacks: list[DoneCallback] | None = []
        self._outcome: outcome.Outcome[Any] | None = None

    @property
    def done(self) -> bool:
        """True once :meth:`resolve` or :meth:`fail` was called."""
        return self._outcome is not None

    def resolve(self, value: Any = None) -> None:
        """Finish with *value* (what the remote caller gets back)."""
        self._finish(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        """Finish with *error* (what the remote caller gets raised)."""
        self._finish(outcome.Error(error))

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(outcome)`` when finished (at once if it already is).

        Each callback gets an ``outcome.Outcome`` of its own, so each may ``unwrap`` it.
        """
        if self._outcome is not None:
            callback(_fresh(self._outcome))
        else:
            assert self._callbacks is not None
            self._callbacks.append(callback)

    def _finish(self, result: outcome.Outcome[Any]) -> None:
        if self._outcome is not None:
            raise RuntimeError("this Deferred is already finished")
        self._outcome = result
        callbacks, self._callbacks = self._callbacks, None
        assert callbacks is not None
        first_error: Exception | None = None
        for i, callback in enumerate(callbacks):
            try:
                callback(result if i == 0 else _fresh(result))
            except Exception as exc:  # one failing callback must not starve the others
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error


def _fresh(result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
    """An unused copy (an Outcome may be unwrapped only once)."""
    if isinstance(result, outcome.Value):
        return outcome.Value(result.value)
    assert isinstance(result, outcome.Error)
    return outcome.Error(result.error)
