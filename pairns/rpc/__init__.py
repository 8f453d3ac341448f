"""pairns.rpc: thin IO adapters around :class:`pairns.wire.Connection`.

- :class:`Daemon` (Trio) serves registered objects; :class:`DaemonLimits` bounds it.
- :class:`AsyncProxy` (Trio) lets many tasks call one object over one connection.
- :class:`Proxy` is the blocking twin, on plain sockets, safe to share between threads.
- :class:`Deferred` lets a plain method answer later, without a task per call.
- :data:`current_request_id` is set while a method runs for a request that carries one.
"""

from pairns.rpc.aproxy import AsyncProxy
from pairns.rpc.client import Target
from pairns.rpc.context import current_request_id
from pairns.rpc.daemon import DAEMON_OBJECT_ID, Daemon, DaemonLimits, DaemonStatistics
from pairns.rpc.deferred import Deferred
from pairns.rpc.proxy import Proxy

__all__ = [
    "DAEMON_OBJECT_ID",
    "AsyncProxy",
    "Daemon",
    "DaemonLimits",
    "DaemonStatistics",
    "Deferred",
    "Proxy",
    "Target",
    "current_request_id",
]
