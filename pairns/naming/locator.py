"""Finding a name server: :class:`NameServerLocator` and URI resolution helpers.

This layer does direct host lookup (``getNS(host=..., port=...)``, or
``PYRO_NS_HOSTNAME``/``PYRO_NS_PORT`` from the environment, or ``localhost``). UDP
broadcast discovery is not part of it yet.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from pairns.errors import URIError
from pairns.naming.proxy import DEFAULT_TIMEOUT, AsyncNameServerProxy, NameServerProxy
from pairns.rpc.dispatch import DAEMON_OBJECT_ID
from pairns.rpc.proxy import Proxy
from pairns.uri import DEFAULT_NS_PORT, URI


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

    def _options(self, timeout: float | None) -> dict[str, Any]:
        """The keyword arguments of the proxy that :meth:`getNS` and :meth:`async_getNS` make."""
        return {
            "identification": self.identification,
            "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
        }

    def getNS(
        self, host: str | None = None, port: int | None = None, *, timeout: float | None = None
    ) -> NameServerProxy:
        """A blocking proxy for the name server at *host*:*port*, checked with a ping.

        Without *host* or *port*, ``PYRO_NS_HOSTNAME`` and ``PYRO_NS_PORT`` say where
        (else ``localhost`` and the default port). Raises ``ConnectionClosedError`` when
        nothing answers there and ``ConnectionDeniedError`` when the identification is
        refused.
        """
        proxy = NameServerProxy(*_where(host, port), **self._options(timeout))
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
        proxy = AsyncNameServerProxy(*_where(host, port), **self._options(timeout))
        try:
            await proxy.ping()
        except BaseException:
            await proxy.aclose()
            raise
        return proxy


@attrs.frozen
class _AskDaemon:
    """A ``PYROLOC`` URI: ask the daemon at *host*:*port* for the object connected as *name*."""

    host: str
    port: int
    name: str


@attrs.frozen
class _AskNameServer:
    """A ``PYRONAME`` URI: ask the name server for *name*; without *host* or *port* it is
    located as :meth:`NameServerLocator.getNS` does."""

    host: str | None
    port: int | None
    name: str


def _plan(uri: URI | str) -> URI | _AskDaemon | _AskNameServer:
    """The answer itself (a ``PYRO`` URI), or the one lookup that finds it (no IO)."""
    parsed = URI.from_string(uri)
    if parsed.protocol in ("PYRO", "PYROSSL"):
        return parsed
    if parsed.protocol in ("PYROLOC", "PYROLOCSSL"):
        return _AskDaemon(*parsed.address, parsed.path)
    if parsed.protocol == "PYRONAME":
        return _AskNameServer(parsed.host, parsed.port, parsed.path)
    raise URIError(f"cannot resolve a {parsed.protocol} URI")


def resolve_uri(uri: URI | str, *, identification: str | None = None) -> URI:
    """Turn any pairns URI into a ``PYRO``/``PYROSSL`` URI.

    ``PYROLOC://host:port/name`` asks the daemon at host:port for the object connected
    under *name*; ``PYRONAME://[host[:port]/]name`` asks the name server (at the given
    place, or located as :meth:`NameServerLocator.getNS` does). ``PYRO`` URIs come back
    as they are.
    """
    plan = _plan(uri)
    if isinstance(plan, URI):
        return plan
    if isinstance(plan, _AskDaemon):
        with Proxy.for_address(
            plan.host,
            plan.port,
            DAEMON_OBJECT_ID,
            identification=identification,
            timeout=DEFAULT_TIMEOUT,
        ) as daemon:
            return URI.from_string(daemon.call("resolve", plan.name))
    with NameServerLocator(identification).getNS(plan.host, plan.port) as ns:
        return ns.resolve(plan.name)


async def async_resolve_uri(uri: URI | str, *, identification: str | None = None) -> URI:
    """The async counterpart of :func:`resolve_uri`."""
    plan = _plan(uri)
    if isinstance(plan, URI):
        return plan
    if isinstance(plan, _AskDaemon):
        from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

        daemon = AsyncProxy.for_address(
            plan.host,
            plan.port,
            DAEMON_OBJECT_ID,
            identification=identification,
            timeout=DEFAULT_TIMEOUT,
        )
        try:
            return URI.from_string(await daemon.call("resolve", plan.name))
        finally:
            await daemon.aclose()
    ns = await NameServerLocator(identification).async_getNS(plan.host, plan.port)
    try:
        return await ns.resolve(plan.name)
    finally:
        await ns.aclose()


def getProxyForURI(uri: URI | str, *, identification: str | None = None, **kwargs: Any) -> Proxy:
    """A blocking proxy for the object any pairns URI denotes (Pyro 3's helper)."""
    found = resolve_uri(uri, identification=identification)
    host, port = found.address
    return Proxy.for_address(host, port, found.path, identification=identification, **kwargs)
