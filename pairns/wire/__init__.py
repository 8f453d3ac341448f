"""pairns.wire: the wire protocol as a sans-IO state machine (no sockets, clocks, threads).

- :mod:`~pairns.wire.limits` — every size, count and error code, with reasons.
- :mod:`~pairns.wire.frames` — the frame codec (header, CRC32, JSON body).
- :mod:`~pairns.wire.events` — the events and their body layouts.
- :mod:`~pairns.wire.handshake` — the HMAC identification handshake.
- :mod:`~pairns.wire.state` — the state table.
- :mod:`~pairns.wire.connection` — :class:`Connection`, which ties them together.

A server conversation, with the IO left to the caller::

    conn = Connection(SERVER, identification=b"secret")
    write(conn.send(conn.challenge()))
    ...feed bytes with conn.receive_data(); conn.next_event() gives the Response...
    write(conn.send(conn.verdict()))                  # Welcome or Denied
    ...conn.next_event() gives Request/Oneway; write(conn.send(Reply(corr_id, value)))
"""

from pairns.wire.connection import CLIENT, SERVER, Connection
from pairns.wire.events import (
    NEED_DATA,
    PAUSED,
    Challenge,
    ConnectionClosed,
    Denied,
    ErrorReply,
    Event,
    Goodbye,
    Oneway,
    Reply,
    Request,
    Response,
    Sentinel,
    Welcome,
)
from pairns.wire.frames import MessageType
from pairns.wire.limits import ErrorCode
from pairns.wire.state import Role, State

__all__ = [
    "CLIENT",
    "NEED_DATA",
    "PAUSED",
    "SERVER",
    "Challenge",
    "Connection",
    "ConnectionClosed",
    "Denied",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "Goodbye",
    "MessageType",
    "Oneway",
    "Reply",
    "Request",
    "Response",
    "Role",
    "Sentinel",
    "State",
    "Welcome",
]
