"""Name server proxies: the blocking :class:`NameServerProxy` and :class:`AsyncNameServerProxy`.

Both offer the Pyro 3 method names. As in Pyro 3, relative names are expanded on the
client against the client's default group (``PYRO_NS_DEFAULTGROUP``) before they are
sent, ``resolve`` returns a :class:`~pairns.uri.URI` and ``list``/``flatlist`` return
tuples. Every write carries a fresh request id (:func:`new_request_id`).
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any, Self

from pairns import names
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.rpc.proxy import Proxy
from pairns.uri import DEFAULT_NS_PORT, URI

if TYPE_CHECKING:
    from pairns.rpc.aproxy import AsyncProxy

#: ``list()``/``flatlist()`` results (the method named ``list`` shadows the builtin).
GroupListing = list[tuple[str, int]]
UriListing = list[tuple[str, URI]]

#: Seconds a name server call may take before it fails with ``CallTimeoutError``.
DEFAULT_TIMEOUT = 10.0


def _default_group() -> str:
    return names.check_default_group(os.environ.get("PYRO_NS_DEFAULTGROUP", names.DEFAULT_GROUP))


def _uri_str(uri: URI | str) -> str:
    return str(uri)


def new_request_id() -> str:
    """A fresh client request id for one write (sent again, unchanged, on a retry).

    The name server remembers which request ids it (or its twin) applied, so a write
    retried with the same id is answered with its first result, not applied twice.
    """
    return uuid.uuid4().hex


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

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        self._proxy.close()

    def __enter__(self) -> NameServerProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the name server answers."""
        return bool(self._proxy.call("ping"))

    def resolve(self, name: str) -> URI:
        """The URI registered under *name*."""
        return URI.from_string(self._proxy.call("resolve", self.fullName(name)))

    def register(self, name: str, uri: URI | str) -> None:
        """Register *uri* under *name*."""
        self._proxy.call(
            "register", self.fullName(name), _uri_str(uri), request_id=new_request_id()
        )

    def unregister(self, name: str) -> None:
        """Remove the object registered under *name*."""
        self._proxy.call("unregister", self.fullName(name), request_id=new_request_id())

    def createGroup(self, name: str) -> None:
        """Create a group."""
        self._proxy.call("createGroup", self.fullName(name), request_id=new_request_id())

    def deleteGroup(self, name: str) -> None:
        """Delete a group and everything under it."""
        self._proxy.call("deleteGroup", self.fullName(name), request_id=new_request_id())

    def list(self, group: str | None = None) -> GroupListing:
        """The children of *group* (default: the default group) as ``(name, 0|1)``."""
        result = self._proxy.call("list", self.fullName(group if group is not None else ""))
        return [(str(n), int(k)) for n, k in result]

    def flatlist(self) -> UriListing:
        """Every object as ``(absolute name, URI)``."""
        return [(str(n), URI.from_string(u)) for n, u in self._proxy.call("flatlist")]

    def setMeta(self, name: str, meta: Any) -> None:
        """Set the user metadata (any JSON value) of a group or object."""
        self._proxy.call("setMeta", self.fullName(name), meta, request_id=new_request_id())

    def getMeta(self, name: str) -> Any:
        """The user metadata of a group or object."""
        return self._proxy.call("getMeta", self.fullName(name))

    def getSystemMeta(self, name: str) -> dict[str, Any]:
        """Creation/modification time and owning node of a group or object."""
        result: dict[str, Any] = self._proxy.call("getSystemMeta", self.fullName(name))
        return result

    def resync(self) -> None:
        """Force a full resync with the twin (``NamingError`` on an unpaired node)."""
        self._proxy.call("resync")

    def status(self) -> dict[str, Any]:
        """The node's status (role, entry count, digest, ...)."""
        result: dict[str, Any] = self._proxy.call("status")
        return result

    def dump(self, after: str | None = None, limit: int = 10_000) -> dict[str, Any]:
        """One page of the namespace; see :meth:`pairns.naming.service.NameServer.dump`."""
        result: dict[str, Any] = self._proxy.call("dump", after, limit)
        return result

    def shutdown(self) -> bool:
        """Ask the node to stop (refused on a node started with ``-k``)."""
        return bool(self._proxy.call("shutdown"))


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

    async def aclose(self) -> None:
        """Close the connection (the next call opens a new one)."""
        await self._proxy.aclose()

    async def __aenter__(self) -> AsyncNameServerProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        """True when the name server answers."""
        return bool(await self._proxy.call("ping"))

    async def resolve(self, name: str) -> URI:
        """The URI registered under *name*."""
        return URI.from_string(await self._proxy.call("resolve", self.fullName(name)))

    async def register(self, name: str, uri: URI | str) -> None:
        """Register *uri* under *name*."""
        await self._proxy.call(
            "register", self.fullName(name), _uri_str(uri), request_id=new_request_id()
        )

    async def unregister(self, name: str) -> None:
        """Remove the object registered under *name*."""
        await self._proxy.call("unregister", self.fullName(name), request_id=new_request_id())

    async def createGroup(self, name: str) -> None:
        """Create a group."""
        await self._proxy.call("createGroup", self.fullName(name), request_id=new_request_id())

    async def deleteGroup(self, name: str) -> None:
        """Delete a group and everything under it."""
        await self._proxy.call("deleteGroup", self.fullName(name), request_id=new_request_id())

    async def list(self, group: str | None = None) -> GroupListing:
        """The children of *group* (default: the default group) as ``(name, 0|1)``."""
        result = await self._proxy.call("list", self.fullName(group if group is not None else ""))
        return [(str(n), int(k)) for n, k in result]

    async def flatlist(self) -> UriListing:
        """Every object as ``(absolute name, URI)``."""
        return [(str(n), URI.from_string(u)) for n, u in await self._proxy.call("flatlist")]

    async def setMeta(self, name: str, meta: Any) -> None:
        """Set the user metadata (any JSON value) of a group or object."""
        await self._proxy.call("setMeta", self.fullName(name), meta, request_id=new_request_id())

    async def getMeta(self, name: str) -> Any:
        """The user metadata of a group or object."""
        return await self._proxy.call("getMeta", self.fullName(name))

    async def getSystemMeta(self, name: str) -> dict[str, Any]:
        """Creation/modification time and owning node of a group or object."""
        result: dict[str, Any] = await self._proxy.call("getSystemMeta", self.fullName(name))
        return result

    async def resync(self) -> None:
        """Force a full resync with the twin (``NamingError`` on an unpaired node)."""
        await self._proxy.call("resync")

    async def status(self) -> dict[str, Any]:
        """The node's status (role, entry count, digest, ...)."""
        result: dict[str, Any] = await self._proxy.call("status")
        return result

    async def shutdown(self) -> bool:
        """Ask the node to stop (refused on a node started with ``-k``)."""
        return bool(await self._proxy.call("shutdown"))
