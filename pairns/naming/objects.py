"""Proxies for user objects named by any pairns URI, for async programs.

The blocking :func:`pairns.getProxyForURI` lives beside the locator; this is its Trio
counterpart (kept apart so that a blocking client never imports Trio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pairns.naming.locator import async_resolve_uri
from pairns.uri import URI

if TYPE_CHECKING:
    from pairns.rpc.aproxy import AsyncProxy

__all__ = ["async_getProxyForURI"]


async def async_getProxyForURI(
    uri: URI | str, *, identification: str | None = None, **kwargs: Any
) -> AsyncProxy:
    """An :class:`~pairns.AsyncProxy` for the object a ``PYRO://``, ``PYRONAME://`` or
    ``PYROLOC://`` URI denotes: ``PYRONAME`` asks the name server, ``PYROLOC`` the
    daemon at the URI's address. ``await proxy.getQuote()`` calls the remote method.
    *kwargs* go to the proxy (``timeout``, ``max_frame_size``, ``checksums``)."""
    from pairns.rpc.aproxy import AsyncProxy  # imports Trio: only when used

    found = await async_resolve_uri(uri, identification=identification)
    host, port = found.address
    return AsyncProxy.for_address(host, port, found.path, identification=identification, **kwargs)
