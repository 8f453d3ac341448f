"""Name server proxies: the blocking :class:`NameServerProxy` and :class:`AsyncNameServerProxy`.

Both offer the Pyro 3 method names, and the same ones: each is declared once in
:mod:`pairns.naming.methods`, and every call of either proxy goes through
:meth:`~pairns.naming.methods.Method.bind` there. As in Pyro 3, relative names are
expanded on the client against the client's default group (``PYRO_NS_DEFAULTGROUP``)
before they are sent, ``resolve`` returns a :class:`~pairns.uri.URI` and
``list``/``flatlist`` return lists of tuples. Every write carries a fresh request id
(:func:`new_request_id`).

Both fail over between the two nodes of a pair as :mod:`pairns.naming.failover`
decides: the proxies only do the IO (one RPC proxy per node, made with the same
identification, so it is kept across a switch).
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pairns import names
from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    ConnectionDeniedError,
    PairnsError,
)
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming import methods as m
from pairns.naming.failover import (
    DEFAULT_FAILOVER_TIMEOUT,
    Address,
    CallPlan,
    Failover,
    healthy_status,
)
from pairns.naming.methods import Call, GroupListing, Kind, Method, UriListing, new_request_id
from pairns.rpc.proxy import Proxy
from pairns.security.admin import admin_proof
from pairns.uri import DEFAULT_NS_PORT, URI

if TYPE_CHECKING:
    import ssl

    from pairns.rpc.aproxy import AsyncProxy

__all__ = [
    "DEFAULT_FAILOVER_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AsyncNameServerProxy",
    "GroupListing",
    "NameServerProxy",
    "UriListing",
    "new_request_id",
]

R = TypeVar("R")

#: Seconds a name server call may take before it fails with ``CallTimeoutError``.
DEFAULT_TIMEOUT = 10.0


def _default_group() -> str:
    return names.check_default_group(os.environ.get("PYRO_NS_DEFAULTGROUP", names.DEFAULT_GROUP))


def failover_timeout_setting(value: float | None = None) -> float:
    """The failover timeout: *value* if given, else ``PYRO_NS_FAILOVER_TIMEOUT`` from
    the environment, else :data:`DEFAULT_FAILOVER_TIMEOUT` (seconds, finite, above 0).

    Raises ``ValueError`` naming the setting and where a bad value came from.
    """
    source, shown = "the argument", repr(value)
    if value is None:
        text = os.environ.get("PYRO_NS_FAILOVER_TIMEOUT")
        if text is None:
            return DEFAULT_FAILOVER_TIMEOUT
        source, shown = "the environment", repr(text)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"PYRO_NS_FAILOVER_TIMEOUT must be a finite number of seconds above 0, "
            f"not {shown} (from {source})"
        )
    return float(value)


_NODE = Kind.NODE


def _address(twin: URI | str | tuple[str, int] | None) -> Address | None:
    if twin is None:
        return None
    if isinstance(twin, tuple):
        return Address(*twin)
    return Address(*URI.from_string(twin).address)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Common:
    """What both proxies share: construction, name handling and the failover state
    (no IO here)."""

    host: str
    port: int
    default_group: str
    _failover: Failover

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_NS_PORT,
        *,
        identification: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        default_group: str | None = None,
        failover_timeout: float | None = None,
        twin: URI | str | tuple[str, int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        admin_identification: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        #: TLS to both nodes of a pair with this context (None: plain TCP); kept across
        #: a failover, as the identification is.
        self.ssl_context = ssl_context
        self.default_group = (
            names.check_default_group(default_group) if default_group else _default_group()
        )
        self._identification = identification
        #: Proves the node's admin identification on ``shutdown``/``resync``/``load``.
        self._admin_key = (
            None if admin_identification is None else admin_identification.encode("utf-8")
        )
        self._timeout = timeout
        self._failover = Failover(
            Address(host, port), failover_timeout_setting(failover_timeout), timeout
        )
        self._connect_to(host, port, identification, timeout)
        if twin is not None:
            self._learnt_twin(_address(twin))

    #: The RPC proxies: the preferred node's, then (once known) the twin's.
    _proxies: list[Any]

    def _connect_to(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> None:
        """Make the RPC proxy for a node (no IO: it connects on the first call); the
        first one made is the preferred node's, the second the twin's. Both use
        :attr:`ssl_context`."""
        proxy = self._rpc_proxy(host, port, identification, timeout)
        if not hasattr(self, "_proxies"):
            self._proxies = [proxy]
        else:  # a new list, not changed in place: other callers may be indexing the old
            self._proxies = [self._proxies[0], proxy]

    def _rpc_proxy(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> Any:
        """The RPC proxy (blocking or async) for the name server at *host*:*port*."""
        raise NotImplementedError

    def _learnt_twin(self, twin: Address | None) -> None:
        self._failover.learnt_twin(twin)
        if twin is not None:
            self._connect_to(twin.host, twin.port, self._identification, self._timeout)

    @property
    def failover_timeout(self) -> float:
        """Seconds an attempt may take on one node before the call moves to the twin."""
        return self._failover.failover_timeout

    @property
    def nodes(self) -> tuple[URI, ...]:
        """The name server URIs of the nodes this proxy knows: the preferred node, then
        its twin once the preferred node said where that is."""
        tls = self.ssl_context is not None
        return tuple(
            URI.pyro(a.host, a.port, NAMESERVER_OBJECT_ID, ssl=tls) for a in self._failover.nodes
        )

    @property
    def serving(self) -> URI:
        """The URI of the node that serves this proxy's reads and writes now (the
        preferred node, or its twin after a failover)."""
        return self.nodes[self._failover.current]

    @classmethod
    def from_uri(cls, uri: URI | str, **kwargs: Any) -> Self:
        """A proxy for the name server at a ``PYRO://host:port/...`` URI; a
        ``PYROSSL://`` one without ``ssl_context=`` trusts the system's CAs."""
        parsed = URI.from_string(uri)
        if parsed.is_ssl and kwargs.get("ssl_context") is None:
            from pairns.tls import client_context

            kwargs["ssl_context"] = client_context()
        return cls(*parsed.address, **kwargs)

    def fullName(self, name: str) -> str:
        """The absolute form of *name*, expanded against this client's default group."""
        return names.absolute(name, self.default_group)

    @property
    def uri(self) -> URI:
        """The PYRO (PYROSSL) URI of the name server object this proxy talks to."""
        return URI.pyro(
            self.host, self.port, NAMESERVER_OBJECT_ID, ssl=self.ssl_context is not None
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"

    def _admin_kwargs(self, nonce: Any, method: str) -> dict[str, Any]:
        """The ``admin=`` argument proving the admin identification for one call."""
        assert self._admin_key is not None
        proof = admin_proof(self._admin_key, str(nonce), method)
        return {"admin": {"nonce": nonce, "proof": proof}}


class NameServerProxy(_Common):
    """A blocking proxy for a name server; safe to share between threads.

    In a pair it fails over to the twin (see :mod:`pairns.naming.failover`).
    """

    _proxies: list[Proxy]

    def _rpc_proxy(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> Proxy:
        return Proxy.for_address(
            host,
            port,
            NAMESERVER_OBJECT_ID,
            identification=identification,
            timeout=timeout,
            ssl_context=self.ssl_context,
        )

    @property
    def _proxy(self) -> Proxy:
        """The RPC proxy of the preferred node."""
        return self._proxies[0]

    def _call(self, method: Method[R], *args: Any) -> R:
        """Every name server call goes through here (see :meth:`Method.bind`)."""
        call = method.bind(args, self.default_group)
        failover = self._failover
        if method.kind is _NODE:
            if self._admin_key is not None and call.method in m.ADMIN:
                return method.reply(self._admin_call(call))
            return method.reply(self._on(self._proxies[0], call, self._timeout))
        if not failover.twin_known:
            self._learn_twin()
        if failover.twin is None:  # one node: as a plain proxy
            return method.reply(self._on(self._proxies[0], call, self._timeout))
        if failover.current and failover.probe_due(time.monotonic()):
            self._probe()
        start = time.monotonic()
        node = failover.current
        proxy = self._proxies[node]
        # The first attempt, on the current node (no plan made unless it fails), written
        # out: this is every call's path.
        try:
            if call.request_id is None:
                result = proxy.call_within(failover.first_timeout, call.method, *call.args)
            else:
                result = proxy.call_within(
                    failover.first_timeout, call.method, *call.args, request_id=call.request_id
                )
        except ConnectionClosedError as exc:
            first: ConnectionClosedError = exc
        else:
            return method.reply(result)
        plan = failover.plan(call.method, start, node)
        attempt = plan.next(start)
        assert attempt is not None
        plan.failed(attempt, _reason(first), slow=isinstance(first, CallTimeoutError))
        attempt = plan.next(time.monotonic())
        while attempt is not None:
            try:
                result = self._on(self._proxies[attempt.node], call, attempt.timeout)
            except CallTimeoutError as exc:
                plan.failed(attempt, _reason(exc), slow=True)
            except ConnectionClosedError as exc:
                plan.failed(attempt, _reason(exc), slow=False)
            except ConnectionDeniedError:
                raise
            except PairnsError:
                # The node answered (with an error): it serves, the next calls go to it
                # rather than to the node that just failed.
                failover.succeeded(attempt.node, time.monotonic())
                raise
            else:
                failover.succeeded(attempt.node, time.monotonic())
                return method.reply(result)
            attempt = plan.next(time.monotonic())
        raise plan.error()

    def _admin_call(self, call: Call) -> Any:
        """An admin call: a fresh challenge, then the call with its proof (one node)."""
        proxy = self._proxies[0]
        nonce = proxy.call_within(self._timeout, m.ADMIN_CHALLENGE.name)
        kwargs = self._admin_kwargs(nonce, call.method)
        return proxy.call_within(self._timeout, call.method, *call.args, **kwargs)

    @staticmethod
    def _on(proxy: Proxy, call: Call, timeout: float | None) -> Any:
        if call.request_id is None:  # no keyword argument: a read stays a cheap call
            return proxy.call_within(timeout, call.method, *call.args)
        return proxy.call_within(timeout, call.method, *call.args, request_id=call.request_id)

    def _learn_twin(self) -> None:
        """Ask the preferred node where its twin is (once it answers)."""
        failover = self._failover
        try:
            twin = m.TWIN.reply(
                self._proxies[0].call_within(failover.first_timeout, m.TWIN.name)
            )
        except (ConnectionClosedError, ConnectionDeniedError):
            return  # not known yet; the call goes to the preferred node alone
        if not failover.twin_known:  # another thread may have learnt it meanwhile
            self._learnt_twin(None if twin is None else Address(*twin.address))

    def _probe(self) -> None:
        """Between calls: is the preferred node healthy again?"""
        failover = self._failover
        status = None
        try:
            status = self._proxies[0].call_within(failover.probe_timeout, m.STATUS.name)
        except PairnsError:
            pass
        finally:  # also when interrupted: the next call may probe again
            failover.probed(healthy_status(status), time.monotonic())

    def close(self) -> None:
        """Close the connections (the next call opens new ones)."""
        for proxy in self._proxies:
            proxy.close()

    def __enter__(self) -> NameServerProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The methods below are the table in pairns.naming.methods, one line each; the
    # AsyncNameServerProxy's are the same with "async"/"await" (a test compares them).

    def ping(self) -> bool:
        """True when the name server answers."""
        return self._call(m.PING)

    def resolve(self, name: str) -> URI:
        """The URI registered under *name*."""
        return self._call(m.RESOLVE, name)

    def register(self, name: str, uri: URI | str) -> None:
        """Register *uri* under *name* (its parent group must exist)."""
        self._call(m.REGISTER, name, uri)

    def unregister(self, name: str) -> None:
        """Remove the object registered under *name*."""
        self._call(m.UNREGISTER, name)

    def createGroup(self, name: str) -> None:
        """Create the group *name* (its parent group must exist)."""
        self._call(m.CREATE_GROUP, name)

    def deleteGroup(self, name: str) -> None:
        """Delete the group *name* and everything under it."""
        self._call(m.DELETE_GROUP, name)

    def list(self, group: str | None = None) -> GroupListing:
        """The children of *group* (default: the default group) as ``(name, 0|1)``.

        ``0`` marks a group, ``1`` an object.
        """
        return self._call(m.LIST, group)

    def flatlist(self) -> UriListing:
        """Every object as ``(absolute name, URI)``."""
        return self._call(m.FLATLIST)

    def setMeta(self, name: str, meta: Any) -> None:
        """Set the user metadata (any JSON value) of a group or object."""
        self._call(m.SET_META, name, meta)

    def getMeta(self, name: str) -> Any:
        """The user metadata of a group or object (``None`` until set)."""
        return self._call(m.GET_META, name)

    def getSystemMeta(self, name: str) -> dict[str, Any]:
        """Creation/modification time and owning node of a group or object."""
        return self._call(m.GET_SYSTEM_META, name)

    def dump(self, after: str | None = None, limit: int = 10_000) -> dict[str, Any]:
        """One page of the namespace, in name order: ``{"entries": [...], "next": ...}``.

        Each entry is a dict with ``name``, ``kind`` (``"group"``/``"object"``), ``uri``
        and ``meta``. Pass ``next`` back as *after* for the following page; it is None
        after the last one. *limit* (1 to 100,000) caps the entries of one page.
        """
        return self._call(m.DUMP, after, limit)

    def status(self) -> dict[str, Any]:
        """The node's status (role, link, lag, entry count, digest, ...)."""
        return self._call(m.STATUS)

    def twin(self) -> URI | None:
        """Where this node's twin serves (its name server URI); None when unpaired."""
        return self._call(m.TWIN)

    def resync(self) -> None:
        """Force a full resync with the twin (``NamingError`` on an unpaired node)."""
        self._call(m.RESYNC)

    def shutdown(self) -> bool:
        """Ask the node to stop (refused on a node started with ``-k``)."""
        return self._call(m.SHUTDOWN)

    def load(self, entries: Any) -> dict[str, Any]:
        """Create what a page of a dump holds (``{"loaded": [...], "existed": [...]}``)."""
        return self._call(m.LOAD, entries)

    def adminChallenge(self) -> str:
        """A nonce for an admin call's proof (the proxy asks for it by itself)."""
        return self._call(m.ADMIN_CHALLENGE)


class AsyncNameServerProxy(_Common):
    """The Trio twin of :class:`NameServerProxy`; many tasks may call it at once.

    In a pair it fails over to the twin (see :mod:`pairns.naming.failover`).
    """

    _proxies: list[AsyncProxy]

    def _rpc_proxy(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> AsyncProxy:
        from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

        return AsyncProxy.for_address(
            host,
            port,
            NAMESERVER_OBJECT_ID,
            identification=identification,
            timeout=timeout,
            ssl_context=self.ssl_context,
        )

    @property
    def _proxy(self) -> AsyncProxy:
        """The RPC proxy of the preferred node."""
        return self._proxies[0]

    async def _call(self, method: Method[R], *args: Any) -> R:
        """Every name server call goes through here (see :meth:`Method.bind`)."""
        call = method.bind(args, self.default_group)
        failover = self._failover
        if method.kind is _NODE:
            if self._admin_key is not None and call.method in m.ADMIN:
                return method.reply(await self._admin_call(call))
            return method.reply(await self._on(self._proxies[0], call, self._timeout))
        if not failover.twin_known:
            await self._learn_twin()
        if failover.twin is None:  # one node: as a plain proxy
            return method.reply(await self._on(self._proxies[0], call, self._timeout))
        clock = _trio_clock()
        if failover.current and failover.probe_due(clock()):
            await self._probe(clock)
        start = clock()
        node = failover.current
        try:  # the first attempt, on the current node (no plan made unless it fails)
            return method.reply(
                await self._on(self._proxies[node], call, failover.first_timeout)
            )
        except ConnectionClosedError as exc:
            first: ConnectionClosedError = exc
        plan: CallPlan = failover.plan(call.method, start, node)
        attempt = plan.next(start)
        assert attempt is not None
        plan.failed(attempt, _reason(first), slow=isinstance(first, CallTimeoutError))
        attempt = plan.next(clock())
        while attempt is not None:
            try:
                result = await self._on(self._proxies[attempt.node], call, attempt.timeout)
            except CallTimeoutError as exc:
                plan.failed(attempt, _reason(exc), slow=True)
            except ConnectionClosedError as exc:
                plan.failed(attempt, _reason(exc), slow=False)
            except ConnectionDeniedError:
                raise
            except PairnsError:
                # The node answered (with an error): it serves, the next calls go to it.
                failover.succeeded(attempt.node, clock())
                raise
            else:
                failover.succeeded(attempt.node, clock())
                return method.reply(result)
            attempt = plan.next(clock())
        raise plan.error()

    async def _admin_call(self, call: Call) -> Any:
        """An admin call: a fresh challenge, then the call with its proof (one node)."""
        proxy = self._proxies[0]
        nonce = await proxy.call_within(self._timeout, m.ADMIN_CHALLENGE.name)
        kwargs = self._admin_kwargs(nonce, call.method)
        return await proxy.call_within(self._timeout, call.method, *call.args, **kwargs)

    @staticmethod
    async def _on(proxy: AsyncProxy, call: Call, timeout: float | None) -> Any:
        if call.request_id is None:  # no keyword argument: a read stays a cheap call
            return await proxy.call_within(timeout, call.method, *call.args)
        return await proxy.call_within(
            timeout, call.method, *call.args, request_id=call.request_id
        )

    async def _learn_twin(self) -> None:
        """Ask the preferred node where its twin is (once it answers)."""
        failover = self._failover
        try:
            twin = m.TWIN.reply(
                await self._proxies[0].call_within(failover.first_timeout, m.TWIN.name)
            )
        except (ConnectionClosedError, ConnectionDeniedError):
            return  # not known yet; the call goes to the preferred node alone
        if not failover.twin_known:  # another task may have learnt it meanwhile
            self._learnt_twin(None if twin is None else Address(*twin.address))

    async def _probe(self, clock: Any) -> None:
        """Between calls: is the preferred node healthy again?"""
        failover = self._failover
        status = None
        try:
            status = await self._proxies[0].call_within(failover.probe_timeout, m.STATUS.name)
        except PairnsError:
            pass
        finally:  # also when cancelled: the next call may probe again
            failover.probed(healthy_status(status), clock())

    async def aclose(self) -> None:
        """Close the connections (the next call opens new ones)."""
        for proxy in self._proxies:
            await proxy.aclose()

    async def __aenter__(self) -> AsyncNameServerProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        """True when the name server answers."""
        return await self._call(m.PING)

    async def resolve(self, name: str) -> URI:
        """The URI registered under *name*."""
        return await self._call(m.RESOLVE, name)

    async def register(self, name: str, uri: URI | str) -> None:
        """Register *uri* under *name* (its parent group must exist)."""
        await self._call(m.REGISTER, name, uri)

    async def unregister(self, name: str) -> None:
        """Remove the object registered under *name*."""
        await self._call(m.UNREGISTER, name)

    async def createGroup(self, name: str) -> None:
        """Create the group *name* (its parent group must exist)."""
        await self._call(m.CREATE_GROUP, name)

    async def deleteGroup(self, name: str) -> None:
        """Delete the group *name* and everything under it."""
        await self._call(m.DELETE_GROUP, name)

    async def list(self, group: str | None = None) -> GroupListing:
        """The children of *group* (default: the default group) as ``(name, 0|1)``.

        ``0`` marks a group, ``1`` an object.
        """
        return await self._call(m.LIST, group)

    async def flatlist(self) -> UriListing:
        """Every object as ``(absolute name, URI)``."""
        return await self._call(m.FLATLIST)

    async def setMeta(self, name: str, meta: Any) -> None:
        """Set the user metadata (any JSON value) of a group or object."""
        await self._call(m.SET_META, name, meta)

    async def getMeta(self, name: str) -> Any:
        """The user metadata of a group or object (``None`` until set)."""
        return await self._call(m.GET_META, name)

    async def getSystemMeta(self, name: str) -> dict[str, Any]:
        """Creation/modification time and owning node of a group or object."""
        return await self._call(m.GET_SYSTEM_META, name)

    async def dump(self, after: str | None = None, limit: int = 10_000) -> dict[str, Any]:
        """One page of the namespace, in name order: ``{"entries": [...], "next": ...}``.

        Each entry is a dict with ``name``, ``kind`` (``"group"``/``"object"``), ``uri``
        and ``meta``. Pass ``next`` back as *after* for the following page; it is None
        after the last one. *limit* (1 to 100,000) caps the entries of one page.
        """
        return await self._call(m.DUMP, after, limit)

    async def status(self) -> dict[str, Any]:
        """The node's status (role, link, lag, entry count, digest, ...)."""
        return await self._call(m.STATUS)

    async def twin(self) -> URI | None:
        """Where this node's twin serves (its name server URI); None when unpaired."""
        return await self._call(m.TWIN)

    async def resync(self) -> None:
        """Force a full resync with the twin (``NamingError`` on an unpaired node)."""
        await self._call(m.RESYNC)

    async def shutdown(self) -> bool:
        """Ask the node to stop (refused on a node started with ``-k``)."""
        return await self._call(m.SHUTDOWN)

    async def load(self, entries: Any) -> dict[str, Any]:
        """Create what a page of a dump holds (``{"loaded": [...], "existed": [...]}``)."""
        return await self._call(m.LOAD, entries)

    async def adminChallenge(self) -> str:
        """A nonce for an admin call's proof (the proxy asks for it by itself)."""
        return await self._call(m.ADMIN_CHALLENGE)


def _trio_clock() -> Any:
    import trio  # only the async proxy gets here: the blocking client stays free of Trio

    return trio.current_time
