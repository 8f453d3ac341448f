"""The peer link's Trio adapter: :class:`Replicator` keeps one node mirrored with its twin.

Topology
--------
One long-lived, authenticated connection per pair, dialled by the ``-2`` node to the
``-1`` node's daemon (the rpc handshake authenticates both ends with ``-i``: the
dialler proves the passphrase, and, holding one itself, checks the ``-1`` node's proof).
On it:

* ``hello`` (a call, both directions' :class:`~pairns.replication.messages.Hello`):
  identities, roles and positions; refusals come back as ``NamingError``.
* ``push`` (oneway, ``-2`` -> ``-1``): batches of the ``-2`` node's feed carrying its
  cumulative ack of the ``-1`` node's feed; an empty batch is a heartbeat.
* ``poll`` (a call the ``-1`` node holds until it has something to say, or for one
  heartbeat interval): its reply is a batch of the ``-1`` node's feed carrying its
  cumulative ack of the ``-2`` node's feed. So changes, acks and heartbeats flow both
  ways on the one connection, with no second listener and no rule to pick one of two
  connections.

Why the ``-2`` node dials: the second node is the one that fetches a snapshot at first
pairing, so it is natural for it to ask; one dialler means one connection with no tie
to break. While unpaired, the ``-1`` node *probes* its twin's address (a short ``hello``
with ``probe``), only to find and report identification mismatches and a twin started
with the same role; it never keeps that connection.

Each connection runs in one nursery (sender, receiver, heartbeat watchdog, persister);
if any of them fails, the whole link is cancelled, and the outer loop reconnects with
backoff (at most 5 s) and resyncs from the positions the hellos agreed on. The change
feed (``Namespace.entries_since``) is the outgoing buffer: the sender reads above what
it sent, so a slow or frozen twin never blocks a client call, and nothing is lost while
the twin is away.

Parts
-----
* :mod:`~pairns.replication.pairing` - the link state, the current link, the hellos.
* :mod:`~pairns.replication.session` - one connection's link (positions, merge, send).
* :mod:`~pairns.replication.dialer` - dialling (``-2``), probing (``-1``), the proof.
* :mod:`~pairns.replication.acceptor` - the endpoint the twin calls, the sessions.
* :mod:`~pairns.replication.durability` - merged batches and positions made durable.
* :mod:`~pairns.replication.feed`, :mod:`~pairns.replication.status` - what to send,
  what to show.

This module is the facade the node uses: :class:`Replicator`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any, Final

import trio

from pairns.namespace import Namespace
from pairns.namespace.stamps import max_skew_hlc
from pairns.naming.requests import RequestTable
from pairns.replication.acceptor import PEER_OBJECT_ID, Acceptor, PeerEndpoint
from pairns.replication.dialer import PROBE_MAX_BACKOFF, Dialer, Prober
from pairns.replication.durability import StoredPositions
from pairns.replication.feed import FeedCursor, TwinOrigin, build_batch
from pairns.replication.feed_history import FeedHistory
from pairns.replication.messages import MAX_BATCH_BYTES
from pairns.replication.pairing import Pairing
from pairns.replication.resync import Decision, ResyncPacer
from pairns.replication.session import LinkFailed
from pairns.replication.state import Backoff, LinkEvent, LinkMachine, LinkState
from pairns.replication.status import Counters, conflict_logger, count_unacked, describe_version
from pairns.storage import Storage

__all__ = [
    "PEER_OBJECT_ID",
    "FeedCursor",
    "LinkFailed",
    "PeerEndpoint",
    "Replicator",
    "TwinOrigin",
    "build_batch",
    "describe_version",
]

log = logging.getLogger("pairns.replication")

#: Default of ``PYRO_NS_MAX_CLOCK_SKEW``: how far ahead of this node's wall clock a stamp
#: from the twin may be (CockroachDB bounds its maximum clock offset the same way).
DEFAULT_MAX_CLOCK_SKEW: Final = 60.0

#: Heartbeats per peer timeout: a twin is dropped after missing about this many.
HEARTBEATS_PER_TIMEOUT: Final = 4


class Replicator:
    """Keeps this node's namespace mirrored with its twin's (one per paired node).

    The name service calls :meth:`changed` after every write (once durable),
    :meth:`wait_twin` in ``--ack twin`` mode, :meth:`status` and :meth:`request_resync`;
    :meth:`run` (in the node's nursery) does the rest. Serve :attr:`endpoint` on the
    daemon as :data:`PEER_OBJECT_ID`.
    """

    def __init__(
        self,
        *,
        namespace: Namespace,
        storage: Storage,
        node_id: str,
        role: int,
        twin: tuple[str, int],
        identification: str | None,
        durable: bool,
        peer_timeout: float = 2.0,
        ack_mode: str = "local",
        requests: RequestTable | None = None,
        kv: dict[str, str] | None = None,
        max_frame_size: int | None = None,
        backoff: Backoff | None = None,
        pair_secret: str | None = None,
        history: FeedHistory | None = None,
        max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW,
        ssl_context: ssl.SSLContext | None = None,
        twin_guard: Callable[[tuple[str, int] | None], bool] | None = None,
    ) -> None:
        """*twin_guard* (``--allow-twin``) says whether a caller's address may act
        as the twin; the peer endpoint refuses the others."""
        if role not in (1, 2):
            raise ValueError("a replicator needs role 1 or 2")
        self.storage = storage
        self.node_id = node_id
        self.role = role
        self.twin = twin
        self.identification = identification
        self.durable = durable
        self.peer_timeout = peer_timeout
        self.heartbeat = peer_timeout / HEARTBEATS_PER_TIMEOUT
        self.ack_mode = ack_mode
        self.max_frame_size = max_frame_size
        self.max_clock_skew = max_clock_skew
        # The key the twin proves: the pair's own secret, else the identification.
        secret = pair_secret if pair_secret is not None else identification
        pair_key = None if secret is None else secret.encode("utf-8")
        # A batch must fit the frame limit (escaping inside the changes text adds some).
        max_batch_bytes = (
            MAX_BATCH_BYTES
            if max_frame_size is None
            else max(4096, min(MAX_BATCH_BYTES, max_frame_size // 3))
        )
        #: The link's shared state and rules (what the dialler and acceptor drive).
        self.pairing = Pairing(
            namespace=namespace,
            storage=storage,
            node_id=node_id,
            role=role,
            twin=twin,
            durable=durable,
            peer_timeout=peer_timeout,
            heartbeat=self.heartbeat,
            max_batch_bytes=max_batch_bytes,
            max_clock_skew=max_clock_skew,
            max_skew_hlc=max_skew_hlc(max_clock_skew),
            requests=requests if requests is not None else RequestTable(),
            history=history if history is not None else FeedHistory(),
            stored=StoredPositions.from_kv(kv or {}),
            backoff=backoff if backoff is not None else Backoff(),
        )
        self._dialer = Dialer(
            self.pairing,
            identification=identification,
            pair_key=pair_key,
            max_frame_size=max_frame_size,
            ssl_context=ssl_context,
        )
        self._acceptor = Acceptor(
            self.pairing,
            pair_key=pair_key,
            on_probed=self._dialer.wake if role == 2 else None,
            twin_guard=twin_guard,
        )
        self._prober = Prober(
            self.pairing,
            self._acceptor,
            identification=identification,
            pair_key=pair_key,
            ssl_context=ssl_context,
        )
        #: The remote object the twin calls (serve it as :data:`PEER_OBJECT_ID`).
        self.endpoint = PeerEndpoint(self._acceptor)
        #: Coalesces and paces requested full resyncs (see :mod:`.resync`).
        self.pacer = ResyncPacer()
        self._resync_scheduled = trio.Event()
        self.pairing.on_paired = self._paired
        self.pairing.on_full_resync = self._full_resync_began
        previous = namespace.on_conflict
        namespace.on_conflict = conflict_logger(previous)

    # -- what the node and the name service use ----------------------------------------

    @property
    def namespace(self) -> Namespace:
        """The namespace kept mirrored."""
        return self.pairing.namespace

    @namespace.setter
    def namespace(self, ns: Namespace) -> None:
        self.pairing.namespace = ns

    @property
    def machine(self) -> LinkMachine:
        """The link state machine (read it; only the link fires its events)."""
        return self.pairing.machine

    @property
    def counters(self) -> Counters:
        """What the link counted since the node started."""
        return self.pairing.counters

    @property
    def requests(self) -> RequestTable:
        """The client request records that travel with the writes."""
        return self.pairing.requests

    @property
    def history(self) -> FeedHistory:
        """This node's feed history (its runs)."""
        return self.pairing.history

    @property
    def backoff(self) -> Backoff:
        """Pauses between attempts to reach the twin."""
        return self.pairing.backoff

    @property
    def twin_address(self) -> str:
        """``host:port`` where the twin serves."""
        return self.pairing.twin_address

    def durable_seq(self) -> int:
        """The highest feed position that is durable here (what may be sent)."""
        return self.pairing.durable_seq()

    def changed(self) -> None:
        """A write (or merge) made new changes: wake the sender."""
        self.pairing.changed()

    def merges_pending(self) -> bool:
        """True while some merged batch is not durable yet."""
        return self.pairing.committer.pending()

    @property
    def degraded(self) -> bool:
        """In ``--ack twin`` mode, True while writes can only be acknowledged locally."""
        return self.ack_mode == "twin" and self.machine.state is not LinkState.PAIRED

    async def wait_twin(self, seq: int) -> bool:
        """``--ack twin``: wait until the twin has applied feed position *seq*.

        Returns True if it did; False (counted as a degraded acknowledgement) when the
        twin is not paired, or the link drops, or it takes longer than the peer timeout.
        """
        if await self.pairing.wait_acked(seq):
            self.counters.twin_acks += 1
            return True
        self.counters.degraded_acks += 1
        return False

    def request_resync(self) -> Decision:
        """Ask for a full resync in both directions (see :mod:`.resync`).

        It starts now (the current connection is dropped), or joins the full resync
        that runs or is scheduled already, or, too soon after the last one, is
        scheduled for the end of its gap. Returns which.
        """
        pairing = self.pairing
        link = pairing.link
        running = pairing.full_requested or (
            link is not None
            and not link.closed
            and link.full
            and self.machine.state is LinkState.SYNCING
        )
        decision = self.pacer.request(trio.current_time(), running=running)
        if decision is Decision.START:
            self._start_resync()
        elif decision is Decision.SCHEDULE:
            due = self.pacer.due
            wait = 0.0 if due is None else due - trio.current_time()
            log.warning("full resync with the twin requested: starts in %.1f s (paced)", wait)
            self._resync_scheduled.set()
        else:
            log.info("full resync with the twin requested: joins the one already under way")
        return decision

    def _start_resync(self) -> None:
        pairing = self.pairing
        pairing.full_requested = True
        log.warning("full resync with the twin requested")
        link = pairing.link
        if link is not None:
            link.fail("full resync requested")

    def _paired(self) -> None:
        self.pacer.finished(trio.current_time())

    def _full_resync_began(self) -> None:
        self.pacer.began_anyway(trio.current_time())

    async def _run_scheduled_resyncs(self) -> None:
        """Start each paced resync when it is due."""
        while True:
            await self._resync_scheduled.wait()
            self._resync_scheduled = trio.Event()
            due = self.pacer.due
            if due is None:
                continue
            await trio.sleep_until(due)
            if self.pacer.start_due(trio.current_time()):
                self._start_resync()

    def status(self) -> dict[str, Any]:
        """The replication part of ``status()``."""
        pairing = self.pairing
        stored = pairing.stored
        link = pairing.link
        now = trio.current_time()
        last = pairing.last_contact
        contact = None if last is None else round(now - last, 3)
        live = link is not None and not link.closed
        if link is not None and live:
            acked = link.positions.acked
            twin_id = link.twin_id
        else:
            acked = stored.acked if stored.twin_id else 0
            twin_id = stored.twin_id
        # While a full resync is owed, the twin's own earlier changes travel back too
        # (it may have lost them): only this link's echoes are held back, as it sends.
        scope: int | None = None
        if stored.full_owed:
            scope = link.number if link is not None and live else -1
        unacked, oldest = count_unacked(
            self.namespace, pairing.origin, acked=acked, twin_id=twin_id, scope=scope
        )
        c = self.counters
        return {
            "role": self.role,
            "twin": self.twin_address,
            "twin_node_id": twin_id or None,
            "link": self.machine.status.text,
            "link_state": self.machine.state.value,
            "last_contact_seconds": contact,
            "unacked_changes": unacked,
            "oldest_unacked_seconds": oldest,
            "ack_mode": self.ack_mode,
            "degraded": self.degraded,
            "degraded_acks": c.degraded_acks,
            "twin_acks": c.twin_acks,
            "entries_sent": c.entries_sent,
            "entries_received": c.entries_received,
            "full_resyncs": c.full_resyncs,
            "incremental_resyncs": c.incremental_resyncs,
            "link_drops": c.drops,
            "skew_refusals": c.skew_refusals,
            "refused_peer_calls": c.refused_peer_calls,
            "resync_requests": self.pacer.requests,
            "resync_requests_joined": self.pacer.joined,
            "deletions_resent": c.buried,
            "incarnation": self.history.current,
        }

    # -- the main loop ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the link until cancelled (the node's nursery owns this task)."""
        async with trio.open_nursery() as nursery:
            if self.durable:
                nursery.start_soon(self.pairing.committer.run)
            nursery.start_soon(self._run_scheduled_resyncs)
            task_status.started()
            if self.role == 2:
                await self._dialer.run()
            else:
                nursery.start_soon(self._prober.run)
                self._wait_for_twin()
                await self._acceptor.run()

    def _wait_for_twin(self) -> None:
        pairing = self.pairing
        # The daemon serves before this task starts: the twin's hello may have
        # started a session already, and the link is then no longer DOWN.
        if self.machine.state is LinkState.DOWN:
            pairing.fire(
                LinkEvent.DIAL,
                detail="serving alone until the twin (-2) connects; its address is probed "
                f"every {PROBE_MAX_BACKOFF:g} s at most",
                level=logging.WARNING,
            )
