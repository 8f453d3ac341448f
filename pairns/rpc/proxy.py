"""The blocking proxy: plain sockets, no event loop, safe to share between threads.

One lock makes calls take turns on the wire (one request in flight). A call costs one
``sendall`` and usually one ``recv_into`` into a buffer the proxy keeps; the first call
on a new connection sends the handshake response and the request together, saving a
round trip. Timeouts are socket timeouts (``SO_RCVTIMEO`` where available, so a
receive costs one system call) plus a deadline for the whole call; a timed-out call
drops the connection, and the next call connects again.
"""

from __future__ import annotations

import math
import select
import socket
import struct
import sys
import threading
import time
from typing import Any, cast

from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    PairnsError,
    ProtocolError,
    RemoteProtocolError,
)
from pairns.rpc.client import (
    ProxyBase,
    check_timeout,
    handshake_error,
    reply_error,
    unproven_error,
)
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
    Welcome,
)
from pairns.wire.limits import MAX_CORRELATION_ID

__all__ = ["Proxy"]

#: Size of the receive buffer each proxy keeps (a reply larger than this just takes
#: more than one receive).
RECV_SIZE = 65536

_LINUX = sys.platform.startswith("linux")
_TIMEVAL = struct.Struct("@ll")


class _Timeout(Exception):
    """Internal: the call's deadline passed."""


class _RemoteMethod:
    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: Proxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._name in self._proxy._oneways:
            return self._proxy.oneway(self._name, *args, **kwargs)
        return self._proxy.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._name} of {self._proxy!r}>"


