"""The Trio daemon: listens, runs the handshake, dispatches requests to registered objects.

The adapter only moves bytes between a :class:`~pairns.rpc.transport.Transport` (plain
TCP straight to the descriptor, or any Trio stream: TLS, memory streams in tests) and
:class:`pairns.wire.Connection`; the decisions live in the wire state machine and in
:mod:`pairns.rpc.dispatch`. One task per connection runs h11's loop: read a chunk, feed
it, answer every complete request (sync methods inline, no task per call), write the
replies with one write (every :data:`WRITE_CHUNK` bytes when they are large).
Coroutine methods run as tasks in the connection's nursery (at most ``max_in_flight``
per connection, a wire limit) and write their replies when they finish. A sync method
may return a :class:`~pairns.rpc.Deferred`; its reply is written by whichever task
finishes it, with no task per call. Every writer goes through the connection's
:class:`~pairns.rpc.transport.Outbox`; while more than ``max_queued_reply_bytes`` wait
in it for the client to read them, the daemon reads no more of that client's requests.

User objects (:meth:`Daemon.connect`) differ in two ways: their plain methods run in
worker threads (a task per call, ``limits.worker_threads`` threads at once), and the
daemon publishes them in a name server; ``@oneway`` methods are answered at once and
run in the daemon's own nursery.

A connection that breaks a limit or the protocol gets a ``Goodbye`` with the reason and
is closed; nothing a client sends can stop the daemon serving the others.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import math
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import attrs
import outcome
import trio

from pairns._throttle import RefusalLog
from pairns.errors import (
    ConnectionDeniedError,
    LocalProtocolError,
    NamingError,
    RemoteProtocolError,
    error_to_wire,
)
from pairns.rpc.context import ConnectionInfo, current_connection, current_request_id
from pairns.rpc.deferred import Deferred
from pairns.rpc.dispatch import (
    DAEMON_OBJECT_ID,
    ErrorTriple,
    LookupFailed,
    Method,
    ObjectTable,
    Wrapper,
    check_object_id,
    describe_call_error,
    sanitize_error,
    unencodable_result,
)
from pairns.rpc.guard import ConnectionGuard
from pairns.rpc.transport import Outbox, Transport, WriteStalled, as_transport
from pairns.uri import URI, WILDCARD_HOSTS, new_object_id
from pairns.wire import (
    NEED_DATA,
    SERVER,
    Connection,
    Denied,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Oneway,
    Request,
    Response,
)
from pairns.wire.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_QUEUED_REPLY_BYTES,
    MAX_MAX_CONNECTIONS,
    MAX_MAX_FRAME_SIZE,
    MAX_MAX_IN_FLIGHT,
    MAX_MAX_QUEUED_REPLY_BYTES,
    MIN_MAX_FRAME_SIZE,
)

if TYPE_CHECKING:
    import ssl

__all__ = ["DAEMON_OBJECT_ID", "Daemon", "DaemonLimits", "DaemonStatistics", "NameService"]

log = logging.getLogger("pairns.rpc")

#: Bytes asked for per receive: one read picks up every request a pipelining client
#: has sent (64 KiB holds hundreds of name server requests).
RECV_SIZE: Final = 65536

#: Requests a busy connection may answer before it waits on the socket again, which
#: lets the scheduler run the other connections (fairness under pipelined load).
_MAX_UNWAITED: Final = 64

#: Reply bytes the reader gathers before it writes them, within one read's requests:
#: replies are written as they are made (not all of a read's at the end), so a client
#: that pipelines hundreds of large requests does not make the node hold all replies.
WRITE_CHUNK: Final = 65536

#: Seconds the daemon spends delivering a ``Goodbye`` (or ``Denied``) and waiting for
#: the peer to close, so the reason is read instead of being lost to a TCP reset.
GOODBYE_LINGER: Final = 1.0

#: Seconds a stopping daemon gives each connection to deliver its "shutting down"
#: Goodbye (shielded from the cancellation that is stopping it).
SHUTDOWN_GOODBYE_TIMEOUT: Final = 0.5

#: Bytes the daemon reads and drops while lingering before it gives up on a peer.
LINGER_DRAIN_LIMIT: Final = 256 * 1024

#: Seconds to wait before accepting again after the system ran out of descriptors,
#: memory or buffers (what ``trio.serve_listeners`` does).
ACCEPT_RETRY_DELAY: Final = 0.1

#: ``accept()`` errors that mean "out of resources, try again soon".
ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

#: Descriptors kept in reserve above ``max_connections`` (listeners, storage, logs).
FD_RESERVE: Final = 64

#: Default number of worker threads that run user objects' plain methods at once.
DEFAULT_WORKER_THREADS: Final = 16
MAX_WORKER_THREADS: Final = 4096

#: Oneway calls (and calls to ``@oneway`` methods) that may wait or run in the
#: background at once, over the whole daemon; past it, the connection that sends one
#: more waits for it to finish before it reads its next request (backpressure).
MAX_BACKGROUND_CALLS: Final = 1024


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a positive number of seconds: {value!r}")


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be 0 (off) or a number of seconds: {value!r}")


def _int_in(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], int], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be an integer in {low}..{high}: {value!r}")

    return check


@attrs.frozen
class DaemonLimits:
    """Every limit a daemon enforces, validated once here.

    - ``max_frame_size``: largest request body accepted (bytes).
    - ``max_in_flight``: requests one connection may have waiting for replies.
    - ``max_connections``: connections served at once; more are told "too many
      connections" and closed. (The daemon raises its descriptor limit at start.)
    - ``handshake_timeout``: seconds a new connection has to identify itself.
    - ``idle_timeout``: seconds without a request before a connection is dropped
      (0: never).
    - ``checksums``: put a CRC32 on every frame sent (received CRCs are always checked).
    - ``max_queued_reply_bytes``: reply bytes one connection may have waiting for its
      client to read them; past that the daemon stops reading the connection's
      requests until the client reads (backpressure).
    - ``worker_threads``: plain methods of ``threaded`` objects (user objects, see
      :meth:`Daemon.connect`) running at once, in worker threads; more calls wait
      for a free thread (the event loop and the other connections go on meanwhile).
    """

    max_frame_size: int = attrs.field(
        default=DEFAULT_MAX_FRAME_SIZE, validator=_int_in(MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)
    )
    max_in_flight: int = attrs.field(
        default=DEFAULT_MAX_IN_FLIGHT, validator=_int_in(1, MAX_MAX_IN_FLIGHT)
    )
    max_connections: int = attrs.field(
        default=DEFAULT_MAX_CONNECTIONS, validator=_int_in(1, MAX_MAX_CONNECTIONS)
    )
    handshake_timeout: float = attrs.field(default=DEFAULT_HANDSHAKE_TIMEOUT, validator=_positive)
    idle_timeout: float = attrs.field(default=DEFAULT_IDLE_TIMEOUT, validator=_non_negative)
    checksums: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    max_queued_reply_bytes: int = attrs.field(
        default=DEFAULT_MAX_QUEUED_REPLY_BYTES, validator=_int_in(0, MAX_MAX_QUEUED_REPLY_BYTES)
    )
    worker_threads: int = attrs.field(
        default=DEFAULT_WORKER_THREADS, validator=_int_in(1, MAX_WORKER_THREADS)
    )


@attrs.frozen
class DaemonStatistics:
    """A snapshot of a daemon's counters."""

    #: Connections open now.
    connections: int
    #: Connections accepted since the daemon started.
    total_connections: int
    #: Connections turned away because ``max_connections`` were open.
    refused_connections: int
    #: Connections that failed identification.
    denied_connections: int
    #: Requests and oneway calls dispatched.
    requests: int
    #: Objects registered (not counting the built-in ``__daemon__``).
    objects: int
    #: Connections that failed because of TLS: a failed or timed-out TLS handshake, a
    #: plain client on a TLS daemon, a TLS client on a plain one.
    tls_failures: int = 0
    #: Connections the guard turned away by address (at accept).
    refused_by_address: int = 0
    #: Connections the guard turned away after the handshake (``-s`` plugin).
    refused_by_guard: int = 0


