"""The byte transport under the daemon and the async proxy, and the daemon's write rule.

A :class:`Transport` is one connection's bytes, whatever carries them. Two kinds:

- :class:`SocketTransport`, plain TCP: reads and writes go straight to the non-blocking
  descriptor and pass through Trio only when the kernel has nothing to give or takes
  no more. A trip through the scheduler per read and per write was the largest cost
  per call left, so this is the fast path, and the default.
- :class:`StreamTransport`, any :class:`trio.abc.Stream`: TLS (``trio.SSLStream``), or
  one end of ``trio.testing.memory_stream_pair`` in tests. Nothing is written or read
  without going through the stream.

:class:`Outbox` is the write side shared by every task that answers on one connection,
and holds the one rule for writing: a frame is written whole at once when nothing else
is being written, else queued behind what is, in order, and a helper task writes the
queue. It counts the bytes queued so that the reader can stop reading while they are
over a cap (backpressure): a client that never reads its replies costs the node a
bounded amount of memory, and only its own connection stalls.
"""

from __future__ import annotations

import abc
import functools
import os
import select
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio

__all__ = [
    "NowaitIO",
    "Outbox",
    "SocketTransport",
    "StreamTransport",
    "Transport",
    "WriteStalled",
    "as_transport",
]

#: Bytes asked for per receive when the caller does not say.
DEFAULT_RECEIVE_SIZE: Final = 65536

_wait_readable = trio.lowlevel.wait_readable

_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.frozen
class NowaitIO:
    """The calls a hot loop makes without going through Trio, with the semantics of a
    non-blocking descriptor's ``os.read``/``os.write``.

    ``read(max_bytes)`` returns the bytes there (``b""`` at end of file) and
    ``write(data)`` how many bytes it wrote; both raise ``BlockingIOError`` when they
    would have to wait and ``OSError`` when the connection is broken (a closed stream
    transport raises ``ClosedResourceError``). ``await wait_readable()`` returns once
    ``read`` has something to give. Plain callables, so that a loop can keep them in
    locals: over TCP they are the descriptor calls themselves.
    """

    read: Callable[[int], bytes]
    write: Callable[[bytes | memoryview], int]
    wait_readable: Callable[[], Awaitable[None]]


class Transport(abc.ABC):
    """One connection's bytes in both directions.

    Besides the awaitable calls of a Trio stream, a transport offers :attr:`nowait`,
    the synchronous calls that do what can be done without waiting; a transport that
    cannot (a TLS stream) writes nothing and reads nothing there, and everything goes
    through the awaitable calls. Their errors are Trio's: ``BrokenResourceError`` (the
    peer or the network) and ``ClosedResourceError`` (closed here).
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def nowait(self) -> NowaitIO:
        """The calls that never wait (see :class:`NowaitIO`)."""

    @abc.abstractmethod
    async def send_all(self, data: bytes | memoryview) -> None:
        """Write all of *data*, waiting as needed."""

    @abc.abstractmethod
    async def send_eof(self) -> None:
        """Half-close: tell the peer nothing more comes (a no-op where unsupported)."""

    @abc.abstractmethod
    async def receive_some(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes:
        """Wait for bytes and return up to *max_bytes* of them (``b""``: end of file)."""

    @abc.abstractmethod
    def readable(self) -> bool:
        """True when reading would not wait (a best effort: False when it cannot tell)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close now, synchronously (works inside a cancelled scope too)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close now; a task blocked on the transport gets ``ClosedResourceError``."""

    @property
    @abc.abstractmethod
    def peer_address(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, or None when there is none (memory streams)."""