class Proxy(ProxyBase):
    """A blocking proxy for one remote object (Pyro 3's proxy, minus pickle).

    ``Proxy("PYRO://host:port/objectid")`` (a string or a URI object) or
    ``Proxy.for_address(host, port, object_id)``. ``proxy.resolve(x)`` is
    ``proxy.call("resolve", x)``; use :meth:`call` for remote methods named like this
    class's own attributes, and to pass a ``request_id``. Errors are those of
    :class:`pairns.rpc.AsyncProxy`.
    """

    def _init_transport(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conn: Connection | None = None
        self._poller: Any = None
        #: The handshake response, when it is to go out with the first request.
        self._pending = b""
        #: The timeout the open socket's kernel timeouts were set for.
        self._sock_timeout: float | None = None
        self._next_id = 0
        self._buf = bytearray(RECV_SIZE)
        self._view = memoryview(self._buf)

    # -- introspection ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._sock is not None

    @property
    def peer_authenticated(self) -> bool | None:
        """Did the server prove it knows the identification? (None: not known yet.)"""
        conn = self._conn
        return None if conn is None else conn.peer_authenticated

    def __repr__(self) -> str:
        return f"<Proxy {self._target}>"

    # -- calls -----------------------------------------------------------------------

    def call(self, method: str, /, *args: Any, request_id: str | None = None, **kwargs: Any) -> Any:
        """Call *method* remotely and return its result."""
        return self._call(self._timeout, method, args, kwargs, request_id)

    def call_within(
        self,
        timeout: float | None,
        method: str,
        /,
        *args: Any,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """:meth:`call`, bounded by *timeout* seconds (None: unbounded) instead of the
        proxy's timeout (the name server proxy's failover bounds each attempt so)."""
        if type(timeout) is not float or not 0 < timeout < math.inf:  # checked once
            timeout = check_timeout(timeout)
        return self._call(timeout, method, args, kwargs, request_id)

    def _call(
        self,
        timeout: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        request_id: str | None,
    ) -> Any:
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                conn, sock = self._ready(deadline)
                if timeout != self._sock_timeout:
                    self._set_timeouts(sock, timeout)
                corr_id = (self._next_id + 1) & MAX_CORRELATION_ID
                self._next_id = corr_id
                data = conn.send(
                    Request(
                        corr_id, self._target.object_id, method, args, kwargs or None, request_id
                    )
                )
                if self._pending:
                    data = self._pending + data
                    self._pending = b""
                sock.sendall(data)
                while True:
                    event = self._next(conn, sock, deadline)
                    etype = type(event)
                    if etype is Reply:
                        reply = cast(Reply, event)
                        if reply.corr_id == corr_id:
                            return reply.value
                    elif etype is ErrorReply:
                        assert isinstance(event, ErrorReply)
                        if event.corr_id == corr_id:
                            raise reply_error(event)
                    elif etype is not Welcome:
                        self._unexpected(event)
            except BaseException as exc:
                failure = self._failure(method, exc, timeout)
                if failure is exc:
                    raise
                raise failure from (None if isinstance(failure, CallTimeoutError) else exc)

    def _failure(
        self, method: str, exc: BaseException, timeout: float | None = None
    ) -> BaseException:
        """What a call that failed with *exc* raises; drops a connection left unusable."""
        if isinstance(exc, _Timeout | TimeoutError | BlockingIOError):
            self._drop()
            return self._timeout_error(method, timeout)
        if isinstance(exc, RemoteProtocolError):
            return self._protocol_error(exc)
        if isinstance(exc, OSError):
            self._drop()
            return ConnectionClosedError(f"connection to {self._target.where} lost: {exc}")
        if not isinstance(exc, PairnsError):
            self._drop()  # interrupted (KeyboardInterrupt...) mid-call: state unknown
        # A PairnsError is the remote method's error, or ours: the connection is fine
        # (or already gone).
        return exc

    def oneway(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Call *method* remotely without waiting for (or getting) a result."""
        with self._lock:
            deadline = None if self._timeout is None else time.monotonic() + self._timeout
            try:
                conn, sock = self._ready(deadline)
                if self._pending:
                    # Learn the verdict first: a denied oneway must not vanish silently.
                    sock.sendall(self._pending)
                    self._pending = b""
                    event = self._next(conn, sock, deadline)
                    if type(event) is not Welcome:
                        self._unexpected(event)
                sock.sendall(
                    conn.send(Oneway(self._target.object_id, method, args, kwargs or None))
                )
            except BaseException as exc:
                failure = self._failure(method, exc, self._timeout)
                if failure is exc:
                    raise
                raise failure from (None if isinstance(failure, CallTimeoutError) else exc)

    def __getattr__(self, name: str) -> _RemoteMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RemoteMethod(self, name)

    def close(self) -> None:
        """Close the connection (a call blocked on it fails; the next call reconnects)."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a call blocked in another thread
            except OSError:
                pass
        with self._lock:
            self._drop()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _next(self, conn: Connection, sock: socket.socket, deadline: float | None) -> Event:
        """The next event, receiving as needed."""
        while True:
            event = conn.next_event()
            if event is not NEED_DATA:
                assert not isinstance(event, Sentinel)
                return event
            if deadline is not None and time.monotonic() > deadline:
                raise _Timeout
            n = sock.recv_into(self._buf)
            conn.receive_data(self._view[:n])

    def _unexpected(self, event: Event) -> None:
        """Denied, Goodbye, end of file: the connection is over."""
        self._drop()
        raise handshake_error(self._target, event)

    def _timeout_error(self, method: str, timeout: float | None) -> CallTimeoutError:
        return CallTimeoutError(
            f"{method}() on {self._target}: no reply within {timeout or 0:g} s "
            "(the connection was dropped)"
        )

    def _protocol_error(self, exc: RemoteProtocolError) -> ProtocolError:
        """Say goodbye (best effort), drop the connection, describe the failure."""
        conn, sock = self._conn, self._sock
        if conn is not None and sock is not None:
            try:
                sock.sendall(conn.send(Goodbye(exc.error_code_hint, str(exc))))
            except Exception:
                pass
        self._drop()
        if exc.error_code_hint == ErrorCode.IDENTIFICATION_FAILED:
            return unproven_error(self._target)
        return ConnectionClosedError(f"protocol error from {self._target.where}: {exc}")

    def _drop(self) -> None:
        sock = self._sock
        self._sock = None
        self._conn = None
        self._poller = None
        self._pending = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _ready(self, deadline: float | None) -> tuple[Connection, socket.socket]:
        """The open connection (connecting first when there is none, or it went stale)."""
        conn, sock = self._conn, self._sock
        if conn is not None and sock is not None:
            if self._poller is None or not self._poller.poll(0) or self._still_open(conn, sock):
                return conn, sock
            self._drop()
        return self._connect(deadline)

    def _still_open(self, conn: Connection, sock: socket.socket) -> bool:
        """Read what arrived on an idle connection: False if the server hung up."""
        if self._ssl is not None:
            # What arrived may be TLS records without data: read without waiting.
            sock.setblocking(False)
        try:
            n = sock.recv_into(self._buf)
            conn.receive_data(self._view[:n])
            while (event := conn.next_event()) is not NEED_DATA:
                if type(event) is not Welcome:
                    return False  # Goodbye, end of file: reconnect rather than fail
            return True
        except (OSError, RemoteProtocolError):
            return False
        finally:
            if self._ssl is not None:
                self._set_timeouts(sock, self._sock_timeout)

    def _connect(self, deadline: float | None) -> tuple[Connection, socket.socket]:
        target = self._target
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        try:
            sock = socket.create_connection(target.address, timeout=timeout)
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise _Timeout from exc
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectionClosedError(f"cannot connect to {target.where}: {reason}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._wrap(sock, timeout)
            self._set_timeouts(sock, timeout)
            conn = Connection(
                CLIENT,
                identification=self._key,
                max_frame_size=self._max_frame_size,
                checksums=self._checksums,
            )
            self._conn, self._sock = conn, sock
            try:
                event = self._next(conn, sock, deadline)
            except OSError as exc:
                # A TLS 1.3 server judges the client's certificate after the client
                # finished its handshake: a refusal arrives here, as an alert.
                if self._ssl is None:
                    raise
                from pairns.tls import is_tls_error, tls_error

                if not is_tls_error(exc):
                    raise
                raise tls_error(exc, target.where) from None
            if type(event) is not Challenge:
                self._drop()
                raise handshake_error(target, event, first=True)
            # Sent together with the first request (pipelining saves a round trip).
            self._pending = conn.send(conn.response())
        except BaseException:
            self._conn = self._sock = None
            self._pending = b""
            sock.close()
            raise
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
        return conn, sock

    def _wrap(self, sock: socket.socket, timeout: float | None) -> socket.socket:
        """*sock* after the TLS handshake (bounded by *timeout*); errors say why it failed."""
        assert self._ssl is not None
        from pairns.tls import is_tls_error, tls_error

        sock.settimeout(timeout)
        target = self._target
        try:
            return self._ssl.wrap_socket(sock, server_hostname=target.host.strip("[]"))
        except TimeoutError:
            sock.close()
            raise _Timeout from None
        except OSError as exc:
            sock.close()
            if is_tls_error(exc):
                raise tls_error(exc, target.where) from None
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectionClosedError(
                f"connection to {target.where} lost during the TLS handshake: {reason}"
            ) from exc

    def _set_timeouts(self, sock: socket.socket, timeout: float | None) -> None:
        self._sock_timeout = timeout
        if timeout is None:
            sock.settimeout(None)
        elif _LINUX and self._ssl is None:
            # (Not under TLS: a kernel timeout there shows as an SSL "want read" error.)
            # A blocking socket with kernel timeouts: one system call per receive
            # instead of poll() + recv(). A timeout shows as BlockingIOError.
            sock.settimeout(None)
            seconds = int(timeout)
            value = _TIMEVAL.pack(seconds, int((timeout - seconds) * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        else:
            sock.settimeout(timeout)
