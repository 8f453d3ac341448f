"""Finding a name server: :class:`NameServerLocator` and URI resolution helpers.

This layer does direct host lookup (``getNS(host=..., port=...)``, or
``PYRO_NS_HOSTNAME``/``PYRO_NS_PORT`` from the environment, or ``localhost``). UDP
broadcast discovery is not part of it yet.
"""

from __future__ import annotations

import os
from typing import Any

from pairns.errors import URIError
from pairns.naming.proxy import DEFAULT_TIMEOUT, AsyncNameServerProxy, NameServerProxy
from pairns.rpc.proxy import Proxy
from pairns.uri import DEFAULT_NS_PORT, URI

#: The daemon's built-in object that answers PYROLOC lookups.
DAEMON_OBJECT_ID = "__daemon__"


def _where(host: str | None, port: int | None) -> tuple[str, int]:
    if host is None:
        host = os.environ.get("PYRO_NS_HOSTNAME") or "localhost"
    if port is None:
        text = os.environ.get("PYRO_NS_PORT")
        port = int(text) if text else DEFAULT_NS_PORT
    return host, port


class NameServerLocator:
    """Finds a name server and returns a proxy for it (Pyro 3's locator)."""

    def __init__(self, identification: str | None = None) -> None:
        self.identification = identification

    def getNS(
        self, host: str | None = None, port: int | None = None, *, timeout: float | None = None
    ) -> NameServerProxy:
        """A blocking proxy for the name server at *host*:*port*, checked with a ping.

        Raises ``ConnectionClosedError`` when nothing answers there and
        ``ConnectionDeniedError`` when the identification is refused.
        """
        host, port = _where(host, port)
        proxy = NameServerProxy(
            host,
            port,
            identification=self.identification,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        )
        try:
            proxy.ping()
        except BaseException:
            proxy.close()
            raise
        return proxy

    async def async_getNS(
        self, host: str | None = None, port: int | None = None, *, timeout: float | None = None
    ) -> AsyncNameServerProxy:
        """The async counterpart of :meth:`getNS`."""
        host, port = _where(host, port)
        proxy = AsyncNameServerProxy(
            host,
            port,
            identification=self.identification,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        )
        try:
            await proxy.ping()
        except BaseException:
            await proxy.aclose()
            raise
        return proxy


def resolve_uri(uri: URI | str, *, identification: str | None = None) -> URI:
    """Turn any pairns URI into a ``PYRO``/``PYROSSL`` URI.

    ``PYROLOC://host:port/name`` asks the daemon at host:port for the object connected
    under *name*; ``PYRONAME://[host[:port]/]name`` asks the name server (at the given
    place, or located as :meth:`NameServerLocator.getNS` does). ``PYRO`` URIs come back
    as they are.
    """
    parsed = URI.from_string(uri)
    if parsed.protocol in ("PYRO", "PYROSSL"):
        return parsed
    if parsed.protocol in ("PYROLOC", "PYROLOCSSL"):
        host, port = parsed.address
        with Proxy.for_address(
            host, port, DAEMON_OBJECT_ID, identification=identification, timeout=DEFAULT_TIMEOUT
        ) as daemon:
            found = URI.from_string(daemon.call("resolve", parsed.path))
        return found
    if parsed.protocol == "PYRONAME":
        with NameServerLocator(identification).getNS(parsed.host, parsed.port) as ns:
            return ns.resolve(parsed.path)
    raise URIError(f"cannot resolve a {parsed.protocol} URI")


async def async_resolve_uri(uri: URI | str, *, identification: str | None = None) -> URI:
    """The async counterpart of :func:`resolve_uri`."""
    parsed = URI.from_string(uri)
    if parsed.protocol in ("PYRO", "PYROSSL"):
        return parsed
    if parsed.protocol in ("PYROLOC", "PYROLOCSSL"):
        host, port = parsed.address
        from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

        daemon = AsyncProxy.for_address(
            host, port, DAEMON_OBJECT_ID, identification=identification, timeout=DEFAULT_TIMEOUT
        )
        try:
            return URI.from_string(await daemon.call("resolve", parsed.path))
        finally:
            await daemon.aclose()
    if parsed.protocol == "PYRONAME":
        ns = await NameServerLocator(identification).async_getNS(parsed.host, parsed.port)
        try:
            return await ns.resolve(parsed.path)
        finally:
            await ns.aclose()
    raise URIError(f"cannot resolve a {parsed.protocol} URI")


def getProxyForURI(uri: URI | str, *, identification: str | None = None, **kwargs: Any) -> Proxy:
    """A blocking proxy for the object any pairns URI denotes (Pyro 3's helper)."""
    found = resolve_uri(uri, identification=identification)
    host, port = found.address
    return Proxy.for_address(host, port, found.path, identification=identification, **kwargs)
