"""pairns.rpc: thin IO adapters around :class:`pairns.wire.Connection`.

- :class:`Daemon` (Trio) serves registered objects; :class:`DaemonLimits` bounds it.
- :class:`AsyncProxy` (Trio) lets many tasks call one object over one connection.
- :class:`Proxy` is the blocking twin, on plain sockets, safe to share between threads.
- :class:`Deferred` lets a plain method answer later, without a task per call.
- :func:`oneway` marks a method whose callers do not wait for it.
- :data:`current_request_id` is set while a method runs for a request that carries one;
  :data:`current_connection` (a :class:`ConnectionInfo`) for objects registered
  ``with_connection=True``.

Names are imported on first use, so that a blocking client never imports Trio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pairns._lazy import exports

if TYPE_CHECKING:
    from pairns.rpc.aproxy import AsyncProxy
    from pairns.rpc.client import Target
    from pairns.rpc.context import ConnectionInfo, current_connection, current_request_id
    from pairns.rpc.daemon import Daemon, DaemonLimits, DaemonStatistics, NameService
    from pairns.rpc.deferred import Deferred
    from pairns.rpc.dispatch import DAEMON_OBJECT_ID, oneway
    from pairns.rpc.proxy import Proxy

#: Public name -> the module that defines it.
_HOMES = {
    "AsyncProxy": "pairns.rpc.aproxy",
    "Target": "pairns.rpc.client",
    "ConnectionInfo": "pairns.rpc.context",
    "current_connection": "pairns.rpc.context",
    "current_request_id": "pairns.rpc.context",
    "DAEMON_OBJECT_ID": "pairns.rpc.dispatch",
    "Daemon": "pairns.rpc.daemon",
    "DaemonLimits": "pairns.rpc.daemon",
    "DaemonStatistics": "pairns.rpc.daemon",
    "NameService": "pairns.rpc.daemon",
    "oneway": "pairns.rpc.dispatch",
    "Deferred": "pairns.rpc.deferred",
    "Proxy": "pairns.rpc.proxy",
}

__all__ = [
    "DAEMON_OBJECT_ID",
    "AsyncProxy",
    "ConnectionInfo",
    "Daemon",
    "DaemonLimits",
    "DaemonStatistics",
    "Deferred",
    "NameService",
    "Proxy",
    "Target",
    "current_connection",
    "current_request_id",
    "oneway",
]


__getattr__, __dir__ = exports(globals(), _HOMES)
