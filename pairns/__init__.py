"""pairns: a replicated, paired name server for Python programs, built on Trio."""

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

__version__ = "0.1.0"

__all__ = [
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
