"""The storage interface and what both backends share: the group commit, new node ids.

A :class:`Storage` keeps the namespace state of one node, compacted to one row per
name (tombstones included), each row tagged with the local sequence number of the
change that wrote it, plus a few small key/value strings of node metadata.

:meth:`Storage.commit` returns only once the changes are durable. Concurrent callers
share transactions (*group commit*): one committer writes a batch; commits that
arrive meanwhile queue up and all go together in the next transaction, so N
concurrent writers cost far fewer than N syncs. Per name the row with the highest
sequence number is kept, whatever order the commits arrive in: a merge from the twin is
committed after the local writes that may already have replaced it in memory.

A backend whose writes block on a disk (SQLite) is driven by a *committer thread*: it
takes whatever is queued, writes it, hands the result to the Trio loop and goes
straight on to the next batch. The event loop is then never between two transactions:
with a Trio task as the committer, each new transaction waited behind every request
the loop had to answer first (about 1 ms a transaction under 16 writers). An in-process
backend (memory) is driven by a Trio task instead.

Lifecycle (structured: the committer task lives in a nursery the caller's ``async
with`` owns)::

    async with open_storage(directory) as storage:   # directory=None: memory
        loaded = await storage.open()
        ...
        await storage.commit([(seq, entry), ...])
    # leaving the block waits for pending commits, then closes the backend
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import attrs
import trio

from pairns.errors import StorageError
from pairns.namespace.entry import Entry

__all__ = [
    "RESTORED_REQUESTS",
    "CommitCallback",
    "Loaded",
    "Storage",
    "StorageStatistics",
    "new_node_id",
]

log = logging.getLogger("pairns.storage")


#: How many request ids (of the latest writes) a store hands back at open: a client
#: retries the write it was waiting for when the node went down, so the last writes
#: before a crash are what matters; 10,000 cost about 10 ms of start-up.
RESTORED_REQUESTS = 10_000


def new_node_id() -> str:
    """A fresh node id, for a store opened for the first time: 16 hex digits of a
    random UUID."""
    return uuid.uuid4().hex[:16]


@attrs.frozen
class Loaded:
    """What :meth:`Storage.open` found.

    ``rows`` holds ``(seq, entry)`` for every stored entry, tombstones included,
    ordered by ``seq``. ``last_seq`` is the highest sequence number ever committed
    (0 for a new store). ``kv`` is the node metadata written with
    :meth:`Storage.set_kv`. ``requests`` holds ``(request id, seq, time)`` of the
    latest :data:`RESTORED_REQUESTS` writes committed with a request id, in seq order,
    so that a retry after a restart is still recognised (the last row a write made
    carries its id; a later change to that name drops it). Before them come the
    latest :data:`RESTORED_REQUESTS` ids learnt from the twin (committed with
    ``learnt=``), oldest first, with seq 0: they are not this node's writes, so they
    never travel back to the twin.
    """

    node_id: str
    rows: list[tuple[int, Entry]]
    last_seq: int
    kv: dict[str, str]
    requests: list[tuple[str, int, float]] = attrs.field(factory=list)


@attrs.frozen
class StorageStatistics:
    """Counters of the group commit, for tests, benchmarks and ``pairns-ctl status``.

    ``commits`` counts the requests served (``commit`` and ``set_kv`` calls that
    reached the committer), ``transactions`` the batches written, ``failed_transactions``
    those that raised, ``changes`` the entry changes written, ``queued`` the requests
    waiting now.
    """

    commits: int
    transactions: int
    failed_transactions: int
    changes: int
    queued: int


def _raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the only non-``Cancelled`` exception of *group* (else the group)."""
    errors = [exc for exc in group.exceptions if not isinstance(exc, trio.Cancelled)]
    if len(errors) > 1:
        raise group
    exc = errors[0] if errors else group.exceptions[0]
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context  # keep the original chain, not "during handling of group"
        del exc, context


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


#: What :meth:`Storage.commit_soon` calls when its changes are written (None) or not.
CommitCallback = Callable[["StorageError | None"], None]


