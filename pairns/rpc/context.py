"""Per-call context the daemon sets before it calls a method.

The name service reads :data:`current_request_id` to recognise a retried write (the
client sends the same request id again after a failover) and answer it with the first
result instead of applying it twice. Sync methods see it while they run; async methods
run in a task that inherits it.

An object registered with ``with_connection=True`` (the peer link's endpoint) also sees
:data:`current_connection`: who is calling and what that connection has proved, plus a
dict the object may keep per-connection state in (a challenge it issued, say).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import attrs

__all__ = ["ConnectionInfo", "current_connection", "current_request_id"]


@attrs.define(eq=False)
class ConnectionInfo:
    """One client connection, as the daemon knows it.

    ``peer`` is the client's ``(host, port)``; ``identified`` is True when the client
    proved the daemon's identification (``-i``). ``attributes`` belongs to the objects
    the connection calls: it lives as long as the connection.
    """

    peer: tuple[str, int] | None
    identified: bool
    attributes: dict[str, Any] = attrs.field(factory=dict)


#: The request id the client attached to the call being served, or None.
current_request_id: ContextVar[str | None] = ContextVar("pairns_request_id", default=None)

#: The connection a call arrived on, for objects registered ``with_connection=True``
#: (None for every other object: the hot path sets nothing).
current_connection: ContextVar[ConnectionInfo | None] = ContextVar(
    "pairns_connection", default=None
)
