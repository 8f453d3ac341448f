"""The name server object that a node's daemon serves (Pyro 3 method names).

Reads (``resolve``, ``list``, ``flatlist``, ``getMeta``, ...) are plain methods: the
daemon answers them inline, so a resolve costs a name check and a dict lookup. Writes
are plain methods too: each validates its name and hands the namespace operation to the
node's write path (:mod:`pairns.naming.writes`), which applies it at once and answers
inline (memory mode), with a :class:`~pairns.rpc.Deferred` that the storage's group
commit finishes (persistent mode), or once the twin has applied it too (``--ack
twin``). The write path also makes a retried write (same client request id) safe: it
is applied once and every attempt gets the first result.

Paired mode: every write wakes the replicator (the change feed is its outgoing buffer,
so a write never waits for the twin, except with ``--ack twin``); the request ids of
writes travel to the twin, so it answers a retry after a failover too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from pairns import names
from pairns.errors import NamingError
from pairns.namespace import Namespace
from pairns.naming.requests import RequestTable
from pairns.naming.writes import TwinLink, choose_writes
from pairns.rpc import Deferred
from pairns.storage import Storage
from pairns.uri import URI

log = logging.getLogger("pairns.naming")

#: ``list()`` results; aliases because the method named ``list`` shadows the builtin here.
GroupListing = list[tuple[str, int]]
FlatListing = list[tuple[str, str]]

NAMESERVER_OBJECT_ID = names.NAMESERVER_OBJECT_ID


class PeerLink(TwinLink, Protocol):
    """What the name service needs of the peer link (``replication.Replicator``)."""

    @property
    def twin(self) -> tuple[str, int]:
        """Where the twin serves: ``(host, port)``."""
        ...

    def request_resync(self) -> None:
        """Force a full resync in both directions."""
        ...

    def status(self) -> dict[str, Any]:
        """The replication part of ``status()``."""
        ...


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
        replicator: PeerLink | None = None,
        requests: RequestTable | None = None,
        nursery: trio.Nursery | None = None,
    ) -> None:
        """*nursery* (the node's) runs the waits of ``--ack twin`` writes; only a
        *replicator* with ``ack_mode == "twin"`` needs it."""
        self._ns = namespace
        self._default_group = namespace.default_group
        self._node_info = node_info
        self._request_shutdown = request_shutdown
        self._started = time.time()
        self._replicator = replicator
        self._requests = requests if requests is not None else RequestTable()
        self._writes = choose_writes(
            namespace, storage, self._requests, replicator, durable=durable, nursery=nursery
        )
        self._write = self._writes.write

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
            tombstones=self._ns.tombstone_count,
            collected_tombstones=self._ns.collected_count,
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

    # -- writes: applied at once, answered by the write path ---------------------------

    def register(self, name: str, uri: str) -> Deferred | None:
        """Register *uri* under *name* (its parent group must exist)."""
        return self._write(self._ns.register, (self._abs(name), uri))

    def unregister(self, name: str) -> Deferred | None:
        """Remove the object registered under *name*."""
        return self._write(self._ns.unregister, (self._abs(name),))

    def createGroup(self, name: str) -> Deferred | None:
        """Create the group *name* (its parent group must exist)."""
        return self._write(self._ns.create_group, (self._abs(name),))

    def deleteGroup(self, name: str) -> Deferred | None:
        """Delete the group *name* and everything under it."""
        return self._write(self._ns.delete_group, (self._abs(name),))

    def setMeta(self, name: str, meta: Any) -> Deferred | None:
        """Set the user metadata of a group or object (any JSON value)."""
        return self._write(self._ns.set_meta, (self._abs(name), meta))
