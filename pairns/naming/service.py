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
from pairns._throttle import RefusalLog
from pairns.errors import ConnectionDeniedError, NamingError
from pairns.namespace import Namespace
from pairns.naming.requests import RequestTable
from pairns.naming.writes import TwinLink, choose_writes
from pairns.rpc import Deferred
from pairns.rpc.context import current_connection
from pairns.security.admin import ADMIN_METHODS, AdminGate, AdminRefused
from pairns.storage import Storage
from pairns.uri import URI

log = logging.getLogger("pairns.naming")

#: ``list()`` results; aliases because the method named ``list`` shadows the builtin here.
GroupListing = list[tuple[str, int]]
FlatListing = list[tuple[str, str]]

NAMESERVER_OBJECT_ID = names.NAMESERVER_OBJECT_ID

#: The methods that see the calling connection (register the service with
#: ``with_connection=CONNECTION_METHODS``): the admin calls and their challenge. Every
#: other method stays on the daemon's hot path.
CONNECTION_METHODS = ADMIN_METHODS | {"adminChallenge"}

#: Most entries one ``load`` call takes (``pairns-ctl load`` sends pages).
MAX_LOAD_ENTRIES = 10_000

#: Names the node makes by itself; ``load`` sets only their metadata.
_BUILTIN = frozenset({names.ROOT, ":Pyro", names.DEFAULT_GROUP, names.NAMESERVER_NAME})


class PeerLink(TwinLink, Protocol):
    """What the name service needs of the peer link (``replication.Replicator``)."""

    @property
    def twin(self) -> tuple[str, int]:
        """Where the twin serves: ``(host, port)``."""
        ...

    def request_resync(self) -> object:
        """Ask for a full resync in both directions (it may join one under way)."""
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
        tls: bool = False,
        admin: AdminGate | None = None,
    ) -> None:
        """*nursery* (the node's) runs the waits of ``--ack twin`` writes; only a
        *replicator* with ``ack_mode == "twin"`` needs it. *tls*: the pair serves TLS
        (``twin()`` names a ``PYROSSL`` URI). *admin* checks the admin identification of
        ``shutdown``, ``resync`` and ``load`` (None: no check)."""
        self._tls = tls
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
        self._admin = admin if admin is not None else AdminGate(None)
        self._refusals = RefusalLog(log)

    @property
    def admin_refusals(self) -> int:
        """Admin calls refused since the node started."""
        return self._admin.refused

    def _authorize(self, method: str, admin: Any) -> None:
        """Refuse *method* unless the call proves the admin identification (when set)."""
        info = current_connection.get()
        try:
            self._admin.check(None if info is None else info.attributes, method, admin)
        except AdminRefused as exc:
            peer = info.peer if info is not None else None
            where = "an unknown address" if peer is None else f"{peer[0]}:{peer[1]}"
            self._refusals.refused("admin", f"refused {method}() from {where}: {exc}")
            raise ConnectionDeniedError(f"refused: {exc}") from None

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

    def adminChallenge(self) -> str:
        """A fresh nonce for one admin call's proof on this connection (the proxies ask
        for it themselves when they have an admin identification)."""
        info = current_connection.get()
        attributes: dict[str, Any] = {} if info is None else info.attributes
        return self._admin.challenge(attributes)

    def resync(self, *, admin: Any = None) -> None:
        """Force a full resync with the twin (both directions); only a paired node has one.

        A request while one runs joins it; one soon after the last waits for its gap
        (see :mod:`pairns.replication.resync`). *admin*: the admin proof, if required.
        """
        self._authorize("resync", admin)
        if self._replicator is None:
            raise NamingError("this name server is not paired, there is nothing to resync with")
        self._replicator.request_resync()

    def twin(self) -> str | None:
        """Where the twin serves (``PYRO://host:port/Pyro.NameServer``, ``PYROSSL://`` for
        a TLS pair); None when unpaired."""
        if self._replicator is None:
            return None
        host, port = self._replicator.twin
        return str(URI.pyro(host, port, NAMESERVER_OBJECT_ID, ssl=self._tls))

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

    def shutdown(self, *, admin: Any = None) -> bool:
        """Stop the node (refused when it was started with ``-k``; *admin*: the admin
        proof, if required)."""
        self._authorize("shutdown", admin)
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

    # -- load: many writes in one admin call --------------------------------------------

    def load(self, entries: Any, *, admin: Any = None) -> Deferred | dict[str, Any]:
        """Create what a page of a dump holds (``pairns-ctl load`` sends pages).

        *entries*: at most :data:`MAX_LOAD_ENTRIES` dicts with ``name``, ``kind``
        (``"group"``/``"object"``), ``uri`` and ``meta``; parents before children.
        Names that exist are left as they are. Answers ``{"loaded": [...], "existed":
        [...]}`` once every change is durable. *admin*: the admin proof, if required.
        """
        self._authorize("load", admin)
        if not isinstance(entries, list) or len(entries) > MAX_LOAD_ENTRIES:
            raise NamingError(f"load takes a list of at most {MAX_LOAD_ENTRIES} entries")
        loaded: list[str] = []
        existed: list[str] = []
        pending: list[Deferred] = []

        def wrote(result: Deferred | None) -> None:
            if result is not None:
                pending.append(result)

        for entry in entries:
            name, kind, uri, meta = _load_entry(entry, self._default_group)
            if name in _BUILTIN:
                if meta is not None and name != names.NAMESERVER_NAME:
                    wrote(self._write(self._ns.set_meta, (name, meta)))
                continue
            try:
                if kind == "group":
                    wrote(self._write(self._ns.create_group, (name,)))
                else:
                    wrote(self._write(self._ns.register, (name, uri)))
            except NamingError as exc:
                if exc.message in ("name already exists", "group already exists"):
                    existed.append(name)
                    continue
                raise
            loaded.append(name)
            if meta is not None:
                wrote(self._write(self._ns.set_meta, (name, meta)))
        answer = {"loaded": loaded, "existed": existed}
        if not pending:
            return answer
        return _all_done(pending, answer)


def _load_entry(entry: Any, default_group: str) -> tuple[str, str, str | None, Any]:
    """``(absolute name, kind, uri, meta)`` of one dump entry, or ``NamingError``."""
    if not isinstance(entry, dict) or entry.get("kind") not in ("group", "object"):
        raise NamingError("not a dump entry", repr(entry)[:200])
    name = entry.get("name")
    if not isinstance(name, str):
        raise NamingError("not a dump entry", repr(entry)[:200])
    uri = entry.get("uri")
    if entry["kind"] == "object" and not isinstance(uri, str):
        raise NamingError("an object entry needs a URI", name)
    return names.absolute(name, default_group), entry["kind"], uri, entry.get("meta")


def _all_done(pending: list[Deferred], answer: dict[str, Any]) -> Deferred:
    """A :class:`Deferred` finished with *answer* once all *pending* are (or with the
    first failure)."""
    combined = Deferred()
    remaining = [len(pending)]

    def one_done(result: Any) -> None:
        if combined.done:
            return
        error = getattr(result, "error", None)
        if error is not None:
            combined.fail(error)
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            combined.resolve(answer)

    for later in pending:
        later.add_done_callback(one_done)
    return combined