class NameService(Protocol):
    """What a daemon needs from a name server proxy to publish its objects (a blocking
    ``pairns.NameServerProxy`` has it)."""

    def register(self, name: str, uri: Any) -> Any:
        """Register *name* for *uri*; ``NamingError`` if the name exists."""
        ...

    def unregister(self, name: str) -> Any:
        """Remove *name*; ``NamingError`` if it does not exist."""
        ...

    def resolve(self, name: str) -> Any:
        """The URI registered under *name* (a ``URI`` or its text)."""
        ...


def _check_name_service(ns: NameService | None) -> NameService | None:
    """*ns*, if it is a blocking name server proxy (an async one's calls would be
    coroutines nobody awaits: objects would silently not be published)."""
    if ns is None:
        return None
    for method in ("register", "unregister", "resolve"):
        fn = getattr(ns, method, None)
        if not callable(fn):
            raise TypeError(f"ns must be a name server proxy: it has no {method}() method")
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                "ns must be a blocking name server proxy (pairns.NameServerProxy), "
                "not an async one"
            )
    return ns


@attrs.frozen
class _Connected:
    """An object connected with :meth:`Daemon.connect` or :meth:`Daemon.connectPersistent`."""

    name: str | None
    persistent: bool
    published: bool  # registered in the name server by this daemon


class _DaemonObject:
    """The built-in object every daemon serves as ``__daemon__``."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def ping(self) -> bool:
        """True: the daemon is alive."""
        return True

    def resolve(self, name: str) -> str:
        """The ``PYRO://`` URI of the object connected under *name* (for ``PYROLOC``)."""
        if not isinstance(name, str):
            raise NamingError("name not found", repr(name))
        object_id = self._daemon._objects.object_id_for_name(name)
        if object_id is None:
            raise NamingError("name not found", name)
        return self._daemon.uri_for(object_id)


