"""One node: storage, the namespace, the daemon, the name server object, the discovery
responder and (paired mode) the replication link, in one nursery.

``async with open_node(config) as node:`` yields once the node is listening; leaving the
block (or ``node.shutdown()``) stops it. :func:`run` is the same thing in the
``nursery.start`` style, and :class:`NameServerStarter` runs a node in a thread for
synchronous programs (Pyro 3's ``NameServerStarter``). The ``pairns`` command runs
:func:`open_node` too, so all of these run a node alike.

Garbage collector
-----------------
The node decides how Python's cyclic collector runs around it (:func:`open_node`, the
only place that does; the bulk paths only pause it, see :mod:`pairns._collector`):

* Start-up - opening the storage, loading the namespace, starting to listen - runs
  with the collector paused. It makes about ten long-lived objects per stored name;
  each collection pass over them would be work for nothing (several passes,
  0.1-0.2 s with 100,000 names).
* Once the node listens, what is alive is frozen (``gc.freeze()``) and the collector
  resumes. Everything alive then (modules, the loaded namespace) stays alive; full
  collections over it otherwise stall the event loop for tens of milliseconds, which
  shows as replication lag spikes. There is no ``gc.collect()`` first: with 100,000
  names it costs 0.15 s of start-up to free a few hundred start-up cycles.

The collector is process-wide, so this applies to a program that embeds a node too.
A program that turned the collector off itself keeps it off: the node then neither
pauses, resumes nor freezes it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from pairns import _collector as collector
from pairns import names
from pairns.config import DEFAULT_BC_ADDR, Config, ConfigError, ResponderPlace
from pairns.discovery.interfaces import interface_index
from pairns.discovery.protocol import ResponderPolicy
from pairns.discovery.responder import UdpResponder, find_other
from pairns.discovery.search import Broadcast
from pairns.errors import NamingError
from pairns.namespace import HybridClock, Namespace
from pairns.naming.requests import RequestTable
from pairns.naming.service import CONNECTION_METHODS, NAMESERVER_OBJECT_ID, NameServer
from pairns.naming.tombstones import (
    KV_HORIZON,
    TombstoneCollector,
    grace_from_env,
    horizon_from_text,
)
from pairns.replication.feed_history import KV_FEED_HISTORY, FeedHistory, new_incarnation_id
from pairns.rpc import Daemon, DaemonLimits
from pairns.security.admin import AdminGate
from pairns.security.guard import AddressList, NodeGuard, PluginError, load_plugin
from pairns.storage import Storage, open_storage
from pairns.tls import node_tls
from pairns.uri import URI, WILDCARD_HOSTS

if TYPE_CHECKING:
    from pairns.metrics.calls import CallStats
    from pairns.metrics.endpoint import MetricsEndpoint
    from pairns.replication.link import Replicator

log = logging.getLogger("pairns.node")

#: Seconds between a client's shutdown request and the stop, so its reply goes out.
SHUTDOWN_GRACE = 0.1


@attrs.define(eq=False)
class Node:
    """A running node; made by :func:`open_node`."""

    config: Config
    uri: URI
    address: tuple[str, int]
    namespace: Namespace
    daemon: Daemon
    service: NameServer
    node_id: str
    _cancel: trio.CancelScope
    #: The peer link of a paired node (None for a single node).
    replicator: Replicator | None = None
    #: The discovery responders (none with ``-x`` or on loopback without ``-c``; IPv4
    #: and IPv6 for a node on every interface).
    responders: list[UdpResponder] = attrs.field(factory=list)
    #: The metrics endpoint (None unless ``--metrics``).
    metrics: MetricsEndpoint | None = None
    _stopped: trio.Event = attrs.field(factory=trio.Event)
    _shutdown_requested: trio.Event = attrs.field(factory=trio.Event)

    def shutdown(self) -> None:
        """Stop the node now (safe to call from any task of its Trio run)."""
        self._stopped.set()
        self._cancel.cancel()

    def request_shutdown(self) -> None:
        """Stop the node after a short grace period that lets replies in flight go out.

        A client's ``shutdown()`` call is answered before the node closes its
        connections, so the client learns that the request was accepted.
        """
        self._shutdown_requested.set()

    async def _shutdown_after_grace(self) -> None:
        await self._shutdown_requested.wait()
        await trio.sleep(SHUTDOWN_GRACE)
        self.shutdown()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`shutdown` is called."""
        await self._stopped.wait()


def _limits(config: Config) -> DaemonLimits:
    return DaemonLimits(
        max_frame_size=config.max_frame_size,
        max_in_flight=config.max_in_flight,
        max_connections=config.max_connections,
        handshake_timeout=config.handshake_timeout,
        idle_timeout=config.idle_timeout,
        checksums=config.checksums,
        max_queued_reply_bytes=config.max_queued_reply_bytes,
    )


