"""Name server proxies: the blocking :class:`NameServerProxy` and :class:`AsyncNameServerProxy`.

Both offer the Pyro 3 method names, and the same ones: each is declared once in
:mod:`pairns.naming.methods`, and every call of either proxy goes through
:meth:`~pairns.naming.methods.Method.bind` there. As in Pyro 3, relative names are
expanded on the client against the client's default group (``PYRO_NS_DEFAULTGROUP``)
before they are sent, ``resolve`` returns a :class:`~pairns.uri.URI` and
``list``/``flatlist`` return lists of tuples. Every write carries a fresh request id
(:func:`new_request_id`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pairns import names
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming import methods as m
from pairns.naming.methods import GroupListing, Method, UriListing, new_request_id
from pairns.rpc.proxy import Proxy
from pairns.uri import DEFAULT_NS_PORT, URI

if TYPE_CHECKING:
    from pairns.rpc.aproxy import AsyncProxy

__all__ = [
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


class _Common:
    """What both proxies share: construction and name handling (no IO here)."""

    host: str
    port: int
    default_group: str

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_NS_PORT,
        *,
        identification: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        default_group: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.default_group = (
            names.check_default_group(default_group) if default_group else _default_group()
        )
        self._connect_to(host, port, identification, timeout)

    def _connect_to(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> None:
        """Make the RPC proxy (no IO: it connects on the first call)."""
        raise NotImplementedError

    @classmethod
    def from_uri(cls, uri: URI | str, **kwargs: Any) -> Self:
        """A proxy for the name server at a ``PYRO://host:port/...`` URI."""
        return cls(*URI.from_string(uri).address, **kwargs)

    def fullName(self, name: str) -> str:
        """The absolute form of *name*, expanded against this client's default group."""
        return names.absolute(name, self.default_group)

    @property
    def uri(self) -> URI:
        """The PYRO URI of the name server object this proxy talks to."""
        return URI.pyro(self.host, self.port, NAMESERVER_OBJECT_ID)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"


class NameServerProxy(_Common):
    """A blocking proxy for a name server; safe to share between threads."""

    _proxy: Proxy

    def _connect_to(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> None:
        self._proxy = Proxy.for_address(
            host, port, NAMESERVER_OBJECT_ID, identification=identification, timeout=timeout
        )

    def _call(self, method: Method[R], *args: Any) -> R:
        """Every name server call goes through here (see :meth:`Method.bind`)."""
        call = method.bind(args, self.default_group)
        if call.request_id is None:  # no keyword argument: a read stays a cheap call
            return method.reply(self._proxy.call(call.method, *call.args))
        return method.reply(self._proxy.call(call.method, *call.args, request_id=call.request_id))

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        self._proxy.close()

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


class AsyncNameServerProxy(_Common):
    """The Trio twin of :class:`NameServerProxy`; many tasks may call it at once."""

    _proxy: AsyncProxy

    def _connect_to(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> None:
        from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

        self._proxy = AsyncProxy.for_address(
            host, port, NAMESERVER_OBJECT_ID, identification=identification, timeout=timeout
        )

    async def _call(self, method: Method[R], *args: Any) -> R:
        """Every name server call goes through here (see :meth:`Method.bind`)."""
        call = method.bind(args, self.default_group)
        if call.request_id is None:  # no keyword argument: a read stays a cheap call
            return method.reply(await self._proxy.call(call.method, *call.args))
        return method.reply(
            await self._proxy.call(call.method, *call.args, request_id=call.request_id)
        )

    async def aclose(self) -> None:
        """Close the connection (the next call opens a new one)."""
        await self._proxy.aclose()

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
