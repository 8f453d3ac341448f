"""pairns: a replicated, paired name server for Python programs, built on Trio."""

from pairns.config import Config, ConfigError, load_config
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
    URIError,
)
from pairns.naming.locator import (
    NameServerLocator,
    async_resolve_uri,
    getProxyForURI,
    resolve_uri,
)
from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy
from pairns.node import NameServerStarter, Node, open_node, run
from pairns.rpc import AsyncProxy, Daemon, DaemonLimits, Deferred, Proxy, current_request_id
from pairns.uri import URI

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
    "NameServerLocator",
    "NameServerProxy",
    "NameServerStarter",
    "Node",
    "Proxy",
    "async_resolve_uri",
    "current_request_id",
    "getProxyForURI",
    "load_config",
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
    "URIError",
]
