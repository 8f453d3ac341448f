"""The name server object that a node's daemon serves (Pyro 3 method names).

Reads (``resolve``, ``list``, ``flatlist``, ``getMeta``, ...) are plain methods: the
daemon answers them inline, so a resolve costs a name check and a dict lookup. Writes
validate and apply the change to the in-memory namespace (the serialisation point that
makes "name already exists" exact under concurrency), then wait until storage says the
change is durable before they answer. In memory mode there is nothing to wait for, so
the write methods are plain methods answered inline. In persistent mode they are plain
methods too: they return a :class:`~pairns.rpc.Deferred` that the storage's group
commit finishes, so no task is spawned per write either.

Paired mode: every write wakes the replicator (the change feed is its outgoing buffer,
so a write never waits for the twin), and with ``--ack twin`` the write then waits,
bounded, until the twin has applied it (these writes run as tasks). A write that
carries a client request id (``rpc.current_request_id``) is remembered with its result
in a bounded, time-limited table shared with the twin; a retry with a known id gets the
first result back instead of being applied again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import outcome
import trio

from pairns import names
from pairns.errors import NamingError, StorageError
from pairns.namespace import ChangeSet, Namespace
from pairns.naming.requests import RequestTable
from pairns.rpc import Deferred, current_request_id
from pairns.storage import Storage
from pairns.uri import URI

if TYPE_CHECKING:
    from pairns.replication.link import Replicator

log = logging.getLogger("pairns.naming")

#: ``list()`` results; aliases because the method named ``list`` shadows the builtin here.
GroupListing = list[tuple[str, int]]
FlatListing = list[tuple[str, str]]

NAMESERVER_OBJECT_ID = names.NAMESERVER_OBJECT_ID


class NameServer:
    """The remote name server: every public method here is callable over the wire."""

    def __init__(
        self,
        namespace: Namespace,
        storage: Storage,
        *,
        durable: bool,
        node_info: Callable[[], dict[str, Any]],
        request_shutdown: Callable[[], None] | None = None,
        replicator: Replicator | None = None,
        requests: RequestTable | None = None,
    ) -> None:
        self._ns = namespace
        self._storage = storage
        self._durable = durable
        self._default_group = namespace.default_group
        self._node_info = node_info
        self._request_shutdown = request_shutdown
        self._started = time.time()
        self._replicator = replicator
        self._requests = requests if requests is not None else RequestTable()
        # Writes with a request id still being applied: a retry waits for the first.
        self._in_flight: dict[str, trio.Event] = {}
        self._deferred: dict[str, Deferred] = {}
        self._ack_twin = replicator is not None and replicator.ack_mode == "twin"
        # Instance attributes shadow the class's in-memory methods.
        if self._ack_twin:
            # The daemon sees coroutine functions and runs these calls as tasks that
            # await the disk and then the twin.
            self.register = self._register_durable  # type: ignore[method-assign,assignment]
            self.unregister = self._unregister_durable  # type: ignore[method-assign,assignment]
            self.createGroup = self._create_group_durable  # type: ignore[method-assign,assignment]
            self.deleteGroup = self._delete_group_durable  # type: ignore[method-assign,assignment]
            self.setMeta = self._set_meta_durable  # type: ignore[method-assign,assignment]
        elif durable:
            # Plain methods that hand the daemon a Deferred, finished by the group
            # commit: no task per write (a task cost more CPU than the write itself).
            self.register = self._register_deferred  # type: ignore[method-assign,assignment]
            self.unregister = self._unregister_deferred  # type: ignore[method-assign,assignment]
            self.createGroup = self._create_group_deferred  # type: ignore[method-assign,assignment]
            self.deleteGroup = self._delete_group_deferred  # type: ignore[method-assign,assignment]
            self.setMeta = self._set_meta_deferred  # type: ignore[method-assign,assignment]

    # -- reads: answered inline by the daemon -------------------------------------------

    def _abs(self, name: Any) -> str:
        return names.absolute(name, self._default_group)

    def ping(self) -> bool:
        """Answer True (Pyro 3's ``ping``): the node is alive."""
        return True

    def resolve(self, name: str) -> str:
        """The URI registered under *name* (a string; proxies turn it into a ``URI``)."""
        return self._ns.resolve(self._abs(name))

    def list(self, group: str | None = None) -> GroupListing:
        """The direct children of *group*: ``(name, 0)`` for groups, ``(name, 1)`` for objects."""
        return self._ns.list(self._abs(group if group is not None else ""))

    def flatlist(self) -> FlatListing:
        """Every object in the namespace as ``(absolute name, URI)``."""
        return self._ns.flatlist()

    def getMeta(self, name: str) -> Any:
        """The user metadata of a group or object (``None`` until set)."""
        return self._ns.get_meta(self._abs(name))

    def getSystemMeta(self, name: str) -> dict[str, Any]:
        """Creation and modification time and the owning node of a group or object."""
        return self._ns.get_system_meta(self._abs(name))

    def fullName(self, name: str) -> str:
        """The absolute form of *name* (relative names expand against the default group)."""
        return self._abs(name)

    def resync(self) -> None:
        """Force a full resync with the twin (both directions); only a paired node has one."""
        if self._replicator is None:
            raise NamingError("this name server is not paired, there is nothing to resync with")
        self._replicator.request_resync()

    def twin(self) -> str | None:
        """Where the twin serves (``PYRO://host:port/Pyro.NameServer``); None when unpaired."""
        if self._replicator is None:
            return None
        host, port = self._replicator.twin
        return str(URI.pyro(host, port, NAMESERVER_OBJECT_ID))

    def status(self) -> dict[str, Any]:
        """What ``pairns-ctl status`` shows: role, link, lag, counts, digest, identity."""
        info = dict(self._node_info())
        info.update(
            entries=self._ns.entry_count,
            digest=self._ns.digest(),
            last_seq=self._ns.last_seq,
            uptime=round(time.time() - self._started, 3),
            conflicts=self._ns.conflict_count,
            request_ids=len(self._requests),
        )
        if self._replicator is not None:
            info.update(self._replicator.status())
        else:
            info.update(role="single", twin=None, link="unpaired")
        return info

    def dump(self, after: str | None = None, limit: int = 10_000) -> dict[str, Any]:
        """A page of the namespace (groups and objects, with metadata), in name order.

        Returns ``{"entries": [...], "next": name-or-None}``; pass ``next`` back as
        *after* to get the following page. Each entry is a dict with ``name``,
        ``kind`` (``"group"``/``"object"``), ``uri`` and ``meta``.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
            raise NamingError("dump limit must be an integer between 1 and 100000")
        if after is not None and not isinstance(after, str):
            raise NamingError("invalid dump position", repr(after))
        page, more = self._ns.dump_page(after, limit)
        return {"entries": page, "next": page[-1]["name"] if more and page else None}

    def shutdown(self) -> bool:
        """Stop the node (refused when it was started with ``-k``)."""
        if self._request_shutdown is None:
            raise NamingError("shutdown is not allowed on this name server (started with -k)")
        log.warning("shutdown requested by a client")
        self._request_shutdown()
        return True

    # -- writes, in-memory mode: applied and answered inline ------------------------------

    def register(self, name: str, uri: str) -> None:
        """Register *uri* under *name* (its parent group must exist)."""
        self._write(self._ns.register, self._abs(name), uri)

    def unregister(self, name: str) -> None:
        """Remove the object registered under *name*."""
        self._write(self._ns.unregister, self._abs(name))

    def createGroup(self, name: str) -> None:
        """Create the group *name* (its parent group must exist)."""
        self._write(self._ns.create_group, self._abs(name))

    def deleteGroup(self, name: str) -> None:
        """Delete the group *name* and everything under it."""
        self._write(self._ns.delete_group, self._abs(name))

    def setMeta(self, name: str, meta: Any) -> None:
        """Set the user metadata of a group or object (any JSON value)."""
        self._write(self._ns.set_meta, self._abs(name), meta)

    def _write(self, op: Callable[..., ChangeSet], *args: Any) -> None:
        """Apply a write unless its request id says it was applied already.

        Every Pyro 3 write returns None, so the remembered result is None too; the
        table keeps results anyway, so a write that returns something stays correct.
        """
        request_id = current_request_id.get()
        if self._known(request_id):
            return
        self._applied(op(*args), request_id)

    def _known(self, request_id: str | None) -> bool:
        """True if the write *request_id* names was applied already (a retry)."""
        return request_id is not None and self._requests.get(request_id, time.time())[0]

    def _applied(self, changes: ChangeSet, request_id: str | None) -> int:
        """Record a write that took effect (durably, where that is asked for): remember
        its request id and wake the replicator. Returns its feed position."""
        seq = _last_seq(changes, self._ns)
        if request_id is not None:
            self._requests.add(request_id, None, seq, time.time())
        if self._replicator is not None:
            self._replicator.changed()
        return seq

    # -- writes, persistent: answered by the group commit once durable -------------------

    def _write_deferred(
        self, op: Callable[..., ChangeSet], args: tuple[Any, ...], request_id: str | None
    ) -> Deferred | None:
        """Apply a write now and return a Deferred the group commit finishes.

        None: the request id says the write was applied already (its result, None, is
        the answer). A validation error (``NamingError``) is raised at once.
        """
        if request_id is not None:
            if self._known(request_id):
                return None
            first = self._deferred.get(request_id)
            if first is not None:
                # A retry of a write still being committed answers with the first
                # attempt; if that failed, the retry applies the write itself.
                retry = Deferred()
                first.add_done_callback(
                    lambda result: self._after_first(retry, result, op, args, request_id)
                )
                return retry
        changes = op(*args)
        later = Deferred()
        if request_id is not None:
            self._deferred[request_id] = later
        try:
            self._storage.commit_soon(
                changes.rows,
                lambda error: self._committed(later, changes, request_id, error),
                request_id=request_id,
            )
        except BaseException:
            if request_id is not None:
                del self._deferred[request_id]
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
        if request_id is not None:
            self._deferred.pop(request_id, None)
        if error is not None:
            self._ns.undo(changes)
            later.fail(error)
            return
        self._applied(changes, request_id)
        later.resolve(None)

    def _after_first(
        self,
        retry: Deferred,
        first: outcome.Outcome[Any],
        op: Callable[..., ChangeSet],
        args: tuple[Any, ...],
        request_id: str,
    ) -> None:
        if type(first) is outcome.Value:
            retry.resolve(first.value)
            return
        try:
            again = self._write_deferred(op, args, request_id)
        except Exception as exc:
            retry.fail(exc)
            return
        if again is None:
            retry.resolve(None)
        else:
            again.add_done_callback(lambda result: _finish_from(retry, result))

    def _register_deferred(self, name: str, uri: str) -> Deferred | None:
        return self._write_deferred(
            self._ns.register, (self._abs(name), uri), current_request_id.get()
        )

    def _unregister_deferred(self, name: str) -> Deferred | None:
        return self._write_deferred(
            self._ns.unregister, (self._abs(name),), current_request_id.get()
        )

    def _create_group_deferred(self, name: str) -> Deferred | None:
        return self._write_deferred(
            self._ns.create_group, (self._abs(name),), current_request_id.get()
        )

    def _delete_group_deferred(self, name: str) -> Deferred | None:
        return self._write_deferred(
            self._ns.delete_group, (self._abs(name),), current_request_id.get()
        )

    def _set_meta_deferred(self, name: str, meta: Any) -> Deferred | None:
        return self._write_deferred(
            self._ns.set_meta, (self._abs(name), meta), current_request_id.get()
        )

    # -- writes with --ack twin: answered once durable and applied by the twin ------------

    async def _write_async(self, op: Callable[..., ChangeSet], *args: Any) -> None:
        request_id = current_request_id.get()
        if request_id is None:
            await self._apply_async(op, args)
            return
        # A retry of a write still in progress waits for it (bounded by the caller's
        # own timeout), then answers like any retry; if that attempt failed, this one
        # applies the write (a few rounds cover several retries racing each other).
        for _ in range(8):
            if self._known(request_id):
                return
            pending = self._in_flight.get(request_id)
            if pending is None:
                break
            await pending.wait()
        done = trio.Event()
        self._in_flight[request_id] = done
        try:
            await self._apply_async(op, args, request_id)
        finally:
            del self._in_flight[request_id]
            done.set()

    async def _apply_async(
        self, op: Callable[..., ChangeSet], args: tuple[Any, ...], request_id: str | None = None
    ) -> int:
        changes = op(*args)
        if self._durable:
            await self._commit(changes, request_id)
        seq = self._applied(changes, request_id)
        if self._ack_twin and self._replicator is not None:
            await self._replicator.wait_twin(seq)
        return seq

    async def _commit(self, changes: ChangeSet, request_id: str | None) -> None:
        try:
            await self._storage.commit(changes.rows, request_id=request_id)
        except StorageError:
            self._ns.undo(changes)
            raise

    async def _register_durable(self, name: str, uri: str) -> None:
        await self._write_async(self._ns.register, self._abs(name), uri)

    async def _unregister_durable(self, name: str) -> None:
        await self._write_async(self._ns.unregister, self._abs(name))

    async def _create_group_durable(self, name: str) -> None:
        await self._write_async(self._ns.create_group, self._abs(name))

    async def _delete_group_durable(self, name: str) -> None:
        await self._write_async(self._ns.delete_group, self._abs(name))

    async def _set_meta_durable(self, name: str, meta: Any) -> None:
        await self._write_async(self._ns.set_meta, self._abs(name), meta)


def _finish_from(later: Deferred, result: outcome.Outcome[Any]) -> None:
    if type(result) is outcome.Value:
        later.resolve(result.value)
    else:
        later.fail(cast(outcome.Error, result).error)


def _last_seq(changes: ChangeSet, ns: Namespace) -> int:
    """The feed position of a change set's last entry (what the twin must ack)."""
    return changes.seqs[-1] if changes.seqs else ns.last_seq