def _write_uri_file(path: Path, uri: URI) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{uri}\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write the URI file %s: %s", path, exc.strerror or exc)


def node_guard(config: Config) -> NodeGuard:
    """The guards *config* asks for (``--allow``, ``--allow-twin``, ``-s``); imports
    the plugin, so a plugin that cannot be loaded is a :class:`ConfigError`."""
    plugin = None
    if config.security_plugin:
        try:
            plugin = load_plugin(config.security_plugin)
        except PluginError as exc:
            origin = config.origin_of("security_plugin")
            raise ConfigError(f"{origin.label}: {exc} (from {origin.source})") from None
    from pairns.replication.acceptor import PEER_OBJECT_ID  # an id, cheap to import

    return NodeGuard(
        allow=AddressList.of(config.allow),
        allow_twin=AddressList.of(config.allow_twin),
        plugin=plugin,
        peer_objects=frozenset({PEER_OBJECT_ID}),
    )


@asynccontextmanager
async def open_node(
    config: Config,
    *,
    wall_clock: Callable[[], float] | None = None,
    guard: NodeGuard | None = None,
) -> AsyncIterator[Node]:
    """Start a node; yields it once it listens, stops it when the block ends.

    *wall_clock* (default :func:`time.time`) is the node's wall clock: its version
    stamps, the times of its entries and the clock-skew bound read it (tests give a
    node a wrong clock this way). *guard* replaces the guards built from *config*
    (:func:`node_guard`; the ``pairns`` command builds them first, to report a bad
    plugin as a configuration error).

    Start-up runs with the cyclic collector paused; once the node listens, what is
    alive is frozen and the collector resumes (see the module docs).
    """
    if guard is None:
        guard = node_guard(config)
    start_up = collector.Pause()
    try:
        async with _open_node(config, wall_clock, start_up, guard) as node:
            yield node
    finally:
        start_up.end()