@attrs.define(eq=False, slots=True)
class _Request:
    """One caller's share of a batch.

    A waiting caller (``commit``, ``set_kv``) has ``done``, set once the batch is written
    or failed; a ``commit_soon`` caller has ``callback`` instead.
    """

    changes: list[Any]
    kv: dict[str, str] | None
    done: trio.Event | None = None
    #: ``(request id, applied at)`` learnt from the twin, stored in the same transaction.
    learnt: list[tuple[str, float]] | None = None
    #: ``(name, seq)`` of collected tombstones whose rows go (see ``Storage.collect``).
    drops: list[tuple[str, int]] | None = None
    callback: CommitCallback | None = None
    error: str | None = None
    cause: BaseException | None = None
    finished: bool = False

    def finish(self) -> None:
        """Tell the caller: wake it, or call its callback (never raises)."""
        self.finished = True
        if self.done is not None:
            self.done.set()
            return
        callback = self.callback
        if callback is None:
            return
        error = None
        if self.error is not None:
            error = StorageError(self.error)
            error.__cause__ = self.cause
        try:
            callback(error)
        except Exception:
            log.exception("internal error in a commit callback")


class Storage(abc.ABC):
    """A node's durable (or, for :class:`MemoryStorage`, in-process) state.

    The name service uses only :meth:`open`, :meth:`commit`, :meth:`commit_soon`,
    :meth:`set_kv`, :meth:`get_kv`, :meth:`entries_since`, :attr:`last_seq` and
    :meth:`close`; a backend provides the ``_backend_*`` hooks. Use :meth:`running` (or
    :func:`pairns.storage.open_storage`) to run the committer.
    """

    #: True for a backend whose writes block (it implements :meth:`_backend_write_blocking`
    #: and is driven by a committer thread); False for one that implements the async
    #: :meth:`_backend_write` (driven by a Trio task).
    WRITES_IN_THREAD = False

    def __init__(self) -> None:
        self._state = _State.NEW
        self._queue: list[_Request] = []
        # Guards _queue, and wakes the committer thread, when there is one.
        self._queue_cond = threading.Condition()
        self._thread_closing = False
        self._in_flight: list[_Request] = []
        self._wakeup = trio.Event()
        self._committer_running = False
        self._committer_done = trio.Event()
        self._closing = False
        self._kv: dict[str, str] = {}
        self._last_seq = 0
        self._commits = 0
        self._transactions = 0
        self._failed_transactions = 0
        self._changes = 0

    # ----------------------------------------------------------------- lifecycle

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Storage]:
        """Run the committer task for the duration of the block, then :meth:`close`.

        The caller still calls :meth:`open` inside the block (and gets the
        :class:`Loaded` state from it). On exit, even by cancellation, pending
        commits are finished (or failed, if the committer itself was cancelled) and
        the backend is closed.
        """
        committer = self._run_thread_committer if self.WRITES_IN_THREAD else self._run_committer
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(committer)
                try:
                    yield self
                finally:
                    with trio.CancelScope(shield=True):
                        await self.close()
        except BaseExceptionGroup as group:
            # The nursery is an implementation detail: an error raised in the caller's
            # block comes out as itself, not wrapped in a group.
            _raise_single(group)

    async def open(self) -> Loaded:
        """Open the backend and return everything it holds.

        Raises :class:`StorageError` if the store cannot be used (in use by another
        process, read-only, corrupt, newer schema, ...).
        """
        if self._state is not _State.NEW:
            raise StorageError(f"storage is already {self._state.value}: {self.describe()}")
        loaded = await self._backend_open()
        self._kv = dict(loaded.kv)
        self._last_seq = loaded.last_seq
        self._state = _State.OPEN
        return loaded

    async def close(self) -> None:
        """Wait for every pending commit, stop the committer and close the backend.

        Idempotent. Commits made after ``close`` raise :class:`StorageError`.
        """
        self._closing = True
        self._wakeup.set()
        with self._queue_cond:
            self._thread_closing = True
            self._queue_cond.notify()
        if self._committer_running:
            await self._committer_done.wait()
        previous, self._state = self._state, _State.CLOSED
        if previous is not _State.CLOSED:
            # Also after a failed or missing open(): releases whatever was acquired.
            await self._backend_close()

    # -------------------------------------------------------------------- writes

    async def commit(
        self,
        changes: Sequence[tuple[int, Entry]],
        *,
        request_id: str | None = None,
        learnt: Sequence[tuple[str, float]] = (),
    ) -> None:
        """Make ``(seq, entry)`` changes durable; return once they are.

        *request_id*, the client's id for the write these changes make, is stored with
        the last of them (see :attr:`Loaded.requests`). *learnt* holds ``(request id,
        applied at)`` of writes the twin applied (their records came with these
        changes): they are stored in the same transaction, so a node that has the
        twin's change on disk also knows its request id after a restart; only the
        latest :data:`RESTORED_REQUESTS` are kept.

        One row per name: the change with the higher seq wins, whatever the order the
        commits arrive in. A change to a name is always stored above an older one; a
        change that reaches storage after a newer change to its name was stored (a
        merge from the twin whose entry a local write replaced before the merge was
        committed) is stale and not written, since the newer row already holds the
        name. An empty sequence returns at once. If the
        transaction fails, every caller whose changes were in it gets
        :class:`StorageError` and none of those changes are stored; the storage
        stays usable. Like ``trio.to_thread.run_sync``, a commit is never abandoned:
        a caller cancelled while waiting still waits until its batch is written (or
        failed), so what the caller believes and what is on disk never diverge
        silently.
        """
        records = _check_learnt(learnt) if learnt else None
        if not changes and not records:
            await trio.lowlevel.checkpoint()
            return
        prepared = self._prepare(changes, request_id)
        await self._submit(_Request(prepared, None, trio.Event(), learnt=records))

    async def collect(
        self, drops: Sequence[tuple[str, int]], kv: Mapping[str, str] | None = None
    ) -> None:
        """Delete the rows of collected tombstones, ``(name, seq)`` each (see
        ``Namespace.collect``), and store *kv* in the same transaction.

        A row goes only if it is still *name*'s row at *seq*: a change to the name
        committed meanwhile (registered again after the collection) replaced it.
        """
        records = [(str(name), int(seq)) for name, seq in drops]
        await self._submit(_Request([], dict(kv) if kv else None, trio.Event(), drops=records))

    async def flush(self) -> None:
        """Return once every commit asked for before this call is written or has failed
        (their callbacks have run); raises :class:`StorageError` if the storage is not
        open or the transaction this rides in fails."""
        await self._submit(_Request([], None, trio.Event()))

    def commit_soon(
        self,
        changes: Sequence[tuple[int, Entry]],
        callback: CommitCallback,
        *,
        request_id: str | None = None,
    ) -> None:
        """Queue changes for the next transaction; ``callback(error)`` once it is written.

        The callback-style :meth:`commit`, for callers that must not spend a task per
        write: *callback* gets ``None`` when the changes are durable, or the
        :class:`StorageError` that kept them from being written. It runs in the
        committer task, must not block, and is called exactly once: also when the
        storage closes first (with an error), also for an empty *changes* (at once).
        Raises at once, without calling it, if the storage is not open or *changes*
        are malformed.
        """
        self._check_open()
        prepared = self._prepare(changes, request_id)
        if not prepared:
            callback(None)
            return
        self._enqueue(_Request(prepared, None, callback=callback))

    async def set_kv(self, key: str, value: str) -> None:
        """Durably store a small metadata string (it rides in the next transaction)."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("storage metadata keys and values must be str")
        await self._submit(_Request([], {key: value}, trio.Event()))

    async def get_kv(self, key: str, default: str | None = None) -> str | None:
        """The value last durably stored under *key*, or *default*."""
        self._check_open()
        await trio.lowlevel.checkpoint()
        return self._kv.get(key, default)

    async def _submit(self, request: _Request) -> None:
        self._check_open()
        self._enqueue(request)
        assert request.done is not None
        with trio.CancelScope(shield=True):
            await request.done.wait()
        if request.error is not None:
            raise StorageError(request.error) from request.cause

    def _enqueue(self, request: _Request) -> None:
        if self.WRITES_IN_THREAD:
            with self._queue_cond:
                self._queue.append(request)
                self._queue_cond.notify()
        else:
            self._queue.append(request)
            self._wakeup.set()

    def _check_open(self) -> None:
        if self._state is not _State.OPEN or self._closing:
            state = "closed" if self._closing or self._state is _State.CLOSED else "not open"
            raise StorageError(f"storage is {state}: {self.describe()}")
        if not self._committer_running:
            raise StorageError(
                f"storage has no committer running (use open_storage()): {self.describe()}"
            )

    async def _run_committer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The committer of an in-process backend: a Trio task."""
        self._committer_running = True
        task_status.started()
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    continue
                batch, self._queue = self._queue, []
                self._in_flight = batch
                changes, kv, learnt, drops = _merge(batch)
                try:
                    last_seq = await self._backend_write(changes, kv, learnt, drops)
                except StorageError as exc:
                    self._batch_done(batch, len(changes), kv, 0, exc)
                else:
                    self._batch_done(batch, len(changes), kv, last_seq, None)
                self._in_flight = []
        finally:
            self._committer_running = False
            # Reached on close, on cancellation and on a crash: nobody may wait forever.
            self._refuse([*self._in_flight, *self._queue])
            self._in_flight = []
            self._queue = []
            self._committer_done.set()

    async def _run_thread_committer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The committer of a backend whose writes block: a thread, watched by a task.

        The thread is never abandoned: this task waits (shielded) until it has written
        everything queued before :meth:`close` and exited.
        """
        exited = trio.Event()
        thread = threading.Thread(
            target=self._thread_main,
            args=(trio.lowlevel.current_trio_token(), exited.set),
            name=f"pairns-committer {self.describe()}",
            daemon=True,
        )
        self._committer_running = True
        thread.start()
        task_status.started()
        try:
            with trio.CancelScope(shield=True):
                await exited.wait()
        finally:
            self._committer_running = False
            with self._queue_cond:
                left, self._queue = self._queue, []
            self._refuse(left)
            self._committer_done.set()

    def _thread_main(self, token: trio.lowlevel.TrioToken, exited: Callable[[], None]) -> None:
        cond = self._queue_cond
        try:
            while True:
                with cond:
                    while not self._queue and not self._thread_closing:
                        cond.wait()
                    if not self._queue:
                        return
                    batch, self._queue = self._queue, []
                changes, kv, learnt, drops = _merge(batch)
                error: StorageError | None = None
                last_seq = 0
                try:
                    last_seq = self._backend_write_blocking(changes, kv, learnt, drops)
                except StorageError as exc:
                    error = exc
                except Exception as exc:  # a bug: fail the batch, never hang its callers
                    log.exception("internal error writing a batch")
                    error = StorageError(
                        f"commit failed, changes not written (internal error: {exc})"
                    )
                    error.__cause__ = exc
                token.run_sync_soon(self._batch_done, batch, len(changes), kv, last_seq, error)
        except trio.RunFinishedError:
            return  # nobody is waiting any more: the Trio run is over
        finally:
            try:
                token.run_sync_soon(exited)
            except trio.RunFinishedError:
                pass

    def _batch_done(
        self,
        batch: list[_Request],
        n_changes: int,
        kv: dict[str, str],
        last_seq: int,
        error: StorageError | None,
    ) -> None:
        """Account for a written (or failed) batch, then tell its callers."""
        self._commits += len(batch)
        if n_changes or kv or error is not None:  # a batch of flushes alone writes nothing
            self._transactions += 1
        if error is not None:
            self._failed_transactions += 1
            for request in batch:
                request.error = str(error)
                request.cause = error.__cause__
        else:
            self._changes += n_changes
            self._kv.update(kv)
            self._last_seq = max(self._last_seq, last_seq)
        for request in batch:
            request.finish()

    def _refuse(self, requests: list[_Request]) -> None:
        for request in requests:
            if not request.finished:
                request.error = f"storage closed before the change was written: {self.describe()}"
                request.finish()

    # --------------------------------------------------------------------- reads

    async def entries_since(self, seq: int, *, limit: int | None = None) -> list[tuple[int, Entry]]:
        """Durably stored ``(seq, entry)`` rows with a sequence number above *seq*.

        Ordered by ``seq``; at most *limit* rows if given (page with the last seq
        returned). ``entries_since(0)`` is a full snapshot, tombstones included.
        """
        self._check_open()
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        return await self._backend_entries_since(seq, limit)

    @property
    def last_seq(self) -> int:
        """The highest sequence number durably committed so far."""
        return self._last_seq

    def statistics(self) -> StorageStatistics:
        """Counters of the group commit so far."""
        return StorageStatistics(
            commits=self._commits,
            transactions=self._transactions,
            failed_transactions=self._failed_transactions,
            changes=self._changes,
            queued=len(self._queue),
        )

    # ------------------------------------------------------------ backend hooks

    @abc.abstractmethod
    def describe(self) -> str:
        """A short human-readable name of the store (a path, or ``memory``)."""

    def _prepare(self, changes: Sequence[tuple[int, Entry]], request_id: str | None) -> list[Any]:
        """Check and convert one caller's changes, in the caller's task.

        Runs before the changes join a batch, so bad input fails its own caller
        with ``TypeError``/``ValueError`` instead of the whole batch. Here:
        ``(seq, entry, request id or None)``, the id on the last change only.
        """
        if request_id is not None and not isinstance(request_id, str):
            raise TypeError(f"a request id must be a string or None, got {request_id!r}")
        out: list[Any] = []
        for seq, entry in changes:
            if not isinstance(entry, Entry) or not isinstance(seq, int) or seq <= 0:
                raise TypeError(f"a change must be (seq > 0, Entry), got {(seq, entry)!r}")
            out.append((seq, entry, None))
        if out and request_id is not None:
            seq, entry, _ = out[-1]
            out[-1] = (seq, entry, request_id)
        return out

    @abc.abstractmethod
    async def _backend_open(self) -> Loaded:
        """Open the store and load it."""

    async def _backend_write(
        self,
        changes: list[Any],
        kv: dict[str, str],
        learnt: list[tuple[str, float]],
        drops: Sequence[tuple[str, int]] = (),
    ) -> int:
        """Write one batch (prepared changes in order, then kv, then the request ids
        learnt from the twin, then the deletion of collected rows, see
        :meth:`collect`) atomically.

        Returns the highest seq in the batch (0 if none); raises :class:`StorageError`
        (with the backend's exception as ``__cause__``) if nothing was written. For a
        backend with ``WRITES_IN_THREAD = False``.
        """
        raise NotImplementedError

    def _backend_write_blocking(
        self,
        changes: list[Any],
        kv: dict[str, str],
        learnt: list[tuple[str, float]],
        drops: Sequence[tuple[str, int]] = (),
    ) -> int:
        """:meth:`_backend_write`, blocking, called in the committer thread (for a
        backend with ``WRITES_IN_THREAD = True``)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def _backend_entries_since(self, seq: int, limit: int | None) -> list[tuple[int, Entry]]:
        """Rows above *seq*, ordered by seq."""

    @abc.abstractmethod
    async def _backend_close(self) -> None:
        """Release everything ``_backend_open`` acquired (also after a failed open)."""


def _merge(
    batch: list[_Request],
) -> tuple[list[Any], dict[str, str], list[tuple[str, float]], list[tuple[str, int]]]:
    """One batch's changes, in arrival order, its metadata writes, the request ids
    learnt from the twin (at most :data:`RESTORED_REQUESTS`, the latest) and the rows
    of collected tombstones to delete."""
    changes: list[Any] = []
    kv: dict[str, str] = {}
    learnt: list[tuple[str, float]] = []
    drops: list[tuple[str, int]] = []
    for request in batch:
        changes.extend(request.changes)
        if request.kv:
            kv.update(request.kv)
        if request.learnt:
            learnt.extend(request.learnt)
        if request.drops:
            drops.extend(request.drops)
    if len(learnt) > RESTORED_REQUESTS:
        del learnt[:-RESTORED_REQUESTS]
    return changes, kv, learnt, drops


def _check_learnt(learnt: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Learnt request records as stored: ``(str, float)``, the latest
    :data:`RESTORED_REQUESTS` (a full resync brings up to 100,000 at once)."""
    records = [(rid, float(at)) for rid, at in learnt[-RESTORED_REQUESTS:]]
    for rid, _at in records:
        if not isinstance(rid, str):
            raise TypeError(f"a request id must be a string, got {rid!r}")
    return records
