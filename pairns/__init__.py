"""pairns: a replicated, paired name server for Python programs, built on Trio.

The public names below are imported on first use (``from pairns import Daemon`` works
as usual): a blocking client or ``pairns-ctl`` never pays for Trio, the server, the
storage or the replication code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pairns._lazy import exports
from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    ConnectionDeniedError,
    LocalProtocolError,
    NamingError,
    PairnsError,
    ProtocolError,
    PyroError,
    RemoteCallError,
    RemoteProtocolError,
    StorageError,
    TLSError,
    URIError,
)

if TYPE_CHECKING:
    from pairns.config import Config, ConfigError, load_config
    from pairns.discovery.search import LocatorSettings
    from pairns.naming.locator import (
        NameServerLocator,
        async_resolve_uri,
        getProxyForURI,
        resolve_uri,
    )
    from pairns.naming.objects import async_getProxyForURI
    from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy
    from pairns.node import NameServerStarter, Node, open_node, run
    from pairns.rpc.aproxy import AsyncProxy
    from pairns.rpc.context import current_request_id
    from pairns.rpc.daemon import Daemon, DaemonLimits
    from pairns.rpc.deferred import Deferred
    from pairns.rpc.dispatch import oneway
    from pairns.rpc.proxy import Proxy
    from pairns.uri import URI

#: Public name -> the module that defines it (errors are imported above: they are cheap).
_HOMES = {
    "Config": "pairns.config",
    "ConfigError": "pairns.config",
    "load_config": "pairns.config",
    "LocatorSettings": "pairns.discovery.search",
    "NameServerLocator": "pairns.naming.locator",
    "async_resolve_uri": "pairns.naming.locator",
    "getProxyForURI": "pairns.naming.locator",
    "resolve_uri": "pairns.naming.locator",
    "async_getProxyForURI": "pairns.naming.objects",
    "AsyncNameServerProxy": "pairns.naming.proxy",
    "NameServerProxy": "pairns.naming.proxy",
    "NameServerStarter": "pairns.node",
    "Node": "pairns.node",
    "open_node": "pairns.node",
    "run": "pairns.node",
    "AsyncProxy": "pairns.rpc.aproxy",
    "current_request_id": "pairns.rpc.context",
    "Daemon": "pairns.rpc.daemon",
    "DaemonLimits": "pairns.rpc.daemon",
    "Deferred": "pairns.rpc.deferred",
    "oneway": "pairns.rpc.dispatch",
    "Proxy": "pairns.rpc.proxy",
    "URI": "pairns.uri",
}

__version__ = "0.1.0"

__all__ = [
    "URI",
    "AsyncNameServerProxy",
    "AsyncProxy",
    "Config",
    "ConfigError",
    "Daemon",
    "DaemonLimits",
    "Deferred",
    "LocatorSettings",
    "NameServerLocator",
    "NameServerProxy",
    "NameServerStarter",
    "Node",
    "Proxy",
    "async_getProxyForURI",
    "async_resolve_uri",
    "current_request_id",
    "getProxyForURI",
    "load_config",
    "oneway",
    "open_node",
    "resolve_uri",
    "run",
    "CallTimeoutError",
    "ConnectionClosedError",
    "ConnectionDeniedError",
    "LocalProtocolError",
    "NamingError",
    "PairnsError",
    "ProtocolError",
    "PyroError",
    "RemoteCallError",
    "RemoteProtocolError",
    "StorageError",
    "TLSError",
    "URIError",
]

__getattr__, __dir__ = exports(globals(), _HOMES)