@asynccontextmanager
async def _open_node(
    config: Config,
    wall_clock: Callable[[], float] | None,
    start_up: collector.Pause,
    guard: NodeGuard,
) -> AsyncIterator[Node]:
    places = config.responder_places
    # The IPv6 responder joins its group on this interface (a bad name fails here).
    interface = interface_index(config.mc_interface, config.host) if places else 0
    if places and config.look_for_others:
        await _check_no_other_name_server(config, places, interface)
    storage_path = config.database_path if config.persistent else None
    async with open_storage(storage_path) as storage:
        loaded = await storage.open()
        clock = HybridClock(loaded.node_id, wall_clock or time.time)
        namespace = Namespace(loaded.node_id, clock, default_group=config.default_group)
        namespace.load(loaded.rows, loaded.last_seq)
        namespace.restore_horizon(horizon_from_text(loaded.kv.get(KV_HORIZON)))
        # This run numbers its changes from here on: the twin's claims on this node's
        # feed are checked against the list of runs (see feed_history).
        history = FeedHistory.from_text(loaded.kv.get(KV_FEED_HISTORY)).started(
            new_incarnation_id(), loaded.last_seq + 1
        )
        await storage.set_kv(KV_FEED_HISTORY, history.to_text())
        boot = namespace.bootstrap()
        if boot.rows:
            await storage.commit(boot.rows)

        tls = node_tls(config)
        daemon = Daemon(
            config.host,
            config.port,
            identification=config.identification,
            limits=_limits(config),
            ssl_context=None if tls is None else tls.server,
        )
        if guard.active:
            daemon.guard = guard
        calls = None
        if config.metrics_address is not None:
            from pairns.metrics.calls import CallStats  # only a node with metrics

            calls = CallStats()
            daemon.observe_calls(calls.wrap)
        requests = RequestTable()
        # Writes acknowledged before a restart: a client retrying one is answered as
        # the first time, not told "name already exists".
        requests.restore(loaded.requests, time.time())
        replicator: Replicator | None = None
        twin = config.twin_address
        if twin is not None:
            from pairns.replication.link import PEER_OBJECT_ID, Replicator  # paired mode only

            replicator = Replicator(
                namespace=namespace,
                storage=storage,
                node_id=loaded.node_id,
                role=config.role,
                twin=twin,
                identification=config.identification,
                durable=config.persistent,
                peer_timeout=config.peer_timeout,
                ack_mode=config.ack,
                requests=requests,
                kv=loaded.kv,
                max_frame_size=config.max_frame_size,
                pair_secret=config.pair_secret,
                history=history,
                max_clock_skew=config.max_clock_skew,
                ssl_context=None if tls is None else tls.peer,
                twin_guard=guard.may_be_twin if guard.allow_twin.restricts else None,
            )
            daemon.register(replicator.endpoint, PEER_OBJECT_ID, with_connection=True)
            if config.effective_pair_secret is None:
                log.warning(
                    "paired without an identification or pair secret: any process that "
                    "can connect from the twin's address (%s) is trusted as the twin; "
                    "use -i or PYRO_NS_PAIR_SECRET",
                    twin[0],
                )
        async with trio.open_nursery() as nursery:
            node_box: list[Node] = []

            def request_shutdown() -> None:
                node_box[0].request_shutdown()

            def node_info() -> dict[str, Any]:
                node = node_box[0]
                return {
                    "node_id": node.node_id,
                    "uri": str(node.uri),
                    "persistent": config.persistent,
                    "role": "single" if replicator is None else config.role,
                    "identification_required": config.identification is not None,
                    "tls": "off" if tls is None else "mutual" if tls.mutual else "on",
                    "admin_identification_required": config.admin_identification is not None,
                    **_guard_info(daemon, node.service),
                    **_storage_info(storage),
                    **_discovery_info(node.responders),
                }

            service = NameServer(
                namespace,
                storage,
                durable=config.persistent,
                node_info=node_info,
                request_shutdown=request_shutdown if config.allow_shutdown else None,
                replicator=replicator,
                requests=requests,
                nursery=nursery,
                tls=tls is not None,
                admin=AdminGate(
                    None
                    if config.admin_identification is None
                    else config.admin_identification.encode("utf-8")
                ),
            )
            daemon.register(
                service,
                NAMESERVER_OBJECT_ID,
                name=names.NAMESERVER_NAME,
                with_connection=CONNECTION_METHODS,
            )
            host, port = await nursery.start(daemon.serve)
            uri = URI.pyro(
                config.host if config.host not in WILDCARD_HOSTS else host,
                port,
                NAMESERVER_OBJECT_ID,
                ssl=tls is not None,
            )
            # Each node of a pair resolves :Pyro.NameServer to itself (as in Pyro 3): a
            # node-local entry, neither stored nor replicated; twin() names the other.
            namespace.set_local(names.NAMESERVER_NAME, str(uri))
            node = Node(
                config=config,
                uri=uri,
                address=(host, port),
                namespace=namespace,
                daemon=daemon,
                service=service,
                node_id=loaded.node_id,
                cancel=nursery.cancel_scope,
                replicator=replicator,
            )
            node_box.append(node)
            if calls is not None:
                node.metrics = _metrics_endpoint(config, service, daemon, calls)
                await nursery.start(node.metrics.serve)
            # One policy: the rate limits and the counters are the node's, whichever
            # family a request came in on.
            policy = ResponderPolicy.with_clock(trio.current_time)
            if guard.allow.restricts or (
                guard.plugin is not None and guard.plugin.answer_location is not None
            ):
                policy.guard = guard.answer_location
            for place in places:
                responder = UdpResponder(
                    uri,
                    (place.host, place.port),
                    place.group,
                    interface if place.ipv6 else 0,
                    policy,
                )
                await nursery.start(responder.serve)
                node.responders.append(responder)
            if replicator is not None:
                await nursery.start(replicator.run)
            collector_ = _tombstone_collector(namespace, storage, replicator, config.persistent)
            await nursery.start(collector_.run)
            nursery.start_soon(node._shutdown_after_grace)
            _write_uri_file(config.uri_path, uri)
            start_up.end(freeze=True)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()