class SocketTransport(Transport):
    """Plain TCP, straight to the descriptor: the fast path."""

    __slots__ = ("_nowait", "_poller", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        fd = stream.socket.fileno()
        self._nowait = NowaitIO(
            functools.partial(os.read, fd),
            functools.partial(os.write, fd),
            functools.partial(_wait_readable, fd),
        )
        self._poller: Any = None

    @property
    def nowait(self) -> NowaitIO:
        return self._nowait

    async def send_all(self, data: bytes | memoryview) -> None:
        await self.stream.send_all(data)

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def receive_some(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes:
        return await self.stream.receive_some(max_bytes)

    def readable(self) -> bool:
        poller = self._poller
        if poller is None:
            if not hasattr(select, "poll"):
                return False
            poller = self._poller = select.poll()
            poller.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        try:
            self.stream.socket.close()  # Trio wakes the tasks blocked on it
        except OSError:
            pass

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    @property
    def peer_address(self) -> tuple[str, int] | None:
        try:
            peer = self.stream.socket.getpeername()
        except OSError:
            return None
        return str(peer[0]), int(peer[1])


class StreamTransport(Transport):
    """Any Trio stream (TLS, memory streams): every byte goes through the stream.

    Its ``nowait.wait_readable`` receives a chunk and keeps it for ``nowait.read``, so
    the daemon's read loop runs unchanged over a stream that cannot be polled.
    """

    __slots__ = ("_chunk", "_closed", "_receive_size", "peer", "stream")

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        peer: tuple[str, int] | None = None,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
    ) -> None:
        self.stream = stream
        self.peer = peer
        self._receive_size = receive_size
        self._chunk: bytes | None = None
        self._closed = False

    @property
    def nowait(self) -> NowaitIO:
        return NowaitIO(self._read_nowait, self._write_nowait, self._wait_readable)

    def _write_nowait(self, data: bytes | memoryview) -> int:
        if self._closed:
            raise trio.ClosedResourceError("the transport is closed")
        raise BlockingIOError  # a stream is written only by send_all

    async def send_all(self, data: bytes | memoryview) -> None:
        await self.stream.send_all(data)

    async def send_eof(self) -> None:
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()
        else:
            await trio.lowlevel.checkpoint()

    def _read_nowait(self, max_bytes: int) -> bytes:
        chunk = self._chunk
        if chunk is None:
            if self._closed:
                raise trio.ClosedResourceError("the transport is closed")
            raise BlockingIOError
        if len(chunk) > max_bytes:
            self._chunk = chunk[max_bytes:]
            return chunk[:max_bytes]
        self._chunk = None
        return chunk

    async def _wait_readable(self) -> None:
        if self._chunk is None:
            self._chunk = bytes(await self.stream.receive_some(self._receive_size))
        else:
            await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes:
        if self._chunk is not None:
            await trio.lowlevel.checkpoint()
            return self._read_nowait(max_bytes)
        return bytes(await self.stream.receive_some(max_bytes))

    def readable(self) -> bool:
        if self._chunk is not None:
            return True
        # A TLS stream over TCP: bytes waiting on the socket (a close alert, say).
        inner = getattr(self.stream, "transport_stream", None)
        sock = getattr(inner, "socket", None)
        if sock is None or not hasattr(select, "poll"):
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Streams with a synchronous close (memory streams, and stapled pairs of them)
        # close here; others are closed forcefully by a system task.
        parts = (
            self.stream,
            getattr(self.stream, "send_stream", None),
            getattr(self.stream, "receive_stream", None),
        )
        closers = [close for part in parts if (close := getattr(part, "close", None))]
        if closers:
            for close in closers:
                close()
            return
        trio.lowlevel.spawn_system_task(_aclose_quietly, self.stream)

    async def aclose(self) -> None:
        self._closed = True
        await trio.aclose_forcefully(self.stream)

    @property
    def peer_address(self) -> tuple[str, int] | None:
        return self.peer


async def _aclose_quietly(stream: trio.abc.AsyncResource) -> None:
    try:
        await trio.aclose_forcefully(stream)
    except Exception:  # a broken stream being closed: nothing to report
        pass


def as_transport(stream: trio.abc.Stream | Transport) -> Transport:
    """*stream* as a transport: the fast path for a plain TCP stream."""
    if isinstance(stream, Transport):
        return stream
    if type(stream) is trio.SocketStream:
        return SocketTransport(stream)
    return StreamTransport(stream)


class WriteStalled(trio.BrokenResourceError):
    """A queued write waited longer than the outbox's stall timeout: the peer stopped
    reading."""


class Outbox:
    """The write side of one connection, shared by every task that answers on it.

    The rule, in one place: a write hands the transport what it takes at once when
    nothing is queued, and queues the rest (and whatever comes while anything is
    queued) for one task to write in order: a helper task started in *nursery* after
    :meth:`write`, the caller itself in :meth:`send`. So frames are never interleaved,
    and a reply that fits in the socket buffer costs no trip through the scheduler.
    :attr:`queued` counts the bytes not yet handed to the transport; :meth:`wait_below`
    lets a reader stop while they are over its cap.

    *stall_timeout* (seconds, or None) bounds how long one queued write may wait for
    the peer to read; past it the outbox fails with :class:`WriteStalled`. Once it has
    failed (or :meth:`close` was called) every call raises the error, and the tasks
    waiting in :meth:`wait_below` are woken to see it.
    """

    __slots__ = (
        "_flushing",
        "_lot",
        "_nursery",
        "_pending",
        "_stall",
        "_write_nowait",
        "error",
        "queued",
        "transport",
    )

    def __init__(
        self, transport: Transport, nursery: trio.Nursery, *, stall_timeout: float | None = None
    ) -> None:
        self.transport = transport
        self._write_nowait = transport.nowait.write
        self._nursery = nursery
        self._stall = stall_timeout
        self._pending: list[bytes | memoryview] = []
        #: Bytes given to the outbox and not yet handed to the transport.
        self.queued = 0
        #: True while one task writes the queue (a frame may be half out).
        self._flushing = False
        self._lot = trio.lowlevel.ParkingLot()
        #: Why writing stopped for good (None while all is well).
        self.error: trio.BrokenResourceError | trio.ClosedResourceError | None = None

    @property
    def busy(self) -> bool:
        """True while bytes are queued or being written (a frame may be half out)."""
        return self._flushing

    def write(self, data: bytes) -> None:
        """Write *data* (whole frames) after everything written before it; never waits.

        Synchronous: any task of the run may call it.
        """
        if not self._queue(data):
            return
        try:
            self._nursery.start_soon(self._flush)
        except RuntimeError:  # the connection's nursery is closing
            self._flushing = False
            self._fail(trio.ClosedResourceError("the connection is closing"))
            raise trio.ClosedResourceError("the connection is closing") from None

    async def send(self, data: bytes) -> None:
        """Write *data* after everything written before it, and wait until all is out.

        When nothing else is queued the calling task writes the rest itself (no helper
        task: this works while the connection's nursery is closing, in a shielded
        scope). Does not checkpoint when the transport takes *data* at once.
        """
        if self._queue(data):
            await self._flush()
        if self.queued:
            await self.wait_below(0)
        elif self.error is not None:
            raise self.error

    async def send_eof(self) -> None:
        """Half-close once everything queued is written."""
        await self.wait_below(0)
        await self.transport.send_eof()

    async def wait_below(self, limit: int) -> None:
        """Wait until at most *limit* bytes are queued (raises if writing failed)."""
        while self.queued > limit and self.error is None:
            await self._lot.park()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Write nothing more (the connection is over); queued bytes are dropped."""
        self._fail(trio.ClosedResourceError("the connection is closed"))

    def _queue(self, data: bytes) -> bool:
        """Write what the transport takes now, queue the rest; True: start flushing."""
        if self._flushing or self.error is not None:
            self._append(data)
            return False
        try:
            sent = self._write_nowait(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise self._broken(exc) from exc
        except _GONE as exc:
            self._fail(exc)
            raise
        if sent == len(data):
            return False
        self._hold_rest(data, sent)
        return True

    def _append(self, data: bytes) -> None:
        """Queue *data* behind the write under way (raises once writing failed)."""
        if self.error is not None:
            raise self.error
        self._pending.append(data)
        self.queued += len(data)

    def _hold_rest(self, data: bytes, sent: int) -> None:
        """Queue what the transport did not take of *data*; the caller flushes it."""
        rest: bytes | memoryview = memoryview(data)[sent:] if sent else data
        self._pending.append(rest)
        self.queued += len(rest)
        self._flushing = True

    def _broken(self, exc: OSError) -> trio.BrokenResourceError:
        error = trio.BrokenResourceError(f"write failed: {exc}")
        self._fail(error)
        return error

    def _fail(self, error: trio.BrokenResourceError | trio.ClosedResourceError) -> None:
        if self.error is None:
            self.error = error
        self._pending.clear()
        self._lot.unpark_all()

    async def _flush(self) -> None:
        """Write the queue until it is empty; the only task doing so (``_flushing``)."""
        pending = self._pending
        transport = self.transport
        stall = self._stall
        try:
            while pending and self.error is None:
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                if stall is None:
                    await transport.send_all(data)
                else:
                    with trio.move_on_after(stall) as scope:
                        await transport.send_all(data)
                    if scope.cancelled_caught:
                        self._fail(WriteStalled(f"the peer read nothing for {stall:g} s"))
                        return
                self.queued -= len(data)
                self._lot.unpark_all()
        except _GONE as exc:
            self._fail(exc)
        except BaseException:
            # Cancelled mid-write: whatever follows would land inside half a frame.
            self._fail(trio.ClosedResourceError("a write was interrupted"))
            raise
        finally:
            self._flushing = False
