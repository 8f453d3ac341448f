"""Proxies for user objects named by any pairns URI, for async programs.

The blocking :func:`pairns.getProxyForURI` lives beside the locator; this is its Trio
counterpart (kept apart so that a blocking client never imports Trio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pairns.naming.locator import async_resolve_uri
from pairns.uri import URI

if TYPE_CHECKING:
    import ssl

    from pairns.rpc.aproxy import AsyncProxy

__all__ = ["async_getProxyForURI"]


async def async_getProxyForURI(
    uri: URI | str,
    *,
    identification: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> AsyncProxy:
    """An :class:`~pairns.AsyncProxy` for the object a ``PYRO://``, ``PYRONAME://`` or
    ``PYROLOC://`` URI denotes: ``PYRONAME`` asks the name server, ``PYROLOC`` the
    daemon at the URI's address. ``await proxy.getQuote()`` calls the remote method.
    *kwargs* go to the proxy (``timeout``, ``max_frame_size``, ``checksums``);
    *ssl_context* as for :func:`pairns.getProxyForURI`."""
    from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

    found = await async_resolve_uri(uri, identification=identification, ssl_context=ssl_context)
    return AsyncProxy(
        found,
        identification=identification,
        ssl_context=ssl_context if found.is_ssl else None,
        **kwargs,
    )
