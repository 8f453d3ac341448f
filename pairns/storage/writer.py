"""A dedicated thread for the committer's blocking writes, with a cheap hand-off.

``trio.to_thread.run_sync`` costs ~130 µs of CPU per call on this machine class
(context copy, capacity limiter, thread-cache hand-off, report-back machinery): more
than the SQLite transaction it carries. The committer only ever has one write in
flight, so one long-lived thread fed through a ``SimpleQueue`` does the same job; the
result comes back with ``TrioToken.run_sync_soon`` and ``reschedule``.

Like ``to_thread.run_sync`` with its default ``abandon_on_cancel=False``, a write
is never abandoned: a cancelled caller keeps waiting until the thread has finished,
so memory and disk never disagree silently.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], trio.lowlevel.TrioToken, "Pending[Any]"]


class Pending(Generic[T]):
    """A call handed to the thread; ``await pending.wait()`` for its result.

    Separate from :meth:`WriterThread.run` so a caller can hand over the next call
    before it deals with the result of the previous one (the committer overlaps the
    next transaction with answering the callers of the last one).
    """

    __slots__ = ("_result", "_task")

    def __init__(self) -> None:
        self._result: outcome.Outcome[T] | None = None
        self._task: trio.lowlevel.Task | None = None

    def _deliver(self, result: outcome.Outcome[T]) -> None:
        self._result = result
        if self._task is not None:
            trio.lowlevel.reschedule(self._task)

    async def wait(self) -> T:
        """The call's return value (or its exception); not abandoned if cancelled."""
        if self._result is None:
            if self._task is not None:
                raise RuntimeError("only one task may wait for a call")
            self._task = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                return trio.lowlevel.Abort.FAILED  # never abandon a write half-way

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        assert self._result is not None
        return self._result.unwrap()


class WriterThread:
    """Runs blocking calls one at a time in one thread; ``await run(fn, *args)``."""

    def __init__(self, name: str = "pairns-writer") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False
        self._stopped = False

    def _main(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, token, pending = job
            result = outcome.capture(fn, *args)
            try:
                token.run_sync_soon(pending._deliver, result)
            except trio.RunFinishedError:
                return  # nobody is waiting any more: the Trio run is over

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the thread and return (or raise) what it did."""
        await trio.lowlevel.checkpoint_if_cancelled()
        return await self.start(fn, *args).wait()

    def start(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Queue ``fn(*args)`` for the thread (calls run in the order queued)."""
        if self._stopped:
            raise RuntimeError("the writer thread was stopped")
        if not self._started:
            self._thread.start()
            self._started = True
        pending: Pending[T] = Pending()
        self._jobs.put((fn, args, trio.lowlevel.current_trio_token(), pending))
        return pending

    def stop(self) -> None:
        """Let the thread finish the job it has and exit (blocking join)."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._jobs.put(None)
            self._thread.join()
