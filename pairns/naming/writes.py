"""How the name service applies a write and when it answers: one write path, three
strategies.

Every write is validated and applied to the in-memory namespace at once, in the
daemon's loop (the serialisation point that makes "name already exists" exact under
concurrency). What happens next is the strategy's, chosen once, at construction, by
:func:`choose_writes`:

- :class:`InMemoryWrites` (memory mode, ``--ack local``): nothing to wait for; the call
  is answered inline.
- :class:`GroupCommitWrites` (persistent mode, ``--ack local``): the change joins the
  storage's next group commit, and the call returns a :class:`~pairns.rpc.Deferred`
  that the commit finishes (no task per write: a task cost more CPU than the write).
- :class:`AckTwinWrites` (``--ack twin``, either mode): the same, and once the change
  is durable here a task waits, bounded, until the twin has applied it.

Deduplication by client request id (``rpc.current_request_id``) is done once, in
:meth:`WritePath.write`, for all three: a retry of a write that took effect (its id is
in the :class:`~pairns.naming.requests.RequestTable`) is answered as the first was,
without applying it again; a retry of a write still under way gets the first attempt's
answer, or, if that attempt failed (and so left nothing behind), applies the write
itself. A write takes effect (its id is remembered, the peer link is woken) when it is
durable here; with ``--ack twin`` that is before the twin has it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

import outcome
import trio

from pairns.errors import StorageError
from pairns.namespace import ChangeSet, Namespace
from pairns.naming.requests import RequestTable
from pairns.rpc import Deferred, current_request_id
from pairns.storage import Storage

__all__ = [
    "AckTwinWrites",
    "GroupCommitWrites",
    "InMemoryWrites",
    "TwinLink",
    "WriteOp",
    "WritePath",
    "choose_writes",
]

log = logging.getLogger("pairns.naming")

#: A validated namespace operation (``Namespace.register`` and its kind): applies the
#: change, or raises ``NamingError`` and changes nothing.
WriteOp = Callable[..., ChangeSet]


class TwinLink(Protocol):
    """What the write path needs of the peer link (``replication.Replicator``)."""

    @property
    def ack_mode(self) -> str:
        """``"local"`` or ``"twin"`` (``--ack``)."""
        ...

    def changed(self) -> None:
        """New changes are in the feed: wake the sender."""
        ...

    async def wait_twin(self, seq: int) -> bool:
        """Wait, bounded, until the twin has applied feed position *seq*."""
        ...


class WritePath(ABC):
    """The write path of one name service: deduplication here, the rest in
    :meth:`_apply` (one subclass per strategy)."""

    def __init__(self, namespace: Namespace, requests: RequestTable, link: TwinLink | None) -> None:
        self._ns = namespace
        self._requests = requests
        self._link = link
        # Writes with a request id that have not taken effect or failed yet, by id.
        self._pending: dict[str, Deferred] = {}

    def write(self, op: WriteOp, args: tuple[Any, ...]) -> Deferred | None:
        """Apply ``op(*args)`` for the call being served; the call's answer.

        The answer is the write's result (None: every Pyro 3 write returns None) or a
        :class:`Deferred` of it. A validation error (``NamingError``) is raised at once.
        """
        request_id = current_request_id.get()
        if request_id is None:
            return self._apply(op, args, None)
        return self.write_once(op, args, request_id)

    def write_once(self, op: WriteOp, args: tuple[Any, ...], request_id: str) -> Deferred | None:
        """:meth:`write` of a call that carries *request_id*: applied at most once."""
        if self._requests.get(request_id, time.time())[0]:
            return None  # applied already; its result was None, like every write's
        first = self._pending.get(request_id)
        if first is not None:
            retry = Deferred()
            first.add_done_callback(
                lambda answer: self._after_first(retry, answer, op, args, request_id)
            )
            return retry
        answer = self._apply(op, args, request_id)
        if answer is not None and not answer.done:
            pending = self._pending
            pending[request_id] = answer

            def settled(_: outcome.Outcome[Any]) -> None:
                if pending.get(request_id) is answer:
                    del pending[request_id]

            answer.add_done_callback(settled)
        return answer

    def _after_first(
        self,
        retry: Deferred,
        first: outcome.Outcome[Any],
        op: WriteOp,
        args: tuple[Any, ...],
        request_id: str,
    ) -> None:
        """A retry's answer once the first attempt is settled: its result, else (it
        failed, so nothing of it is left) the outcome of applying the write now."""
        if type(first) is outcome.Value:
            retry.resolve(first.value)
            return
        try:
            again = self.write_once(op, args, request_id)
        except Exception as exc:
            retry.fail(exc)
            return
        if again is None:
            retry.resolve(None)
        else:
            again.add_done_callback(lambda result: _finish_from(retry, result))

    @abstractmethod
    def _apply(self, op: WriteOp, args: tuple[Any, ...], request_id: str | None) -> Deferred | None:
        """Apply the write and answer it: the result, or a :class:`Deferred` of it."""

    def _took_effect(self, changes: ChangeSet, request_id: str | None) -> None:
        """A write is durable here: remember its request id and wake the peer link."""
        if request_id is not None:
            self._requests.add(request_id, None, _last_seq(changes, self._ns), time.time())
        if self._link is not None:
            self._link.changed()


class InMemoryWrites(WritePath):
    """Memory mode: a write takes effect as it is applied and is answered inline."""

    def _apply(self, op: WriteOp, args: tuple[Any, ...], request_id: str | None) -> None:
        changes = op(*args)
        self._ns.settled(changes)  # in memory, applied is as durable as it gets
        self._took_effect(changes, request_id)


class GroupCommitWrites(WritePath):
    """Persistent mode: a write is answered by the group commit that makes it durable;
    if that commit fails, the change is undone and the call fails with the
    ``StorageError``."""

    def __init__(
        self,
        namespace: Namespace,
        requests: RequestTable,
        link: TwinLink | None,
        storage: Storage,
    ) -> None:
        super().__init__(namespace, requests, link)
        self._storage = storage

    def _apply(self, op: WriteOp, args: tuple[Any, ...], request_id: str | None) -> Deferred:
        changes = op(*args)
        later = Deferred()
        try:
            self._storage.commit_soon(
                changes.rows,
                lambda error: self._committed(later, changes, request_id, error),
                request_id=request_id,
            )
        except BaseException:
            self._ns.undo(changes)
            raise
        return later

    def _committed(
        self,
        later: Deferred,
        changes: ChangeSet,
        request_id: str | None,
        error: StorageError | None,
    ) -> None:
        if error is not None:
            self._ns.undo(changes)
            later.fail(error)
            return
        self._ns.settled(changes)
        self._took_effect(changes, request_id)
        self._answer_durable(later, changes)

    def _answer_durable(self, later: Deferred, changes: ChangeSet) -> None:
        """The write is durable here and took effect: answer it."""
        later.resolve(None)


class AckTwinWrites(GroupCommitWrites):
    """``--ack twin``: answered once the write is durable here (group commit, or at once
    in memory mode) and the twin has applied it, or the wait gave up (the peer timeout;
    counted as a degraded acknowledgement by the link).

    The wait for the twin runs as a task in *nursery* (the node's): a Deferred needs
    someone to finish it, and the peer link's wait is a coroutine.
    """

    def __init__(
        self,
        namespace: Namespace,
        requests: RequestTable,
        link: TwinLink,
        storage: Storage,
        *,
        durable: bool,
        nursery: trio.Nursery,
    ) -> None:
        super().__init__(namespace, requests, link, storage)
        self._twin = link
        self._persistent = durable
        self._nursery = nursery

    def _apply(self, op: WriteOp, args: tuple[Any, ...], request_id: str | None) -> Deferred:
        if self._persistent:
            return super()._apply(op, args, request_id)
        changes = op(*args)
        later = Deferred()
        self._took_effect(changes, request_id)
        self._answer_durable(later, changes)
        return later

    def _answer_durable(self, later: Deferred, changes: ChangeSet) -> None:
        try:
            self._nursery.start_soon(self._wait_twin, later, _last_seq(changes, self._ns))
        except RuntimeError:
            # The node has stopped (a commit finished while its storage closed): answer
            # as when the twin is not there, durable here.
            later.resolve(None)

    async def _wait_twin(self, later: Deferred, seq: int) -> None:
        result: outcome.Outcome[None]
        try:
            await self._twin.wait_twin(seq)
        except Exception as exc:
            result = outcome.Error(exc)
        else:
            result = outcome.Value(None)
        try:
            _finish_from(later, result)
        except Exception:
            # A failing reply callback must not take the node's nursery down with it.
            log.exception("internal error while answering an --ack twin write")


def choose_writes(
    namespace: Namespace,
    storage: Storage,
    requests: RequestTable,
    link: TwinLink | None,
    *,
    durable: bool,
    nursery: trio.Nursery | None,
) -> WritePath:
    """The write path for a node: ``--ack twin`` (needs *nursery*), else group commit
    when *durable*, else in memory."""
    if link is not None and link.ack_mode == "twin":
        if nursery is None:
            raise ValueError("--ack twin writes need a nursery to wait for the twin in")
        return AckTwinWrites(namespace, requests, link, storage, durable=durable, nursery=nursery)
    if durable:
        return GroupCommitWrites(namespace, requests, link, storage)
    return InMemoryWrites(namespace, requests, link)


def _finish_from(later: Deferred, result: outcome.Outcome[Any]) -> None:
    if type(result) is outcome.Value:
        later.resolve(result.value)
    else:
        assert isinstance(result, outcome.Error)
        later.fail(result.error)


def _last_seq(changes: ChangeSet, ns: Namespace) -> int:
    """The feed position of a change set's last entry (what the twin must ack)."""
    return changes.seqs[-1] if changes.seqs else ns.last_seq