async def _same_place(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether two ``(host, port)`` pairs name the same socket address (names resolved)."""
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True

    async def addresses(host: str) -> set[str]:
        try:
            infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return set()
        return {str(info[4][0]) for info in infos}

    return bool(await addresses(a[0]) & await addresses(b[0]))


def _metrics_endpoint(
    config: Config, service: NameServer, daemon: Daemon, calls: CallStats
) -> MetricsEndpoint:
    """The endpoint serving this node's metrics at ``config.metrics_address``."""
    from prometheus_client import generate_latest  # only a node with metrics

    from pairns.metrics.collector import NodeCollector, registry_for
    from pairns.metrics.endpoint import MetricsEndpoint

    registry = registry_for(NodeCollector(service.status, daemon.statistics, calls))
    address = config.metrics_address
    assert address is not None
    return MetricsEndpoint(address, lambda: generate_latest(registry))


def _check_step(config: Config, places: Sequence[ResponderPlace], interface: int) -> Broadcast:
    """Where the start-up check asks: each responder's broadcast address (-c, else
    ``255.255.255.255``), multicast group, or IPv6 address."""
    destinations = []
    for place in places:
        if place.group is not None:
            destinations.append((place.group, place.port))
        elif place.ipv6:
            if place.host not in WILDCARD_HOSTS:
                destinations.append((place.host, place.port))
        else:
            host = place.host if place.host not in WILDCARD_HOSTS else DEFAULT_BC_ADDR
            destinations.append((host, place.port))
    return Broadcast(
        tuple(destinations),
        config.bc_retries + 1,
        config.bc_timeout,
        str(interface) if interface else None,
    )


async def _check_no_other_name_server(
    config: Config, places: Sequence[ResponderPlace], interface: int
) -> None:
    """Refuse to start when another name server answers on this node's broadcast port
    (Pyro 3's check; ``-r`` skips it, ``-m`` only warns). A paired node's own twin may
    answer there."""
    if config.bc_port == 0:  # any free port: nobody can be answering there yet
        return
    step = _check_step(config, places, interface)
    if not step.destinations:
        return
    found = await find_other(step)
    if found is None:
        return
    uri, _ = found
    twin = config.twin_address
    where = " or ".join(f"{_shown(host)}:{port}/udp" for host, port in step.destinations)
    if twin is not None and uri.host is not None and await _same_place(uri.address, twin):
        log.info("discovery: the twin answers on %s", where)
        return
    if config.allow_multiple:
        log.warning("another name server (%s) answers on %s; starting anyway (-m)", uri, where)
        return
    raise NamingError(
        f"another name server ({uri}) already answers on {where}; use -m to start "
        "another one anyway, or -r not to look"
    )


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _discovery_info(responders: Sequence[UdpResponder]) -> dict[str, Any]:
    """The status fields of the discovery responders (flat, like the storage's)."""
    if not responders:
        return {"discovery": None}
    counters = responders[0].policy.statistics.as_dict()
    return {
        "discovery": ", ".join(r.describe() for r in responders),
        **{f"discovery_{name}": value for name, value in counters.items()},
    }


def _guard_info(daemon: Daemon, service: NameServer) -> dict[str, Any]:
    """The status fields of the guards: what they refused since the node started."""
    stats = daemon.statistics()
    return {
        "refused_by_address": stats.refused_by_address,
        "refused_by_guard": stats.refused_by_guard,
        "admin_refusals": service.admin_refusals,
    }


def _tombstone_collector(
    namespace: Namespace, storage: Storage, replicator: Replicator | None, durable: bool
) -> TombstoneCollector:
    """The node's tombstone collector, with its rule (``docs/namespace-merge.md``): a
    single node collects what is durable; a node of a pair, no further than the twin
    holds it durably, having sent everything it wrote before."""
    if replicator is not None:
        pairing = replicator.pairing

        def safe_upto() -> int:
            return min(pairing.durable_seq(), pairing.stable_upto())

    else:

        def safe_upto() -> int:
            return storage.last_seq if durable else namespace.last_seq

    grace = grace_from_env(paired=replicator is not None)
    return TombstoneCollector(namespace, storage, safe_upto=safe_upto, grace=grace)


def _storage_info(storage: Storage) -> dict[str, Any]:
    """The status fields that tell how the storage is doing."""
    stats = storage.statistics()
    return {
        "storage": storage.describe(),
        "storage_transactions": stats.transactions,
        "storage_failed_transactions": stats.failed_transactions,
        "storage_queued_writes": stats.queued,
    }


async def run(
    config: Config, *, task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a node until it is shut down or cancelled; ``started()`` gets the :class:`Node`."""
    async with open_node(config) as node:
        task_status.started(node)
        await node.wait_stopped()


class NameServerStarter:
    """Runs a node in a background thread, for synchronous programs (Pyro 3 style).

    ``start()`` returns at once; ``waitUntilStarted(timeout)`` says whether the node is
    listening; ``shutdown()`` stops it and joins the thread.
    """

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        base = config if config is not None else Config()
        self.config = attrs.evolve(base, **overrides) if overrides else base
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._node: Node | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the node in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("this starter was already started")
        self._thread = threading.Thread(target=self._main, name="pairns-node", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with open_node(self.config) as node:
                self._node = node
                self._started.set()
                await node.wait_stopped()

        try:
            trio.run(main)
        except BaseException as exc:  # reported through .error and waitUntilStarted
            self.error = exc
            log.error("name server thread failed: %s", exc)
        finally:
            self._started.set()

    def waitUntilStarted(self, timeout: float | None = None) -> bool:
        """Wait up to *timeout* seconds; True when the node is listening."""
        self._started.wait(timeout)
        return self._node is not None and self.error is None and self._started.is_set()

    @property
    def uri(self) -> URI | None:
        """The node's URI once started."""
        return self._node.uri if self._node is not None else None

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop the node and wait for its thread to end."""
        node, token, thread = self._node, self._token, self._thread
        if node is not None and token is not None and thread is not None and thread.is_alive():
            try:
                trio.from_thread.run_sync(node.shutdown, trio_token=token)
            except trio.RunFinishedError:
                pass
        if thread is not None:
            thread.join(timeout)
