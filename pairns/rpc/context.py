"""Per-call context the daemon sets before it calls a method.

The name service reads :data:`current_request_id` to recognise a retried write (the
client sends the same request id again after a failover) and answer it with the first
result instead of applying it twice. Sync methods see it while they run; async methods
run in a task that inherits it.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["current_request_id"]

#: The request id the client attached to the call being served, or None.
current_request_id: ContextVar[str | None] = ContextVar("pairns_request_id", default=None)
