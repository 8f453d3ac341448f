"""Finding a name server: :class:`NameServerLocator` and URI resolution helpers.

``getNS(host, port)`` goes straight to *host*. Without a host the locator searches, in
the order :func:`_locate` lists (no IO there; the blocking and the async locator take
the same steps): a UDP broadcast of ``location`` to both broadcast ports of a pair,
then the configured hosts, then the local host name and ``localhost`` on both name
server ports. A failure names every place tried.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import attrs

from pairns.discovery import search
from pairns.discovery.search import Broadcast, Direct, LocatorSettings
from pairns.errors import ConnectionDeniedError, NamingError, ProtocolError, URIError
from pairns.naming.proxy import DEFAULT_TIMEOUT, AsyncNameServerProxy, NameServerProxy
from pairns.rpc.dispatch import DAEMON_OBJECT_ID
from pairns.rpc.proxy import Proxy
from pairns.uri import DEFAULT_NS_PORT, URI

if TYPE_CHECKING:
    import ssl


def _where(host: str, port: int | None) -> tuple[str, int]:
    if port is None:
        text = os.environ.get("PYRO_NS_PORT")
        port = int(text) if text else DEFAULT_NS_PORT
    return host, port


def _locate(
    port: int | None, bcaddr: str | None, settings: LocatorSettings
) -> list[Broadcast | Direct]:
    """The steps of a search for a name server when no host is given (no IO)."""
    hostname = settings.local_hostname
    if hostname is None:
        hostname = socket.gethostname()
    return search.plan(settings, port=port, bcaddr=bcaddr, local_hostname=hostname)


def _not_found(tried: list[str]) -> NamingError:
    return NamingError("could not find a name server; tried " + "; ".join(tried))


def _failure(exc: BaseException, where: Direct | None = None) -> str:
    """What *exc* says, without repeating the address it happened at."""
    text = str(exc) or type(exc).__name__
    if where is not None:
        text = text.removeprefix(f"cannot connect to {where}: ")
    return text


#: What a broadcast step gave, or the error that stopped it.
_Found = search.Heard | OSError


def _answer(step: Broadcast, found: _Found, tried: list[str]) -> tuple[Direct, str, bool] | None:
    """Where a broadcast *step*'s first answer points, how a failure there is named and
    whether it is a TLS node (a ``PYROSSL`` answer); None (with the reason added to
    *tried*) when it failed or nobody answered."""
    if isinstance(found, OSError):
        tried.append(f"{step}: {_failure(found)}")
        return None
    unsent = "".join(f" (not sent to {where}: {why})" for where, why in found.unsent)
    if found.answer is None:
        tried.append(f"{step}: no answer{unsent}")
        return None
    uri = found.answer[0]
    return Direct(*uri.address), f"{step}: answer {uri}", uri.is_ssl


class NameServerLocator:
    """Finds a name server and returns a proxy for it (Pyro 3's locator).

    *settings* (default: read from the ``PYRO_*`` environment at each search) say
    where a search without a host looks. *ssl_context* makes the proxies speak TLS
    (to a node with a certificate, whose URI is ``PYROSSL://``); a search that finds a
    ``PYROSSL`` node without one uses the system's trust store.
    """

    def __init__(
        self,
        identification: str | None = None,
        *,
        settings: LocatorSettings | None = None,
        ssl_context: ssl.SSLContext | None = None,
        admin_identification: str | None = None,
    ) -> None:
        """*admin_identification* is given to the proxies it makes (they prove it on
        ``shutdown``, ``resync`` and ``load``)."""
        self.identification = identification
        self.settings = settings
        self.ssl_context = ssl_context
        self.admin_identification = admin_identification

    def _options(self, timeout: float | None, tls: bool = False) -> dict[str, Any]:
        """The keyword arguments of the proxy that :meth:`getNS` and :meth:`async_getNS`
        make (*tls*: the node found is a TLS one)."""
        ssl_context = self.ssl_context
        if ssl_context is None and tls:
            from pairns.tls import client_context

            ssl_context = client_context()
        return {
            "identification": self.identification,
            "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
            "ssl_context": ssl_context,
            "admin_identification": self.admin_identification,
        }

    def _steps(self, port: int | None, bcaddr: str | None) -> list[Broadcast | Direct]:
        return _locate(port, bcaddr, self.settings or LocatorSettings.from_env())

    def _direct(
        self, host: str, port: int, timeout: float | None, tls: bool = False
    ) -> NameServerProxy:
        proxy = NameServerProxy(host, port, **self._options(timeout, tls))
        try:
            proxy.ping()
        except BaseException:
            proxy.close()
            raise
        return proxy

    def getNS(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        timeout: float | None = None,
        bcaddr: str | None = None,
    ) -> NameServerProxy:
        """A blocking proxy for a name server, checked with a ping.

        With *host*: the name server at *host*:*port* (port default ``PYRO_NS_PORT``);
        raises ``ConnectionClosedError`` when nothing answers there. Without: search
        (module docs); *port* is then the one port asked and *bcaddr* replaces the
        broadcast addresses. Raises :class:`NamingError` naming every place tried when
        the search finds nothing, and ``ConnectionDeniedError`` at once when a name
        server refuses the identification.
        """
        if host is not None:
            return self._direct(*_where(host, port), timeout)
        tried: list[str] = []
        for step in self._steps(port, bcaddr):
            if isinstance(step, Broadcast):
                try:
                    found: _Found = search.broadcast(step)
                except OSError as exc:
                    found = exc
                answer = _answer(step, found, tried)
                if answer is None:
                    continue
                target, label, tls = answer
            else:
                target, label, tls = step, str(step), False
            try:
                return self._direct(target.host, target.port, timeout, tls)
            except ConnectionDeniedError:
                raise
            except (ProtocolError, OSError) as exc:
                tried.append(f"{label}: {_failure(exc, target)}")
        raise _not_found(tried)

    async def _async_direct(
        self, host: str, port: int, timeout: float | None, tls: bool = False
    ) -> AsyncNameServerProxy:
        proxy = AsyncNameServerProxy(host, port, **self._options(timeout, tls))
        try:
            await proxy.ping()
        except BaseException:
            await proxy.aclose()
            raise
        return proxy

    async def async_getNS(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        timeout: float | None = None,
        bcaddr: str | None = None,
    ) -> AsyncNameServerProxy:
        """The async counterpart of :meth:`getNS` (the same steps, on Trio)."""
        if host is not None:
            return await self._async_direct(*_where(host, port), timeout)
        tried: list[str] = []
        for step in self._steps(port, bcaddr):
            if isinstance(step, Broadcast):
                try:
                    found: _Found = await search.async_broadcast(step)
                except OSError as exc:
                    found = exc
                answer = _answer(step, found, tried)
                if answer is None:
                    continue
                target, label, tls = answer
            else:
                target, label, tls = step, str(step), False
            try:
                return await self._async_direct(target.host, target.port, timeout, tls)
            except ConnectionDeniedError:
                raise
            except (ProtocolError, OSError) as exc:
                tried.append(f"{label}: {_failure(exc, target)}")
        raise _not_found(tried)


@attrs.frozen
class _AskDaemon:
    """A ``PYROLOC`` (``PYROLOCSSL``: *tls*) URI: ask the daemon at *host*:*port* for
    the object connected as *name*."""

    host: str
    port: int
    name: str
    tls: bool = False


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
        return _AskDaemon(*parsed.address, parsed.path, parsed.is_ssl)
    if parsed.protocol == "PYRONAME":
        return _AskNameServer(parsed.host, parsed.port, parsed.path)
    raise URIError(f"cannot resolve a {parsed.protocol} URI")


def _daemon_context(plan: _AskDaemon, ssl_context: ssl.SSLContext | None) -> Any:
    """The TLS context to ask a daemon with: none for ``PYROLOC``; for ``PYROLOCSSL``
    *ssl_context*, else the system's trust store."""
    if not plan.tls:
        return None
    if ssl_context is not None:
        return ssl_context
    from pairns.tls import client_context

    return client_context()


def resolve_uri(
    uri: URI | str, *, identification: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> URI:
    """Turn any pairns URI into a ``PYRO``/``PYROSSL`` URI.

    ``PYROLOC://host:port/name`` asks the daemon at host:port for the object connected
    under *name* (``PYROLOCSSL://``: over TLS); ``PYRONAME://[host[:port]/]name`` asks
    the name server (at the given place, or located as :meth:`NameServerLocator.getNS`
    does; over TLS with *ssl_context*). ``PYRO`` URIs come back as they are.
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
            ssl_context=_daemon_context(plan, ssl_context),
        ) as daemon:
            return URI.from_string(daemon.call("resolve", plan.name))
    locator = NameServerLocator(identification, ssl_context=ssl_context)
    with locator.getNS(plan.host, plan.port) as ns:
        return ns.resolve(plan.name)


async def async_resolve_uri(
    uri: URI | str, *, identification: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> URI:
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
            ssl_context=_daemon_context(plan, ssl_context),
        )
        try:
            return URI.from_string(await daemon.call("resolve", plan.name))
        finally:
            await daemon.aclose()
    locator = NameServerLocator(identification, ssl_context=ssl_context)
    ns = await locator.async_getNS(plan.host, plan.port)
    try:
        return await ns.resolve(plan.name)
    finally:
        await ns.aclose()


def getProxyForURI(
    uri: URI | str,
    *,
    identification: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> Proxy:
    """A blocking proxy for the object any pairns URI denotes (Pyro 3's helper).

    *ssl_context* is used wherever TLS is spoken: a ``PYROSSL``/``PYROLOCSSL`` URI, the
    name server a ``PYRONAME`` URI is resolved with, and the object when the name
    server gives a ``PYROSSL`` URI (an object with a ``PYRO`` URI is reached in plain).
    """
    found = resolve_uri(uri, identification=identification, ssl_context=ssl_context)
    return Proxy(
        found,
        identification=identification,
        ssl_context=ssl_context if found.is_ssl else None,
        **kwargs,
    )