class _Link:
    """One connection as its tasks share it: the transport, the write side, the counts.

    Every writer (the reader loop, async calls, :class:`Deferred` replies, goodbyes)
    writes through :attr:`outbox`, which holds the write rule.
    """

    __slots__ = ("closed", "info", "oneway_tasks", "only", "outbox", "tasks", "transport")

    def __init__(self, transport: Transport, outbox: Outbox) -> None:
        self.transport = transport
        self.outbox = outbox
        #: Async method calls running (the idle timeout spares the connection meanwhile).
        self.tasks = 0
        self.oneway_tasks = 0
        #: Set once the connection is over: a reply finished later is dropped.
        self.closed = False
        #: Who is calling, for objects registered ``with_connection`` (set once the
        #: handshake is over).
        self.info: ConnectionInfo | None = None
        #: The object ids this connection may call (None: all; see rpc.guard).
        self.only: frozenset[str] | None = None

    def write_soon(self, data: bytes) -> None:
        """Write *data* from any task; dropped when the connection is over or broken
        (the reader loop sees the broken connection itself)."""
        if self.closed:
            return
        try:
            self.outbox.write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class Daemon:
    """Serves registered objects over TCP (Pyro 3's ``Daemon``, on Trio).

    ``identification`` (a passphrase) makes every client prove it knows it; without
    one every client is accepted. ``public_host`` is the host put into URIs when the
    daemon listens on a wildcard address (default: this machine's host name).
    ``name`` is announced to clients in the handshake. ``ns`` is a (blocking) name
    server proxy: :meth:`connect` and :meth:`connectPersistent` publish objects there.
    ``ssl_context`` (a server-side :class:`ssl.SSLContext` holding the certificate)
    makes the daemon speak TLS only: its URIs are ``PYROSSL://``, and a plain client is
    told that TLS is required.

    Two ways to serve objects:

    - user objects (Pyro 3's way): :meth:`connect` / :meth:`connectPersistent`, then
      :meth:`requestLoop` (blocking) or ``await nursery.start(daemon.serve)``;
      :meth:`shutdown` stops the loop and unregisters the names. Their plain methods
      run in worker threads (``limits.worker_threads`` at once), so a slow one stalls
      no other call;
    - built-in services (the name server): :meth:`register` with a fixed id; their
      plain methods run inline on the event loop, the fast path.

    Cancelling :meth:`serve` stops the daemon.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        identification: str | None = None,
        limits: DaemonLimits = DaemonLimits(),  # frozen: safe to share as a default
        public_host: str | None = None,
        name: str = "pairns",
        ns: NameService | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if ssl_context is not None and not hasattr(ssl_context, "wrap_socket"):
            raise TypeError(f"ssl_context must be an ssl.SSLContext: {ssl_context!r}")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535: {port!r}")
        if identification is not None and not isinstance(identification, str):
            raise TypeError("identification must be a string or None")
        if identification == "":
            raise ValueError("identification must not be empty (use None for no identification)")
        if not isinstance(limits, DaemonLimits):
            raise TypeError("limits must be a DaemonLimits")
        self._host = host
        self._port = port
        self._key = None if identification is None else identification.encode("utf-8")
        self.limits = limits
        self._public_host = public_host
        self._name = name
        self._objects = ObjectTable()
        self._objects.add(_DaemonObject(self), DAEMON_OBJECT_ID)
        self._address: tuple[str, int] | None = None
        self._serving = False
        self._connections = 0
        self._total_connections = 0
        self._refused = 0
        self._refusing = False
        self._denied = 0
        self._refused_by_address = 0
        self._refused_by_guard = 0
        self._requests = 0
        #: Failed and refused oneway calls: logged, but a client sending thousands of
        #: them must not write thousands of tracebacks.
        self._oneway_log = RefusalLog(log)
        #: Asked about every connection (see :mod:`pairns.rpc.guard`); None: all welcome.
        self.guard: ConnectionGuard | None = None
        self._ns = _check_name_service(ns)
        self._ssl = ssl_context
        self._tls_failures = 0
        #: Objects connected through connect()/connectPersistent(), by object id.
        self._connected: dict[str, _Connected] = {}
        #: The listening socket bound before serve() (by connect(), to know the port).
        self._prebound: socket.socket | None = None
        self._limiter: trio.CapacityLimiter | None = None
        #: The nursery of serve(): oneway calls run there, outliving their connection.
        self._nursery: trio.Nursery | None = None
        self._background = 0
        self._lock = threading.Lock()
        #: Hands the socket bound by connect() to serve() or shutdown(), never both.
        self._bind_lock = threading.Lock()
        #: How to stop a running requestLoop() from any thread.
        self._loop: tuple[trio.lowlevel.TrioToken, trio.CancelScope] | None = None
        self._stop_requested = False

    # -- objects ---------------------------------------------------------------------

    def register(
        self,
        obj: object,
        object_id: str,
        *,
        name: str | None = None,
        with_connection: bool | frozenset[str] = False,
        threaded: bool = False,
    ) -> None:
        """Serve *obj* under *object_id*; with *name*, ``PYROLOC`` can find it too.

        With *with_connection* (True, or the set of methods it applies to), the
        object's methods see the calling connection in
        :data:`pairns.rpc.context.current_connection` (its address, whether it proved
        the identification, and a dict for per-connection state); such calls skip the
        hot path. With *threaded*, its plain methods run in worker threads (as those
        of connected user objects do) instead of inline on the event loop. Raises
        ``ValueError`` for an invalid or already used id or name. Public methods are
        looked up once and cached: re-register an object to change its methods.
        Nothing is registered in the name server (see :meth:`connect`).
        """
        if object_id == DAEMON_OBJECT_ID:
            raise ValueError(f"{DAEMON_OBJECT_ID!r} is the daemon's own object id")
        self._objects.add(obj, object_id, name, with_connection=with_connection, threaded=threaded)

    def observe_calls(self, wrap: Wrapper) -> None:
        """Serve every method as ``wrap(method name, bound method, is_async)`` (how
        metrics count calls). Call it before the first call is served: a method already
        looked up is not wrapped."""
        self._objects.wrap = wrap

    def useNameServer(self, ns: NameService | None) -> None:
        """Publish connected objects in *ns* from now on (Pyro 3's call; or pass ``ns=``)."""
        self._ns = _check_name_service(ns)

    def connect(self, obj: object, name: str | None = None) -> str:
        """Serve the user object *obj* under a fresh object id; its ``PYRO://`` URI.

        With *name*, ``PYROLOC://host:port/name`` finds it, and when the daemon has a
        name server (``ns=``) the name is registered there for the URI (a
        ``NamingError`` if the name exists: use :meth:`connectPersistent` for objects
        that keep their name across restarts). The listening socket is bound here if
        it is not yet, so the URI holds the real port even with port 0; clients wait
        in the backlog until :meth:`serve` or :meth:`requestLoop` runs. Plain methods
        of *obj* run in worker threads, ``async def`` ones on the event loop.
        """
        with self._lock:
            self.bind()
            object_id = new_object_id()
            uri = self.uri_for(object_id)
            self._objects.add(obj, object_id, name, threaded=True)
            published = name is not None and self._ns is not None
            if published:
                assert name is not None and self._ns is not None
                try:
                    self._ns.register(name, uri)
                except BaseException:
                    self._objects.remove(object_id)
                    raise
            self._connected[object_id] = _Connected(name, persistent=False, published=published)
            return uri

    def connectPersistent(self, obj: object, name: str) -> str:
        """Serve the user object *obj* under *name*, keeping the URI it had before.

        If the name server holds *name* for an object of this daemon's address (a
        restarted server on the same host and port), *obj* is served under that same
        object id, so clients holding the old URI reach it again. Otherwise the stale
        entry (if any) is replaced by a fresh URI. :meth:`shutdown` leaves the name
        registered. Needs a name server (``ns=``); returns the ``PYRO://`` URI.
        """
        ns = self._ns
        if ns is None:
            raise ValueError("connectPersistent needs a name server (Daemon(..., ns=...))")
        with self._lock:
            self.bind()
            here = URI.from_string(self.uri_for("x"))
            old: URI | None
            try:
                old = URI.from_string(str(ns.resolve(name)))
            except NamingError:
                old = None
            object_id: str | None = None
            if (
                old is not None
                and old.protocol == here.protocol
                and old.address == here.address
                and old.path not in self._objects
                and old.path != DAEMON_OBJECT_ID
            ):
                try:
                    object_id = check_object_id(old.path)
                except ValueError:
                    object_id = None
            if object_id is not None:
                self._objects.add(obj, object_id, name, threaded=True)
                uri = self.uri_for(object_id)
            else:
                object_id = new_object_id()
                uri = self.uri_for(object_id)
                self._objects.add(obj, object_id, name, threaded=True)
                try:
                    if old is not None:
                        try:
                            ns.unregister(name)
                        except NamingError:
                            pass  # gone meanwhile
                    ns.register(name, uri)
                except BaseException:
                    self._objects.remove(object_id)
                    raise
            self._connected[object_id] = _Connected(name, persistent=True, published=True)
            return uri

    def disconnect(self, obj: object) -> None:
        """Stop serving the connected object *obj* and unregister its name from the
        name server (also for a persistent one). ``KeyError`` if it is not connected."""
        with self._lock:
            object_id = self._objects.object_id_of(obj)
            if object_id is None or object_id not in self._connected:
                raise KeyError(f"{obj!r} is not connected to this daemon")
            entry = self._connected.pop(object_id)
            self._objects.remove(object_id)
        if entry.published and entry.name is not None and self._ns is not None:
            try:
                self._ns.unregister(entry.name)
            except NamingError:
                pass  # already gone: the goal is reached

    def shutdown(self, disconnect: bool = True) -> None:
        """Stop a running :meth:`requestLoop` (from any thread, also from inside a
        remote method) and, with *disconnect*, unregister from the name server the
        names of the objects connected with :meth:`connect` (names connected with
        :meth:`connectPersistent` stay). A name server that cannot be reached is
        logged and skipped. An async :meth:`serve` is stopped by cancelling it; a
        socket bound by :meth:`connect` and never served is closed.
        """
        # The flag first: a loop starting now either sees it or is already in _loop.
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            token, scope = loop
            try:
                token.run_sync_soon(scope.cancel)
            except trio.RunFinishedError:
                pass
        with self._bind_lock:
            prebound, self._prebound = self._prebound, None
        if prebound is not None:  # bound by connect() but never served
            prebound.close()
        if not disconnect:
            return
        # Held while unregistering: a second shutdown() (a remote method's, the main
        # thread's) returns only once the names are gone.
        with self._lock:
            leaving = [
                (object_id, entry)
                for object_id, entry in self._connected.items()
                if not entry.persistent
            ]
            for object_id, _ in leaving:
                del self._connected[object_id]
                self._objects.remove(object_id)
            ns = self._ns
            for _, entry in leaving:
                if not entry.published or entry.name is None or ns is None:
                    continue
                try:
                    ns.unregister(entry.name)
                except NamingError:
                    pass
                except Exception as exc:
                    log.warning("could not unregister %s from the name server: %s", entry.name, exc)

    def requestLoop(self) -> None:
        """Serve until :meth:`shutdown` is called (from another thread or a remote
        method) or the process is interrupted (Pyro 3's blocking loop; runs Trio)."""
        self._stop_requested = False
        trio.run(self._request_loop)

    async def _request_loop(self) -> None:
        with trio.CancelScope() as scope:
            self._loop = (trio.lowlevel.current_trio_token(), scope)
            try:
                if not self._stop_requested:
                    await self.serve()
            finally:
                self._loop = None

    def bind(self) -> tuple[str, int]:
        """Bind and listen now (before :meth:`serve`), so that the port is known even
        when it was 0; ``(host, port)``. Does nothing if already bound or serving."""
        with self._bind_lock:
            if self._address is not None:
                return self._address
            return self._bind()

    def _bind(self) -> tuple[str, int]:
        host = self._host or None
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            if hasattr(socket, "SO_REUSEADDR"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(socket.SOMAXCONN)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        self._prebound = sock
        self._address = (str(bound[0]), int(bound[1]))
        # A serve() after a stop listens on the same port again: URIs stay valid.
        self._port = self._address[1]
        return self._address

    def unregister(self, object_id: str) -> None:
        """Stop serving the object *object_id* (``KeyError`` if there is none); the name
        server is not told (:meth:`disconnect` does that for connected objects)."""
        if object_id == DAEMON_OBJECT_ID:
            raise ValueError(f"{DAEMON_OBJECT_ID!r} cannot be unregistered")
        with self._lock:
            self._objects.remove(object_id)
            # A connected object stops being one (its name stays in the name server).
            self._connected.pop(object_id, None)

    def uri_for(self, object_id: str) -> str:
        """``PYRO://host:port/object_id`` (``PYROSSL://`` for a TLS daemon) for an
        object served by this daemon."""
        host, port = self._uri_address()
        if ":" in host:
            host = f"[{host}]"
        return f"{self.protocol}://{host}:{port}/{object_id}"

    @property
    def protocol(self) -> str:
        """``PYROSSL`` for a TLS daemon, else ``PYRO``."""
        return "PYRO" if self._ssl is None else "PYROSSL"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The server TLS context (None: plain TCP)."""
        return self._ssl

    def _uri_address(self) -> tuple[str, int]:
        if self._address is not None:
            host, port = self._address
        elif self._port:
            host, port = self._host, self._port
        else:
            raise RuntimeError(
                "the daemon's port is not known until serve() has started "
                "(use `await nursery.start(daemon.serve)` first)"
            )
        if self._public_host:
            host = self._public_host
        elif host in WILDCARD_HOSTS:
            host = socket.gethostname()
        return host, port

    # -- introspection ---------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the daemon listens on (once :meth:`serve` has started)."""
        if self._address is None:
            raise RuntimeError("the daemon is not listening yet")
        return self._address

    @property
    def identification_required(self) -> bool:
        """True when clients must prove they know the identification."""
        return self._key is not None

    def statistics(self) -> DaemonStatistics:
        """A snapshot of the counters."""
        return DaemonStatistics(
            connections=self._connections,
            total_connections=self._total_connections,
            refused_connections=self._refused,
            denied_connections=self._denied,
            requests=self._requests,
            objects=len(self._objects) - 1,
            tls_failures=self._tls_failures,
            refused_by_address=self._refused_by_address,
            refused_by_guard=self._refused_by_guard,
        )

    # -- serving ---------------------------------------------------------------------

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report ``(host, port)`` through *task_status*, serve until cancelled."""
        if self._serving:
            raise RuntimeError("this daemon is already serving")
        self._serving = True
        try:
            raise_descriptor_limit(self.limits.max_connections + FD_RESERVE)
            self._limiter = trio.CapacityLimiter(self.limits.worker_threads)
            with self._bind_lock:
                prebound, self._prebound = self._prebound, None
            if prebound is not None:
                listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(prebound))]
            else:
                host = self._host or None
                listeners = await trio.open_tcp_listeners(self._port, host=host)
            try:
                bound = listeners[0].socket.getsockname()
                self._address = (str(bound[0]), int(bound[1]))
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for listener in listeners:
                        nursery.start_soon(self._accept_loop, listener, nursery)
                    log.info(
                        "daemon listening on %s:%d (%s, identification %s)",
                        *self._address,
                        "plain TCP" if self._ssl is None else "TLS",
                        "required" if self._key else "not required: every client is accepted",
                    )
                    task_status.started(self._address)
            finally:
                self._nursery = None
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
        finally:
            self._serving = False

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        try:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno in ACCEPT_CAPACITY_ERRNOS:
                        log.error(
                            "accept failed (%s); retrying in %d ms",
                            errno.errorcode.get(exc.errno or 0, exc.errno),
                            ACCEPT_RETRY_DELAY * 1000,
                        )
                        await trio.sleep(ACCEPT_RETRY_DELAY)
                        continue
                    raise
                if self._ssl is None:
                    nursery.start_soon(self._handle, stream)
                else:
                    nursery.start_soon(self._handle_tls, stream)
        finally:
            # Stop accepting at once when the daemon stops: new clients are refused
            # instead of queueing while the open connections say goodbye.
            await trio.aclose_forcefully(listener)

    async def _handle_tls(self, stream: trio.SocketStream) -> None:
        """A connection to a TLS daemon: the TLS handshake, then :meth:`_handle`."""
        from pairns.rpc.tls_server import accept_tls  # TLS daemons only

        assert self._ssl is not None
        accepted = await accept_tls(
            stream, self._ssl, handshake_timeout=self.limits.handshake_timeout
        )
        if accepted.transport is None:
            if accepted.reason is not None:
                self._tls_failures += 1
                log.warning("%s", accepted.reason)
            return
        await self._handle(accepted.transport)

    async def serve_connection(self, stream: trio.abc.Stream | Transport) -> None:
        """Serve one connection that came some other way, until it ends; then close it.

        *stream* is any Trio stream (a ``trio.SSLStream``, one end of
        ``trio.testing.memory_stream_pair``) or a :class:`~pairns.rpc.transport.Transport`.
        The connection counts against ``max_connections`` like an accepted one. Never
        raises an ``Exception``.
        """
        await self._handle(stream)

    async def _handle(self, stream: trio.abc.Stream | Transport) -> None:
        """One connection, from accept to close; never raises an ``Exception``."""
        transport = as_transport(stream)
        self._connections += 1
        self._total_connections += 1
        limits = self.limits
        conn = Connection(
            SERVER,
            identification=self._key,
            max_frame_size=limits.max_frame_size,
            max_in_flight=limits.max_in_flight,
            checksums=limits.checksums,
            server_name=self._name,
        )
        link: _Link | None = None
        try:
            async with trio.open_nursery() as nursery:
                # Writes that wait for the peer run in this nursery; a peer that reads
                # nothing for the idle timeout fails them.
                outbox = Outbox(transport, nursery, stall_timeout=limits.idle_timeout or None)
                link = _Link(transport, outbox)
                try:
                    if self._connections > limits.max_connections:
                        self._refuse()
                        await self._goodbye(
                            link,
                            conn,
                            ErrorCode.TOO_MANY_CONNECTIONS,
                            f"too many connections (the limit is {limits.max_connections})",
                        )
                        return
                    self._refusing = False
                    guard = self.guard
                    if guard is not None:
                        admission = guard.admit(transport.peer_address)
                        if admission.refusal is not None:
                            self._refused_by_address += 1
                            await self._turn_away(link, conn, admission.refusal)
                            return
                        link.only = admission.only
                    if await self._handshake(link, conn):
                        await self._serve_requests(link, conn, nursery)
                except RemoteProtocolError as exc:
                    log.info("closing a connection: %s", exc)
                    await self._goodbye(link, conn, exc.error_code_hint, str(exc))
                except WriteStalled:
                    log.info("dropping a connection whose client stopped reading")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the peer went away; nothing to tell it
                except Exception:
                    log.exception("internal error on a connection; closing it")
                    await self._goodbye(link, conn, ErrorCode.INTERNAL_ERROR, "internal error")
                except trio.Cancelled:
                    await self._farewell(link, conn)
                    raise
                finally:
                    # Async calls still running have nobody to answer to.
                    nursery.cancel_scope.cancel()
                    link.closed = True
                    outbox.close()
        except Exception:
            log.exception("internal error while closing a connection")
        finally:
            if link is not None:
                link.closed = True
            self._connections -= 1
            await transport.aclose()

    def _refuse(self) -> None:
        self._refused += 1
        if not self._refusing:  # once per episode, not once per connection
            self._refusing = True
            log.warning(
                "refusing connections: %d are open (max_connections)", self._connections - 1
            )

    async def _handshake(self, link: _Link, conn: Connection) -> bool:
        """Challenge, judge the response, send the verdict; True when welcomed."""
        transport = link.transport
        outbox = link.outbox
        timeout = self.limits.handshake_timeout
        with trio.move_on_after(timeout):
            await outbox.send(conn.send(conn.challenge()))
            peer = transport.peer_address
            first = True
            while True:
                event = conn.next_event()
                if event is not NEED_DATA:
                    break
                data = await transport.receive_some(RECV_SIZE)
                if first and self._ssl is None and data[:1] == _TLS_HELLO:
                    self._tls_failures += 1
                    log.warning(
                        "a TLS client %s connected to this plain (non-TLS) port; closing",
                        _where(peer),
                    )
                    return False
                first = False
                conn.receive_data(data)
            if type(event) is not Response:
                return False  # the peer closed or said goodbye
            verdict = conn.verdict()
            if type(verdict) is Denied:
                self._denied += 1
                log.warning("connection denied: %s", verdict.reason)
                await outbox.send(conn.send(verdict))
                await self._linger(link)
                return False
            identified = bool(conn.peer_authenticated)
            guard = self.guard
            if guard is not None:
                refusal = guard.identified(transport.peer_address, identified)
                if refusal is not None:
                    self._refused_by_guard += 1
                    await outbox.send(conn.send(Denied(refusal)))
                    await self._linger(link)
                    return False
            await outbox.send(conn.send(verdict))
            link.info = ConnectionInfo(peer, identified)
            return True
        await self._goodbye(
            link, conn, ErrorCode.HANDSHAKE_TIMEOUT, f"no identification within {timeout:g} s"
        )
        return False

    async def _serve_requests(self, link: _Link, conn: Connection, nursery: trio.Nursery) -> None:
        """The hot loop: read, answer every complete request, write as replies pile up.

        Replies are written every :data:`WRITE_CHUNK` bytes and at the end of each read's
        requests. While more than ``max_queued_reply_bytes`` wait for the client to read
        them, the loop neither answers nor reads (backpressure): the client's requests
        wait in its own socket buffer, not in the node's memory.
        """
        transport = link.transport
        outbox = link.outbox
        write = outbox.write
        read = transport.nowait.read
        wait_readable = transport.nowait.wait_readable
        receive_data = conn.receive_data
        next_event = conn.next_event
        reply = conn.reply
        # A connection limited to some objects never takes the hot path (_answer checks).
        sync_methods = self._objects.sync_methods if link.only is None else {}
        deferred_type = Deferred
        idle_timeout = self.limits.idle_timeout
        cap = self.limits.max_queued_reply_bytes
        # Requests answered since this loop last waited for the socket: a client
        # that keeps us busy still lets the other connections run every so often.
        unwaited = 0
        # True when the last read held one request: a client with one call in flight
        # cannot have sent the next one before it got our reply, so we wait for the
        # socket before reading instead of trying a read that would fail.
        single = True
        while True:
            out: list[bytes] = []
            size = 0
            handled = 0
            while True:
                event = next_event()
                etype = type(event)
                if etype is Request:
                    handled += 1
                    request = cast(Request, event)
                    corr_id, object_id, method, args, kwargs, request_id = request
                    fn = sync_methods.get((object_id, method))
                    if fn is None or request_id is not None:
                        answer = self._answer(link, conn, nursery, request)
                        if answer is None:
                            continue
                    else:
                        try:
                            result = fn(*args, **kwargs) if kwargs else fn(*args)
                        except Exception as exc:
                            error = describe_call_error(exc, fn, args, kwargs)
                            answer = self._error_bytes(conn, corr_id, error)
                        else:
                            if type(result) is deferred_type:
                                self._defer(link, conn, request, fn, result)
                                continue
                            try:
                                answer = reply(corr_id, result)
                            except LocalProtocolError as exc:
                                error = unencodable_result(exc, object_id, method)
                                answer = self._error_bytes(conn, corr_id, error)
                    out.append(answer)
                    size += len(answer)
                    if size >= WRITE_CHUNK:
                        # A read full of large requests: write as we go, and stop
                        # while the client is not reading (or let the others run).
                        write(b"".join(out))
                        out.clear()
                        size = 0
                        if outbox.queued > cap:
                            await outbox.wait_below(cap)
                        else:
                            await trio.lowlevel.checkpoint()
                elif event is NEED_DATA:
                    break
                elif etype is Oneway:
                    handled += 1
                    pending = self._oneway(link, nursery, cast(Oneway, event))
                    if pending is not None:
                        await pending
                else:  # ConnectionClosed or Goodbye: the peer is done
                    if etype is Goodbye:
                        log.debug("a client said goodbye: %s", event)
                    self._requests += handled
                    if out:
                        await outbox.send(b"".join(out))
                    return
            self._requests += handled
            if out:
                write(out[0] if len(out) == 1 else b"".join(out))
                if outbox.queued > cap:
                    await outbox.wait_below(cap)
            # Read after answering: requests pipelined behind the handshake are
            # already buffered when this loop starts.
            if idle_timeout:
                data = None
                with trio.move_on_after(idle_timeout):
                    data = await transport.receive_some(RECV_SIZE)
                if data is None:
                    if outbox.error is not None:
                        raise outbox.error
                    if conn.in_flight or link.tasks or link.oneway_tasks or outbox.busy:
                        continue
                    await self._goodbye(
                        link, conn, ErrorCode.IDLE_TIMEOUT, f"idle for {idle_timeout:g} s"
                    )
                    return
            else:
                # Read the socket directly, and only wait through Trio when nothing is
                # there (the fast path; a stream transport always waits).
                if single or unwaited >= _MAX_UNWAITED:
                    await wait_readable()
                    unwaited = 0
                while True:
                    try:
                        data = read(RECV_SIZE)
                        break
                    except BlockingIOError:
                        await wait_readable()
                        unwaited = 0
                    except OSError as exc:
                        raise trio.BrokenResourceError(f"read failed: {exc}") from exc
                unwaited += handled
                single = handled <= 1
            receive_data(data)

    # -- dispatch (off the hot path) -------------------------------------------------

    def _answer(
        self, link: _Link, conn: Connection, nursery: trio.Nursery, request: Request
    ) -> bytes | None:
        """A request the hot path could not answer from its cache; None if it went async."""
        corr_id, object_id, method, args, kwargs, request_id = request
        if link.only is not None and object_id not in link.only:
            denied = ConnectionDeniedError(f"this address may not call {object_id!r}")
            return self._error_bytes(conn, corr_id, error_to_wire(denied))
        try:
            found = self._objects.lookup(object_id, method)
        except LookupFailed as exc:
            return self._error_bytes(conn, corr_id, exc.error)
        fn = found.fn
        token = None if request_id is None else current_request_id.set(request_id)
        conn_token = (
            current_connection.set(link.info)
            if self._objects.wants_connection(object_id, method)
            else None
        )
        try:
            if found.oneway and self._background < MAX_BACKGROUND_CALLS:
                # Answered now; the method runs on (when too many already do, it runs
                # as an ordinary call below: the caller waits, which is backpressure).
                self._background += 1
                (self._nursery or nursery).start_soon(
                    self._run_background, object_id, method, args, kwargs, found
                )
                return conn.reply(corr_id, None)
            if found.is_async or found.threaded:
                # The task copies the current context, request id included.
                link.tasks += 1
                nursery.start_soon(self._run_async, link, conn, request, found)
                return None
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except Exception as exc:
                return self._error_bytes(conn, corr_id, describe_call_error(exc, fn, args, kwargs))
        finally:
            if token is not None:
                current_request_id.reset(token)
            if conn_token is not None:
                current_connection.reset(conn_token)
        if type(result) is Deferred:
            self._defer(link, conn, request, fn, result)
            return None
        try:
            return conn.reply(corr_id, result)
        except LocalProtocolError as exc:
            return self._error_bytes(conn, corr_id, unencodable_result(exc, object_id, method))

    def _defer(
        self,
        link: _Link,
        conn: Connection,
        request: Request,
        fn: Callable[..., Any],
        later: Deferred,
    ) -> None:
        """Answer *request* when *later* is finished, from the task that finishes it.

        The reply is written in one synchronous step (or under the write semaphore), so
        the reader loop keeps its lock-free direct writes meanwhile; the pending request
        counts in ``conn.in_flight`` (the idle timeout spares the connection).
        """

        def deliver(result: outcome.Outcome[Any]) -> None:
            if link.closed:
                return
            try:
                data = self._outcome_bytes(conn, request, fn, result)
            except LocalProtocolError:
                return  # the connection said goodbye meanwhile: nobody to answer
            link.write_soon(data)

        later.add_done_callback(deliver)

    def _outcome_bytes(
        self,
        conn: Connection,
        request: Request,
        fn: Callable[..., Any],
        result: outcome.Outcome[Any],
    ) -> bytes:
        """The reply to *request* that carries *result*: its value, or the error it raised
        (also when the value cannot be sent). ``LocalProtocolError`` if *conn* is over."""
        corr_id, object_id, method, args, kwargs, _ = request
        if isinstance(result, outcome.Value):
            try:
                return conn.reply(corr_id, result.value)
            except LocalProtocolError as exc:
                error = unencodable_result(exc, object_id, method)
        else:
            error = describe_call_error(cast(outcome.Error, result).error, fn, args, kwargs)
        return self._error_bytes(conn, corr_id, error)

    def _error_bytes(self, conn: Connection, corr_id: int, error: ErrorTriple) -> bytes:
        try:
            return conn.send(ErrorReply(corr_id, *error))
        except LocalProtocolError as exc:
            if exc.error_code_hint not in (ErrorCode.BAD_MESSAGE, ErrorCode.FRAME_TOO_LARGE):
                raise
        return conn.send(ErrorReply(corr_id, *sanitize_error(error)))

    async def _run_async(
        self, link: _Link, conn: Connection, request: Request, found: Method
    ) -> None:
        _, object_id, method, args, kwargs, _ = request
        fn = found.fn
        try:
            result: outcome.Outcome[Any]
            try:
                if found.threaded:
                    value = await self._in_thread(fn, args, kwargs)
                else:
                    value = await (fn(*args, **kwargs) if kwargs else fn(*args))
                result = outcome.Value(value)
            except Exception as exc:
                result = outcome.Error(exc)
            link.outbox.write(self._outcome_bytes(conn, request, fn, result))
        except (trio.BrokenResourceError, trio.ClosedResourceError, LocalProtocolError):
            pass  # the connection is gone or broken: nobody to answer
        except Exception:
            # Never let a task fail the connection's nursery (mixed with Cancelled it
            # would escape the handler as a BaseExceptionGroup).
            log.exception("internal error answering %s.%s()", object_id, method)
        finally:
            link.tasks -= 1

    async def _in_thread(
        self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any] | None
    ) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread (``limits.worker_threads`` at once).

        A cancelled call (its client went away, the daemon stops) abandons the thread:
        Python cannot stop it, so the method runs to its end and its result is dropped.
        """
        limiter = self._limiter
        if limiter is None:  # serve_connection() without serve()
            limiter = self._limiter = trio.CapacityLimiter(self.limits.worker_threads)
        call = functools.partial(fn, *args, **kwargs) if kwargs else functools.partial(fn, *args)
        return await trio.to_thread.run_sync(call, limiter=limiter, abandon_on_cancel=True)

    async def _run_background(
        self,
        object_id: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any] | None,
        found: Method,
    ) -> None:
        """A oneway call of a user object: its outcome only goes to the log."""
        try:
            if found.threaded:
                await self._in_thread(found.fn, args, kwargs)
            elif found.is_async:
                await (found.fn(*args, **kwargs) if kwargs else found.fn(*args))
            else:
                found.fn(*args, **kwargs) if kwargs else found.fn(*args)
        except Exception:
            self._oneway_log.refused(
                "failed", f"oneway call {object_id}.{method}() failed", exc_info=True
            )
        finally:
            self._background -= 1

    def _oneway(
        self, link: _Link, nursery: trio.Nursery, oneway: Oneway
    ) -> Coroutine[Any, Any, None] | None:
        """Run a oneway call; returns a coroutine to await when too many already run."""
        object_id, method, args, kwargs = oneway
        if link.only is not None and object_id not in link.only:
            log.debug("oneway %s.%s() refused: not allowed from this address", object_id, method)
            return None
        try:
            found = self._objects.lookup(object_id, method)
        except LookupFailed as exc:
            self._oneway_log.refused(
                "refused", f"oneway call {object_id[:100]}.{method[:100]}() refused: {exc}"
            )
            return None
        fn, is_async = found.fn, found.is_async
        if found.threaded or found.oneway:
            # A user object's: in the background, never on the event loop, and not
            # cancelled when its connection ends.
            self._background += 1
            if self._background > MAX_BACKGROUND_CALLS:
                # Back-pressure: the reader waits for this one.
                return self._run_background(object_id, method, args, kwargs, found)
            (self._nursery or nursery).start_soon(
                self._run_background, object_id, method, args, kwargs, found
            )
            return None
        if is_async:
            link.oneway_tasks += 1
            if link.oneway_tasks > self.limits.max_in_flight:
                return self._run_oneway(link, oneway, fn)  # back-pressure: run it inline
            nursery.start_soon(self._run_oneway, link, oneway, fn)
            return None
        conn_token = (
            current_connection.set(link.info)
            if self._objects.wants_connection(object_id, method)
            else None
        )
        try:
            fn(*args, **kwargs) if kwargs else fn(*args)
        except Exception:
            self._oneway_log.refused(
                "failed", f"oneway call {object_id}.{method}() failed", exc_info=True
            )
        finally:
            if conn_token is not None:
                current_connection.reset(conn_token)
        return None

    async def _run_oneway(self, link: _Link, oneway: Oneway, fn: Callable[..., Any]) -> None:
        object_id, method, args, kwargs = oneway
        # Set here, not by the caller: this may also run inline in the reader task.
        token = (
            current_connection.set(link.info)
            if self._objects.wants_connection(object_id, method)
            else None
        )
        try:
            await (fn(*args, **kwargs) if kwargs else fn(*args))
        except Exception:
            self._oneway_log.refused(
                "failed", f"oneway call {object_id}.{method}() failed", exc_info=True
            )
        finally:
            link.oneway_tasks -= 1
            if token is not None:
                current_connection.reset(token)

    # -- closing ---------------------------------------------------------------------

    async def _goodbye(self, link: _Link, conn: Connection, code: int, message: str) -> None:
        """Tell the peer why we close, then linger briefly so it can read it."""
        try:
            data = conn.send(Goodbye(code, message))
        except LocalProtocolError:
            return  # already said goodbye, or closed
        with trio.move_on_after(GOODBYE_LINGER):
            try:
                await link.outbox.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        await self._linger(link)

    async def _turn_away(self, link: _Link, conn: Connection, reason: str) -> None:
        """Refuse a connection at accept: one ``Goodbye`` and close, no lingering (a
        refused address must cost the node as little as possible)."""
        try:
            data = conn.send(Goodbye(ErrorCode.IDENTIFICATION_FAILED, reason))
        except LocalProtocolError:
            return
        with trio.move_on_after(GOODBYE_LINGER):
            try:
                await link.outbox.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _farewell(self, link: _Link, conn: Connection) -> None:
        """The daemon is stopping: tell the client why its connection ends (briefly)."""
        if link.outbox.busy:
            return  # a write is cut short: another frame would be garbage
        try:
            data = conn.send(Goodbye(ErrorCode.SHUTDOWN, "the server is shutting down"))
        except LocalProtocolError:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + SHUTDOWN_GOODBYE_TIMEOUT
            try:
                await link.outbox.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass

    async def _linger(self, link: _Link) -> None:
        """Half-close and read until the peer closes, so our last frame is not reset away."""
        with trio.move_on_after(GOODBYE_LINGER):
            try:
                await link.outbox.send_eof()
                drained = 0
                while drained < LINGER_DRAIN_LIMIT:
                    chunk = await link.transport.receive_some(RECV_SIZE)
                    if not chunk:
                        break
                    drained += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


#: The first byte a TLS client sends (a handshake record): a plain daemon that reads it
#: names the mistake instead of reporting a bad frame.
_TLS_HELLO: Final = b"\x16"


def _where(peer: tuple[str, int] | None) -> str:
    if peer is None:
        return "(unknown address)"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def raise_descriptor_limit(wanted: int) -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (returns the soft limit).

    Idle connections cost one descriptor each; the usual soft limit of 1024 would cap
    a node far below the thousands of connections it must hold.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover (not on Windows)
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    targets = [hard] if hard != resource.RLIM_INFINITY else [1 << 20, max(soft, wanted)]
    for target in targets:
        if soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        soft = target
        break
    if soft < wanted:
        log.warning(
            "only %d file descriptors are allowed; the daemon may not reach %d connections",
            soft,
            wanted,
        )
    return soft
