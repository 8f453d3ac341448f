"""Every size, count and code of the wire protocol, each with the reason for its value.

A peer that breaks one of these limits gets a :class:`~pairns.errors.RemoteProtocolError`
whose ``error_code_hint`` is one of the :class:`ErrorCode` values below; the side that
detected the breach sends that code in a ``Goodbye`` frame and closes the connection.
"""

from __future__ import annotations

import enum
from typing import Final

#: First two bytes of every frame. A fixed magic makes a stray client (an HTTP request,
#: a Pyro 3 client, a port scanner) fail at the first header instead of being read as
#: a length.
MAGIC: Final = b"PN"

#: The protocol version this implementation speaks (and the only one it accepts).
PROTOCOL_VERSION: Final = 1

#: Size of the fixed frame header ``!2sBBBBII``: magic, version, message type, flags,
#: reserved, correlation id, body length.
HEADER_SIZE: Final = 14

#: Size of the CRC32 that follows the header when the frame's CRC flag is set.
CRC_SIZE: Final = 4

#: Largest correlation id: the header field is an unsigned 32-bit integer.
MAX_CORRELATION_ID: Final = 0xFFFF_FFFF

#: Body bytes a server accepts in one frame by default. A name server request is a few
#: hundred bytes (a register with generous metadata a few KiB); 1 MiB leaves room for
#: big metadata values while bounding what one connection can make the node buffer.
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20

#: Body bytes a client accepts in one reply by default. Replies can be much larger than
#: requests: ``flatlist()`` of a 100,000-name namespace is several MiB.
DEFAULT_CLIENT_MAX_FRAME_SIZE: Final = 64 << 20

#: Smallest ``max_frame_size`` a connection may be configured with: the handshake frames
#: and every error reply must still fit.
MIN_MAX_FRAME_SIZE: Final = 4096

#: Largest ``max_frame_size`` a connection may be configured with. The header could say
#: 4 GiB; nothing pairns sends comes near 256 MiB, and a bigger limit only helps a
#: hostile peer make us allocate.
MAX_MAX_FRAME_SIZE: Final = 256 << 20

#: Body bytes accepted for any frame before the handshake is done. Handshake bodies are
#: under 300 bytes; an unauthenticated peer must not make the node buffer a megabyte.
MAX_HANDSHAKE_FRAME_SIZE: Final = 4096

#: Requests one connection may have waiting for their replies, by default. 16 in flight
#: already reach the throughput floor (see the design notes on speed); 128 leaves room
#: for slow async calls without letting one client queue unbounded work.
DEFAULT_MAX_IN_FLIGHT: Final = 128

#: Largest configurable ``max_in_flight``.
MAX_MAX_IN_FLIGHT: Final = 65536

#: Connections a server serves at once, by default. Each costs a descriptor and a few
#: KiB; 10,000 covers every client of a site's name server with room to spare, while a
#: runaway client that opens connections in a loop is turned away long before the node
#: runs out of descriptors or memory.
DEFAULT_MAX_CONNECTIONS: Final = 10_000

#: Largest configurable ``max_connections``: the daemon raises its descriptor limit to
#: this plus a reserve, and no system gives one process more than a few million.
MAX_MAX_CONNECTIONS: Final = 1 << 24

#: Seconds a new connection has to complete the handshake, by default. A client on a
#: loaded network needs a few round trips; a peer that says nothing holds a descriptor.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 5.0

#: Seconds without a request before the server drops a connection, by default (0: never).
#: Name server clients keep connections open between rare lookups, as in Pyro 3.
DEFAULT_IDLE_TIMEOUT: Final = 0.0

#: Requests a client may send before the server's ``Welcome`` tells it the real limit
#: (one pipelined request saves a round trip on connect; every server allows one).
PIPELINED_REQUESTS: Final = 1

#: Deepest nesting of JSON arrays and objects in a body (the request envelope counts as
#: two levels). The stdlib decoder would recurse until ``RecursionError`` (about 1000
#: levels); values also get re-encoded, compared, stored and hashed by code that
#: recurses, so we keep far away from the interpreter's limit.
MAX_JSON_DEPTH: Final = 64

#: Bytes of randomness in each handshake nonce (as much as the HMAC-SHA256 output).
NONCE_SIZE: Final = 32

#: Bytes of an HMAC-SHA256 proof.
MAC_SIZE: Final = 32

#: Longest reason or message text (in characters) put into ``Denied``/``Goodbye`` frames;
#: longer texts are cut (they are for humans and logs). Even fully escaped it keeps a
#: ``Goodbye`` under ``MAX_HANDSHAKE_FRAME_SIZE``, so one can be sent in any state.
MAX_REASON_LENGTH: Final = 512

#: Longest server name announced in a ``Challenge``.
MAX_SERVER_NAME_LENGTH: Final = 255


class ErrorCode(enum.IntEnum):
    """Why a connection was closed; travels in ``Goodbye`` frames and error hints."""

    #: Orderly close, nothing went wrong.
    NORMAL = 0
    #: A protocol violation without a more specific code.
    PROTOCOL_ERROR = 1
    #: The first two bytes of a frame were not ``MAGIC``.
    BAD_MAGIC = 2
    #: The frame header announced a protocol version we do not speak.
    UNSUPPORTED_VERSION = 3
    #: Unknown flag bits or a non-zero reserved byte.
    BAD_HEADER = 4
    #: The frame header announced a message type we do not know.
    UNKNOWN_MESSAGE_TYPE = 5
    #: The body is longer than the receiver's ``max_frame_size``.
    FRAME_TOO_LARGE = 6
    #: The body does not match its CRC32.
    BAD_CHECKSUM = 7
    #: The body is not valid UTF-8 or not valid JSON.
    BAD_ENCODING = 8
    #: The JSON is valid but does not have the shape the message type requires.
    BAD_MESSAGE = 9
    #: The JSON nests deeper than ``MAX_JSON_DEPTH``.
    TOO_DEEP = 10
    #: More requests in flight than ``max_in_flight``.
    TOO_MANY_IN_FLIGHT = 11
    #: A request reused the correlation id of a request still in flight.
    DUPLICATE_CORRELATION_ID = 12
    #: A message that is not allowed in the connection's current state (or a reply to
    #: a request that was never sent).
    UNEXPECTED_MESSAGE = 13
    #: The connection ended in the middle of a frame.
    TRUNCATED = 14
    #: The peer failed to prove it knows the identification.
    IDENTIFICATION_FAILED = 15
    #: The client did not complete the handshake in time.
    HANDSHAKE_TIMEOUT = 16
    #: The connection was idle longer than the server allows.
    IDLE_TIMEOUT = 17
    #: The server already holds its maximum number of connections.
    TOO_MANY_CONNECTIONS = 18
    #: The server failed in a way that is not the client's fault.
    INTERNAL_ERROR = 19
    #: The server is shutting down.
    SHUTDOWN = 20
    #: A plain (non-TLS) client connected to a port that speaks TLS only; sent in
    #: plain text, as the one thing such a client can read.
    TLS_REQUIRED = 21


#: Reply bytes a server keeps queued for one connection (written by no one yet because
#: the client is not reading) before it stops reading that connection's requests. A
#: client that pipelines requests and never reads the replies then costs the node this
#: much memory, not gigabytes; 4 MiB still holds several large ``flatlist()`` replies,
#: so a client that does read is never slowed.
DEFAULT_MAX_QUEUED_REPLY_BYTES: Final = 4 << 20

#: Largest configurable cap on queued reply bytes.
MAX_MAX_QUEUED_REPLY_BYTES: Final = 1 << 30
