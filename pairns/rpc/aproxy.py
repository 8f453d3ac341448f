"""The async proxy: many tasks call one remote object over one connection at once.

No background task and no nursery are needed: *whoever waits becomes the reader*. A
caller sends its request, then, while its reply has not come, either reads the socket
itself (when no other task does) and hands every reply it finds to the task waiting for
it, or sleeps until a reader hands it its reply or the reader's job. So the proxy
works in any task of any Trio program, and it costs nothing while idle.

Cancellation-safe: a cancelled caller just stops waiting (its reply, when it comes, is
dropped); a caller cancelled while it reads hands the reading over. A timeout
(``CallTimeoutError``) drops the connection and fails the other calls on it with
``ConnectionClosedError``; the next call connects again.

Timeouts cost one cancel scope per *read*, not per call: each waiting call carries a
deadline, and the reader bounds its receive by the earliest one (any timeout drops the
connection anyway, so the earliest deadline is the only one that matters). Concurrent
sends are coalesced into one write.

Connections are TCP by default; :meth:`AsyncProxy.open_with` runs them over any Trio
stream instead (TLS, or memory streams in tests), through :mod:`pairns.rpc.transport`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    LocalProtocolError,
    PairnsError,
    RemoteProtocolError,
)
from pairns.rpc.client import (
    ProxyBase,
    Target,
    check_timeout,
    closed_error,
    handshake_error,
    reply_error,
    unproven_error,
)
from pairns.rpc.transport import StreamTransport, Transport, as_transport
from pairns.wire import (
    CLIENT,
    NEED_DATA,
    Challenge,
    Connection,
    ErrorCode,
    ErrorReply,
    Event,
    Goodbye,
    Oneway,
    Reply,
    Request,
    Sentinel,
    State,
    Welcome,
)
from pairns.wire.limits import MAX_CORRELATION_ID

__all__ = ["AsyncProxy"]

#: Bytes asked for per receive (many replies arrive together when many calls wait).
RECV_SIZE = 65536

#: Seconds a write may stall (the server not reading) before the connection is
#: dropped, for proxies without a call timeout (the others use their timeout).
FLUSH_TIMEOUT = 60.0


class _Waiter:
    """One call waiting for its reply (or for its turn to read)."""

    __slots__ = ("deadline", "done", "error", "event", "method", "value")

    def __init__(self, method: str, deadline: float) -> None:
        self.method = method
        self.deadline = deadline
        self.done = False
        self.value: Any = None
        self.error: PairnsError | None = None
        self.event = trio.Event()

    def finish(self, value: Any, error: PairnsError | None) -> None:
        self.value = value
        self.error = error
        self.done = True
        self.event.set()

    async def wait(self) -> None:
        event = self.event
        await event.wait()
        if not self.done:
            self.event = trio.Event()  # woken to take over reading: re-arm


class _Session:
    """One live connection and the calls waiting on it."""

    __slots__ = (
        "conn",
        "error",
        "flushing",
        "next_id",
        "outbox",
        "reading",
        "slots",
        "target",
        "timeout",
        "transport",
        "waiters",
    )

    def __init__(
        self, transport: Transport, conn: Connection, target: Target, timeout: float | None
    ) -> None:
        self.transport = transport
        self.conn = conn
        self.target = target
        self.timeout = timeout
        self.waiters: dict[int, _Waiter] = {}
        self.reading = False
        self.error: ConnectionClosedError | None = None
        self.next_id = 0
        self.outbox: list[bytes] = []
        self.flushing = False
        #: Calls in flight never exceed what the server's Welcome allows.
        self.slots = trio.Semaphore(conn.peer_max_in_flight)

    def new_id(self) -> int:
        corr_id = self.next_id
        while True:
            corr_id = (corr_id + 1) & MAX_CORRELATION_ID
            if not self.conn.is_in_flight(corr_id):
                self.next_id = corr_id
                return corr_id

    def readable(self) -> bool:
        """True when the idle connection has something to read (a goodbye, an EOF)."""
        return self.transport.readable()

    def fail(self, error: ConnectionClosedError) -> None:
        """The connection is finished: close it and fail every waiting call."""
        if self.error is not None:
            return
        self.error = error
        self.transport.close()  # synchronous, so it works while cancelled too
        waiters = list(self.waiters.values())
        self.waiters.clear()
        for waiter in waiters:
            waiter.finish(None, type(error)(str(error)))
        # Calls queued for a slot go on to find the connection closed, now.
        for _ in range(self.slots.statistics().tasks_waiting):
            self.slots.release()

    def timed_out(self) -> None:
        """Some call's deadline passed: fail it with CallTimeoutError, drop the rest."""
        now = trio.current_time()
        for corr_id, waiter in list(self.waiters.items()):
            if waiter.deadline <= now:
                del self.waiters[corr_id]
                waiter.finish(None, self.timeout_error(waiter.method))
        self.fail(
            ConnectionClosedError(
                f"connection to {self.target.where} dropped: another call timed out"
            )
        )

    def timeout_error(self, method: str) -> CallTimeoutError:
        return CallTimeoutError(
            f"{method}() on {self.target}: no reply within {self.timeout or 0:g} s "
            "(the connection was dropped)"
        )

    def wake_reader(self) -> None:
        """Nobody reads: let one waiting call take over."""
        if self.reading or self.error is not None:
            return
        for waiter in self.waiters.values():
            if not waiter.done:
                waiter.event.set()
                return

    async def send(self, event: Event) -> None:
        """Queue *event* and make sure it is written (coalescing concurrent sends).

        The first task to send becomes the flusher: it writes everything queued, its
        own frame and those other tasks add meanwhile, with one ``send_all`` per round,
        so 16 tasks answering 16 replies make one or two writes, not 16. The flush is
        shielded (a cancelled flusher must not strand other tasks' frames or leave half
        a frame on the wire) and bounded by the proxy's timeout.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.error is not None:
            raise ConnectionClosedError(str(self.error))
        try:
            data = self.conn.send(event)
        except LocalProtocolError:
            if self.conn.state is State.ERROR:
                self.fail(ConnectionClosedError(f"connection to {self.target.where} broke"))
            raise
        outbox = self.outbox
        outbox.append(data)
        if self.flushing:
            return  # the flushing task writes it in its next round
        self.flushing = True
        stall = self.timeout or FLUSH_TIMEOUT
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + stall
                while outbox:
                    data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
                    outbox.clear()
                    await self.transport.send_all(data)
            if scope.cancelled_caught:
                error = ConnectionClosedError(
                    f"connection to {self.target.where} dropped: sending stalled for {stall:g} s"
                )
                self.fail(error)
                raise error
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            error = ConnectionClosedError(f"connection to {self.target.where} lost: {exc}")
            self.fail(error)
            raise error from exc
        finally:
            self.flushing = False

    async def read(self) -> None:
        """Read once (until the earliest deadline) and hand out every reply that came."""
        self.reading = True
        try:
            deadline = min((w.deadline for w in self.waiters.values()), default=math.inf)
            try:
                if deadline == math.inf:
                    data = await self.transport.receive_some(RECV_SIZE)
                else:
                    with trio.move_on_at(deadline) as scope:
                        data = await self.transport.receive_some(RECV_SIZE)
                    if scope.cancelled_caught:
                        self.timed_out()
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.fail(ConnectionClosedError(f"connection to {self.target.where} lost: {exc}"))
                return
            conn = self.conn
            waiters = self.waiters
            release = self.slots.release
            try:
                conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    etype = type(event)
                    if etype is Reply:
                        reply = cast(Reply, event)
                        release()
                        waiter = waiters.pop(reply.corr_id, None)
                        if waiter is not None:  # None: its caller was cancelled
                            waiter.finish(reply.value, None)
                    elif event is NEED_DATA:
                        return
                    elif etype is ErrorReply:
                        error = cast(ErrorReply, event)
                        release()
                        waiter = waiters.pop(error.corr_id, None)
                        if waiter is not None:
                            waiter.finish(None, reply_error(error))
                    else:  # Goodbye or ConnectionClosed
                        self.fail(closed_error(self.target, event))
                        return
            except RemoteProtocolError as exc:
                await self._goodbye(exc)
                self.fail(ConnectionClosedError(f"protocol error from {self.target.where}: {exc}"))
        finally:
            self.reading = False
            self.wake_reader()

    async def _goodbye(self, exc: RemoteProtocolError) -> None:
        """Best effort: tell the server why we hang up (skipped while a flush runs)."""
        if self.flushing:
            return
        try:
            data = self.conn.send(Goodbye(exc.error_code_hint, str(exc)))
            with trio.move_on_after(1.0):
                await self.transport.send_all(data)
        except (LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class _AsyncMethod:
    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: AsyncProxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._name in self._proxy._oneways:
            return await self._proxy.oneway(self._name, *args, **kwargs)
        return await self._proxy.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name} of {self._proxy!r}>"


class AsyncProxy(ProxyBase):
    """A Trio proxy for one remote object; share it between as many tasks as you like.

    ``AsyncProxy("PYRO://host:port/objectid")`` (a string or a URI object) or
    ``AsyncProxy.for_address(host, port, object_id)``. The connection opens on first
    use and reopens on the next use after it was lost. *timeout* (seconds, or None)
    bounds each call, connecting included. ``await proxy.resolve(x)`` is
    ``await proxy.call("resolve", x)``; use :meth:`call` for remote methods named like
    this class's own attributes, and to pass a ``request_id``.

    Errors: ``ConnectionClosedError`` (cannot connect, connection lost),
    ``ConnectionDeniedError`` (identification refused, or the server could not prove
    it knows it), ``CallTimeoutError``, ``LocalProtocolError`` (arguments that are not
    JSON, or too large for the server), and whatever the remote method raised
    (``NamingError`` and the other pairns errors as themselves, anything else as
    ``RemoteCallError``).
    """

    def _init_transport(self) -> None:
        self._session: _Session | None = None
        self._connect_lock = trio.Lock()
        self._opener: Callable[[], Awaitable[trio.abc.Stream | Transport]] | None = None

    def open_with(
        self, opener: Callable[[], Awaitable[trio.abc.Stream | Transport]]
    ) -> AsyncProxy:
        """Open each connection with ``await opener()`` instead of TCP to the target.

        *opener* returns any Trio stream (a ``trio.SSLStream``, one end of
        ``trio.testing.memory_stream_pair``) or a
        :class:`~pairns.rpc.transport.Transport`; the handshake and the calls run over
        it as over TCP. Returns the proxy.
        """
        self._opener = opener
        return self

    # -- introspection ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._session is not None and self._session.error is None

    @property
    def peer_authenticated(self) -> bool | None:
        """Did the server prove it knows the identification? (None: not connected.)

        False means the server has no identification (it accepts everyone), or this
        proxy has none to check it with.
        """
        if not self.connected:
            return None
        assert self._session is not None
        return self._session.conn.peer_authenticated

    def __repr__(self) -> str:
        return f"<AsyncProxy {self._target}>"

    # -- calls -----------------------------------------------------------------------

    async def call(
        self, method: str, /, *args: Any, request_id: str | None = None, **kwargs: Any
    ) -> Any:
        """Call *method* remotely and return its result."""
        return await self._call(self._timeout, method, args, kwargs, request_id)

    async def call_within(
        self,
        timeout: float | None,
        method: str,
        /,
        *args: Any,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """:meth:`call`, bounded by *timeout* seconds (None: unbounded) instead of the
        proxy's timeout (the name server proxy's failover bounds each attempt so). As
        with any timeout, the connection is dropped when it passes."""
        if type(timeout) is not float or not 0 < timeout < math.inf:  # checked once
            timeout = check_timeout(timeout)
        return await self._call(timeout, method, args, kwargs, request_id)

    async def _call(
        self,
        timeout: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        request_id: str | None,
    ) -> Any:
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        session = await self._ready(deadline, method)
        slots = session.slots
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            # More calls than the server allows in flight: wait for a slot.
            with trio.move_on_at(deadline) as scope:
                await slots.acquire()
            if scope.cancelled_caught:
                session.timed_out()
                raise session.timeout_error(method) from None
        corr_id = session.new_id()
        waiter = _Waiter(method, deadline)
        waiters = session.waiters
        sent = False
        try:
            request = Request(
                corr_id, self._target.object_id, method, args, kwargs or None, request_id
            )
            waiters[corr_id] = waiter
            await session.send(request)
            sent = True
            while not waiter.done:
                if session.reading:
                    await waiter.wait()
                else:
                    await session.read()
        finally:
            waiters.pop(corr_id, None)
            if not sent:
                slots.release()
            session.wake_reader()  # in case we were the one picked to read next
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    async def oneway(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Call *method* remotely without waiting for (or getting) a result."""
        timeout = self._timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        session = await self._ready(deadline, method)
        await session.send(Oneway(self._target.object_id, method, args, kwargs or None))

    def __getattr__(self, name: str) -> _AsyncMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _AsyncMethod(self, name)

    async def aclose(self) -> None:
        """Close the connection (calls waiting on it fail; the next call reconnects)."""
        session, self._session = self._session, None
        if session is not None:
            session.fail(ConnectionClosedError("the proxy was closed"))
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> AsyncProxy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------

    async def _ready(self, deadline: float, method: str) -> _Session:
        """The open session, connecting first (before *deadline*) when there is none."""
        session = self._session
        if session is not None and session.error is None:
            if session.waiters or session.reading or not session.readable():
                return session
            # Idle, yet something arrived: most likely the server said goodbye.
            await session.read()
            if session.error is None:
                return session
        with trio.move_on_at(deadline):
            async with self._connect_lock:
                session = self._session
                if session is None or session.error is not None:
                    self._session = None
                    session = await self._connect()
                    self._session = session
                return session
        raise CallTimeoutError(
            f"{method}() on {self._target}: could not connect before the call's deadline"
        )

    async def _connect(self) -> _Session:
        target = self._target
        try:
            if self._opener is not None:
                transport = as_transport(await self._opener())
            else:
                stream = await trio.open_tcp_stream(target.host, target.port)
                transport = (
                    as_transport(stream) if self._ssl is None else await self._tls(stream)
                )
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectionClosedError(f"cannot connect to {target.where}: {reason}") from exc
        try:
            conn = Connection(
                CLIENT,
                identification=self._key,
                max_frame_size=self._max_frame_size,
                checksums=self._checksums,
            )
            try:
                event = await _handshake_event(transport, conn)
            except trio.BrokenResourceError as exc:
                # A TLS 1.3 server judges the client's certificate after the client
                # finished its handshake: a refusal arrives here, as an alert.
                if self._ssl is not None and _tls_failure(exc):
                    from pairns.tls import tls_error

                    raise tls_error(exc, target.where) from None
                raise
            if type(event) is not Challenge:
                raise handshake_error(target, event, first=True)
            await transport.send_all(conn.send(conn.response()))
            try:
                event = await _handshake_event(transport, conn)
            except RemoteProtocolError as exc:
                if exc.error_code_hint != ErrorCode.IDENTIFICATION_FAILED:
                    raise
                with trio.move_on_after(1.0):
                    await transport.send_all(conn.send(Goodbye(exc.error_code_hint, str(exc))))
                raise unproven_error(target) from exc
            if type(event) is not Welcome:
                raise handshake_error(target, event)
        except RemoteProtocolError as exc:
            transport.close()
            raise ConnectionClosedError(
                f"protocol error from {target.where} during the handshake: {exc}"
            ) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            transport.close()
            raise ConnectionClosedError(
                f"connection to {target.where} lost during the handshake: {exc}"
            ) from exc
        except BaseException:
            transport.close()
            raise
        return _Session(transport, conn, target, self._timeout)

    async def _tls(self, stream: trio.SocketStream) -> Transport:
        """*stream* after the TLS handshake; errors say why it failed."""
        assert self._ssl is not None
        target = self._target
        tls = trio.SSLStream(stream, self._ssl, server_hostname=target.host.strip("[]"))
        try:
            await tls.do_handshake()
        except BaseException as exc:
            await trio.aclose_forcefully(stream)
            if isinstance(exc, trio.BrokenResourceError):
                from pairns.tls import tls_error

                if _tls_failure(exc):
                    raise tls_error(exc, target.where) from None
                raise ConnectionClosedError(
                    f"connection to {target.where} lost during the TLS handshake: {exc}"
                ) from exc
            raise
        return StreamTransport(tls, peer=(target.host, target.port))


def _tls_failure(exc: BaseException) -> bool:
    from pairns.tls import is_tls_error

    return is_tls_error(exc)


async def _handshake_event(transport: Transport, conn: Connection) -> Event | Sentinel:
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        conn.receive_data(await transport.receive_some(RECV_SIZE))
