"""The server side of TLS: turning an accepted TCP stream into a TLS transport, or a reason.

A TLS daemon hands each accepted connection to :func:`accept_tls` before the pairns
handshake. The whole of it is bounded by the handshake timeout
(``PYRO_HANDSHAKE_TIMEOUT``), and no connection is left hanging:

- a TLS client sends its ClientHello (first byte ``0x16``) at once: the TLS handshake
  runs, and the connection is served over a :class:`~pairns.rpc.transport.StreamTransport`
  (the daemon's raw-socket fast path is for plain TCP only);
- a plain pairns client sends nothing: it waits for the server's challenge. After
  :data:`PLAIN_CLIENT_WAIT` seconds of silence (or at once, for a first byte that is
  not TLS) it is told, in plain text, the one frame it can read: a ``Goodbye`` with
  ``ErrorCode.TLS_REQUIRED``. Its proxy raises ``TLSError`` saying the node wants TLS.

Failures come back as one sentence for the daemon's log line and counter.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

import attrs
import trio

from pairns.rpc.transport import StreamTransport
from pairns.tls import TLS_RECORD_HANDSHAKE, describe
from pairns.wire import SERVER, Connection, ErrorCode, Goodbye

__all__ = ["PLAIN_CLIENT_WAIT", "Accepted", "accept_tls"]

#: Seconds a TLS port waits for a client's first byte before it takes the client for a
#: plain pairns client (which waits, silent, for the challenge) and tells it TLS is
#: required. A TLS client sends its ClientHello right after connecting, so this only
#: needs to cover scheduling delays; it stays below the name server proxies' default
#: failover timeout (1 s), so that a plain proxy reads the reason, not a timeout.
PLAIN_CLIENT_WAIT: Final = 0.5

#: Seconds spent telling a plain client that TLS is required (write, then wait for it
#: to close), and bytes read from it meanwhile at most.
TELL_PLAIN_TIMEOUT: Final = 1.0
TELL_PLAIN_DRAIN: Final = 64 * 1024

#: What a plain client is told.
TLS_REQUIRED_MESSAGE: Final = (
    "this port speaks TLS only (its URI is PYROSSL://): connect with an ssl_context"
)


@attrs.frozen
class Accepted:
    """What :func:`accept_tls` made of a connection: a transport, or why there is none
    (``reason`` None: the client left before saying anything, nothing to report)."""

    transport: StreamTransport | None
    reason: str | None = None


def _peer(stream: trio.SocketStream) -> tuple[str, int] | None:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return None
    return str(peer[0]), int(peer[1])


def _where(peer: tuple[str, int] | None) -> str:
    if peer is None:
        return "(unknown)"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def accept_tls(
    stream: trio.SocketStream, context: ssl.SSLContext, *, handshake_timeout: float
) -> Accepted:
    """Run the TLS handshake on *stream* within *handshake_timeout* seconds.

    Never raises an ``Exception``; on failure *stream* is closed (after a plain client
    was told why) and the reason returned.
    """
    peer = _peer(stream)
    where = _where(peer)
    result: Accepted | None = None
    try:
        with trio.move_on_after(handshake_timeout):
            result = await _handshake(stream, context, peer, where, handshake_timeout)
    except BaseException:  # the daemon stopping (Cancelled): close, never leak the socket
        await trio.aclose_forcefully(stream)
        raise
    if result is None:
        result = Accepted(
            None,
            f"TLS handshake with {where} did not finish within {handshake_timeout:g} s "
            "(PYRO_HANDSHAKE_TIMEOUT)",
        )
    if result.transport is None:
        await trio.aclose_forcefully(stream)
    return result


async def _handshake(
    stream: trio.SocketStream,
    context: ssl.SSLContext,
    peer: tuple[str, int] | None,
    where: str,
    handshake_timeout: float,
) -> Accepted:
    first: bytes | None = None
    try:
        with trio.move_on_after(min(PLAIN_CLIENT_WAIT, handshake_timeout)):
            first = await stream.socket.recv(1, socket.MSG_PEEK)
    except OSError:
        return Accepted(None)  # reset before it said anything
    if first == b"":
        return Accepted(None)  # connected and closed (a port check)
    if first is None or first[0] != TLS_RECORD_HANDSHAKE:
        await _tell_plain(stream)
        said = "said nothing" if first is None else "sent something other than TLS"
        return Accepted(
            None,
            f"a client {where} that does not speak TLS ({said}) connected to this TLS port; "
            "told it TLS is required",
        )
    tls = trio.SSLStream(stream, context, server_side=True)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await _send_alert(tls, stream)
        return Accepted(
            None, f"TLS handshake with {where} failed: {describe(exc, where, server_side=True)}"
        )
    return Accepted(StreamTransport(tls, peer=peer))


async def _send_alert(tls: trio.SSLStream[trio.SocketStream], stream: trio.SocketStream) -> None:
    """Deliver the TLS alert that says why the handshake failed (certificate required,
    unknown CA, expired), so the client can name the reason instead of seeing the
    connection close. Trio's stream, broken by the failure, keeps the alert unsent in
    its outgoing buffer; a stream without one (another Trio version) sends nothing."""
    outgoing = getattr(tls, "_outgoing", None)
    if not isinstance(outgoing, ssl.MemoryBIO):
        return
    alert = outgoing.read()
    if not alert:
        return
    with trio.move_on_after(TELL_PLAIN_TIMEOUT):
        try:
            await stream.send_all(alert)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _tell_plain(stream: trio.SocketStream) -> None:
    """Send the plain client a ``Goodbye(TLS_REQUIRED)`` and wait briefly for it to close."""
    data = Connection(SERVER).send(Goodbye(ErrorCode.TLS_REQUIRED, TLS_REQUIRED_MESSAGE))
    with trio.move_on_after(TELL_PLAIN_TIMEOUT):
        try:
            await stream.send_all(data)
            await stream.send_eof()
            drained = 0
            while drained < TELL_PLAIN_DRAIN:
                chunk = await stream.receive_some(TELL_PLAIN_DRAIN)
                if not chunk:
                    break
                drained += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
