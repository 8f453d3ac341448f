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
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from pairns import _collector as collector
from pairns.errors import (
    ConnectionClosedError,
    ConnectionDeniedError,
    LocalProtocolError,
    NamingError,
    PairnsError,
    StorageError,
)
from pairns.namespace import ChangeSet, Entry, Namespace
from pairns.namespace.fields import get_hlc, get_stamp
from pairns.namespace.stamps import COUNTER_BITS, max_skew_hlc
from pairns.replication import auth
from pairns.replication.feed import FeedCursor, TwinOrigin, build_batch, item_entry, item_seen
from pairns.replication.feed_history import FeedHistory
from pairns.replication.messages import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    PROTOCOL_VERSION,
    Batch,
    Hello,
    Item,
)
from pairns.replication.requests import RequestTable
from pairns.replication.state import (
    Backoff,
    LinkEvent,
    LinkMachine,
    LinkState,
    LinkStatus,
    Positions,
)
from pairns.replication.status import Counters, conflict_logger, count_unacked, describe_version
from pairns.rpc import AsyncProxy
from pairns.rpc.context import ConnectionInfo, current_connection
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

#: The daemon object id of the peer endpoint (a sibling of ``Pyro.NameServer``).
PEER_OBJECT_ID: Final = "Pyro.NameServer.Peer"

#: Keys of the durable node metadata (``Storage.set_kv``).
KV_TWIN_ID: Final = "twin.node_id"
KV_APPLIED: Final = "twin.applied"
KV_ACKED: Final = "twin.acked"
#: The twin's incarnation (run) that ``twin.applied`` was last heard from.
KV_TWIN_INCARNATION: Final = "twin.incarnation"
#: The feed position up to which the twin is owed everything, its own changes included
#: (a full resync that has not been acknowledged yet; "0": nothing owed).
KV_FULL_OWED: Final = "twin.full_owed"

#: Default of ``PYRO_NS_MAX_CLOCK_SKEW``: how far ahead of this node's wall clock a stamp
#: from the twin may be (CockroachDB bounds its maximum clock offset the same way).
DEFAULT_MAX_CLOCK_SKEW: Final = 60.0

#: Longest pause of the ``-1`` node's probes of an absent twin: they find a twin that
#: came back (and wake its dialling) within about this long.
PROBE_MAX_BACKOFF: Final = 1.0

#: Key of the per-connection state the peer endpoint keeps (ConnectionInfo.attributes).
_AUTH_KEY: Final = "pairns.twin"

#: Heartbeats per peer timeout: a twin is dropped after missing about this many.
HEARTBEATS_PER_TIMEOUT: Final = 4

#: Most unacknowledged feed positions the sender lets out before it waits for acks.
SEND_WINDOW: Final = 8 * MAX_BATCH_ENTRIES

_IDENT_MISMATCH = "identification mismatch"


class LinkFailed(PairnsError):
    """The current connection to the twin is unusable (the link resyncs after a retry)."""


class _Refused(PairnsError):
    """The twin cannot be paired with; ``reason`` is what status shows."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


#: Longest the cyclic collector stays paused for one link's catch-up stream (seconds).
GC_HOLD_MAX = 10.0


# The collector is paused while one batch is built and encoded, or parsed and merged
# (synchronous). A resync batch makes tens of thousands of objects. On the receiver
# they all live on (entries, stamps, request records): the collector would only rescan
# them, and the growing namespace with them, again and again (as in
# ``Namespace.load``). On the sender they are garbage as soon as the batch is encoded,
# and freed by reference counting; but while the batch is built they survive enough
# young collections to reach the oldest generation, and that growth triggers full
# collections over the whole namespace every few batches.


class _Link:
    """What both ends of one connection share: positions, applying and committing.

    Lives as long as one connection; the :class:`Replicator` makes a new one per
    connection (so a stale task of an old connection cannot move the new positions).
    """

    def __init__(self, rep: Replicator, twin_id: str, acked: int, applied: int, full: bool):
        self.rep = rep
        self.twin_id = twin_id
        self.positions = Positions()
        self.positions.restart(acked, applied)
        self.full = full
        # Connections are numbered: a full resync holds back only what this one brought.
        rep.link_number += 1
        self.number = rep.link_number
        self.cursor = FeedCursor(rep.namespace)
        self.last_contact = trio.current_time()
        self.closed = False
        self.error: str = ""
        self.cancel_scope = trio.CancelScope()
        self.sent_caught_up = False
        self.received_caught_up = False
        self.last_ack_sent = -1
        # When the collector was paused for this link's catch-up stream (see hold_gc).
        self._gc_held_since: float | None = None
        self._gc_hold_used = False

    # -- receiving -------------------------------------------------------------------

    def contact(self) -> None:
        self.last_contact = trio.current_time()

    def receive(self, batch: Batch) -> None:
        """Merge a batch from the twin (synchronously: batches apply in arrival order)."""
        rep = self.rep
        self.contact()
        positions = self.positions
        try:
            positions.check_batch(batch.start)
        except LocalProtocolError as exc:
            raise LinkFailed(str(exc)) from None
        if positions.on_ack(batch.ack):
            rep._acked_moved(self)
        if batch.upto == batch.start and not batch.items and not batch.requests:
            if not batch.more:
                self._caught_up_received()
            return
        items = batch.items
        if items:
            self.check_skew(items)
        try:
            pairs = list(zip(map(item_entry, items), map(item_seen, items), strict=True))
            changes = rep.namespace.merge_pairs(pairs)
        except ValueError as exc:
            raise LinkFailed(f"the twin sent an invalid change: {exc}") from None
        rep.origin.add_all(changes.entries, self.twin_id, self.number)
        if batch.requests:
            rep.requests.learn_all(batch.requests, time.time())
        positions.on_received(batch.upto)
        rep.counters.entries_received += len(batch.items)
        rep.counters.batches_received += 1
        if rep.durable and (changes.entries or rep.merges_pending()):
            # Durable (and acknowledged) in order: behind any batch still being stored,
            # also one an earlier connection merged (this one may bring it again: its
            # entries are then known here, but not yet on disk).
            rep.queue_merged(self, batch.upto, changes)
        elif self.positions.on_durable(batch.upto):
            rep._kick()
        if changes.entries:
            rep.changed()
        if not batch.more:
            self._caught_up_received()

    def check_skew(self, items: tuple[Item, ...]) -> None:
        """Refuse a batch holding a stamp further ahead of this node's wall clock than
        the maximum clock skew: merging it would drag this node's clock (and every
        stamp it makes) that far ahead, and a hostile twin could stamp a deletion
        years ahead so that nothing could ever replace it."""
        rep = self.rep
        top = max(map(get_hlc, map(get_stamp, map(item_entry, items))))
        now = rep.namespace.clock.physical()
        if top <= now + rep.max_skew_hlc:
            return
        rep.counters.skew_refusals += 1
        ahead = ((top - now) >> COUNTER_BITS) / 1000
        reason = (
            f"refused a batch from the twin: a change stamped {ahead:.1f} s ahead of this "
            f"node's clock, more than the maximum clock skew ({rep.max_clock_skew:g} s, "
            "PYRO_NS_MAX_CLOCK_SKEW); is one of the two clocks wrong?"
        )
        log.error("%s", reason)
        raise LinkFailed(reason)

    def hold_gc(self, more: bool) -> None:
        """Keep the cyclic collector paused while the twin streams a backlog.

        A resync arrives as a run of batches flagged ``more``, each making tens of
        thousands of long-lived objects; collecting between them only rescans the
        growing namespace (as ``Namespace.load`` avoids for a bulk load). The pause
        starts with the first such batch, ends with the first batch that is not (the
        twin caught up), when the link ends, or after :data:`GC_HOLD_MAX` seconds -
        once per link - so the garbage it lets pile up stays bounded.

        When it ends because the twin caught up, what is alive is frozen
        (``gc.freeze()``, as the ``pairns`` command does once its node is up) before the
        collector resumes: otherwise its first young collection walks everything the
        stream made (about 60 ms for 100,000 names, on the event loop, before the link
        even reports ``paired``), and the older generations walk it all again later
        (a full collection over 100,000 names takes about 0.2 s). What was already
        garbage then is kept for good; measured after a 100,000-name resync, that is
        about 60 objects.
        """
        since = self._gc_held_since
        if since is None:
            if more and not self._gc_hold_used and not self.closed and gc.isenabled():
                gc.disable()
                self._gc_held_since = trio.current_time()
                self._gc_hold_used = True
        elif not more or self.closed or trio.current_time() - since > GC_HOLD_MAX:
            self.release_gc(freeze=not more and not self.closed)

    def release_gc(self, *, freeze: bool = False) -> None:
        """End the pause :meth:`hold_gc` started, if any (first freezing what is alive,
        with *freeze*: the twin caught up, see :meth:`hold_gc`)."""
        if self._gc_held_since is not None:
            self._gc_held_since = None
            if freeze:
                gc.freeze()
            gc.enable()

    def _caught_up_received(self) -> None:
        if not self.received_caught_up:
            self.received_caught_up = True
            self.rep._maybe_caught_up(self)

    # -- sending ---------------------------------------------------------------------

    def has_news(self) -> bool:
        """Something to tell the twin: new durable changes or a new ack."""
        p = self.positions
        return (
            self.rep.durable_seq() > p.sent and p.sent - p.acked < SEND_WINDOW
        ) or p.applied != self.last_ack_sent

    def next_batch(self) -> Batch:
        """The next batch to send (maybe a heartbeat); marks it sent."""
        rep = self.rep
        p = self.positions
        durable = rep.durable_seq()
        end = min(durable, max(p.sent, p.acked + SEND_WINDOW))  # wait for acks past that
        batch = build_batch(
            rep.namespace,
            start=p.sent,
            end=end,
            durable_end=durable,
            ack=p.applied,
            skip=self.echo_filter(),
            requests=rep.requests,
            now=time.time(),
            cursor=self.cursor,
            max_bytes=rep.max_batch_bytes,
        )
        p.on_sent(batch.upto)
        self.last_ack_sent = p.applied
        rep.counters.entries_sent += len(batch.items)
        if not batch.more and not self.sent_caught_up:
            self.sent_caught_up = True
            rep._maybe_caught_up(self)
        return batch

    def echo_filter(self) -> Callable[[Entry], bool]:
        """What not to send back: entries this twin sent (on this connection only while
        a full resync is owed: the twin may have lost what it sent before)."""
        origin = self.rep.origin
        twin = self.twin_id
        number = self.number if self.full else None

        def skip(entry: Entry) -> bool:
            return origin.came_from(entry, twin, number)

        return skip

    async def wait_news(self, timeout: float) -> None:
        """Wait until :meth:`has_news` or *timeout* seconds pass."""
        with trio.move_on_after(timeout):
            while not self.has_news():
                await self.rep._kicked()

    async def watchdog(self) -> None:
        """Fail the link when the twin has been silent for longer than the peer timeout."""
        timeout = self.rep.peer_timeout
        while True:
            silent = trio.current_time() - self.last_contact
            if silent > timeout:
                raise LinkFailed(f"the twin was silent for {silent:.1f} s")
            await trio.sleep(max(0.01, timeout - silent + 0.001))

    async def persister(self) -> None:
        """Store the positions now and then, so a restart resyncs incrementally."""
        interval = self.rep.heartbeat
        while True:
            await trio.sleep(interval)
            await self.rep._persist(self)


@attrs.define(eq=False)
class _Session:
    """The ``-1`` side of one connection: the link plus the poll handshake."""

    id: str
    link: _Link
    polling: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)


class PeerEndpoint:
    """The remote object the twin calls (served as :data:`PEER_OBJECT_ID`, registered
    ``with_connection=True``: it judges each call by the connection it came on).

    A connection reaches ``push`` and ``poll`` only once it proved it is the twin:
    ``challenge`` then ``hello`` with the proof (see :mod:`pairns.replication.auth`),
    or, in a pair with no secret at all, a ``hello`` from the twin's own address.
    """

    def __init__(self, replicator: Replicator) -> None:
        self._rep = replicator

    def challenge(self, nonce: Any, has_secret: Any) -> dict[str, Any]:
        """First step of the proof: returns this node's nonce and its own proof."""
        return self._rep._answer_challenge(_connection(), nonce, has_secret)

    async def hello(self, hello: Any, proof: Any = None) -> dict[str, Any]:
        """Start a link (or answer a probe); returns ``{"hello": ..., "session": id}``."""
        return await self._rep._accept_hello(_connection(), hello, proof)

    def push(self, session: str, batch: Any) -> None:
        """A batch from the dialling twin (oneway; applied in arrival order)."""
        if self._rep._proven(_connection(), "push"):
            self._rep._on_push(session, batch)

    async def poll(self, session: str, ack: int, wait: float) -> dict[str, Any]:
        """The next batch for the dialling twin, after at most *wait* seconds."""
        if not self._rep._proven(_connection(), "poll"):
            raise NamingError("refused: this connection has not proved it is the twin")
        return await self._rep._on_poll(session, ack, wait)


def _connection() -> ConnectionInfo:
    info = current_connection.get()
    if info is None:  # served without with_connection=True: refuse everything
        return ConnectionInfo(None, False)
    return info


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
    ) -> None:
        if role not in (1, 2):
            raise ValueError("a replicator needs role 1 or 2")
        self.namespace = namespace
        self.storage = storage
        self.node_id = node_id
        self.role = role
        self.twin = twin
        self.identification = identification
        # The key the twin proves: the pair's own secret, else the identification.
        secret = pair_secret if pair_secret is not None else identification
        self._pair_key = None if secret is None else secret.encode("utf-8")
        self.history = history if history is not None else FeedHistory()
        self.max_clock_skew = max_clock_skew
        self.max_skew_hlc = max_skew_hlc(max_clock_skew)
        self.durable = durable
        self.peer_timeout = peer_timeout
        self.heartbeat = peer_timeout / HEARTBEATS_PER_TIMEOUT
        self.ack_mode = ack_mode
        self.requests = requests if requests is not None else RequestTable()
        self.max_frame_size = max_frame_size
        # A batch must fit the frame limit (escaping inside the changes text adds some).
        self.max_batch_bytes = (
            MAX_BATCH_BYTES
            if max_frame_size is None
            else max(4096, min(MAX_BATCH_BYTES, max_frame_size // 3))
        )
        self.backoff = backoff if backoff is not None else Backoff()
        self.counters = Counters()
        self.origin = TwinOrigin()
        self.link_number = 0
        self.endpoint = PeerEndpoint(self)
        self.machine = LinkMachine()
        kv = kv or {}
        self._twin_id = kv.get(KV_TWIN_ID, "")
        self._stored_applied = _int_or_zero(kv.get(KV_APPLIED))
        self._stored_acked = _int_or_zero(kv.get(KV_ACKED))
        self._twin_incarnation = kv.get(KV_TWIN_INCARNATION, "")
        self._full_owed = _int_or_zero(kv.get(KV_FULL_OWED))
        self._persisted = self._positions_state()
        # Addresses the twin may connect from when there is no secret to prove.
        self._twin_ips: frozenset[str] | None = None
        # Set by a probe from the -1 node: the -2 node dials at once instead of after
        # its backoff (the twin is reachable again).
        self._dial_now = trio.Event()
        # Merged batches not durable yet, in merge order, from any connection: waiting
        # for the merge committer (_merged) or being written by it (_committing). A
        # link's ``applied`` (what the twin is told this node holds) moves only past
        # what is durable. They outlive the connection that merged them: dropping them
        # when a link ends would make reads on this node go back.
        self._merged: list[tuple[_Link, int, ChangeSet]] = []
        self._committing: list[tuple[_Link, int, ChangeSet]] = []
        self._merged_event = trio.Event()
        self._link: _Link | None = None
        self._session: _Session | None = None
        self._new_session = trio.Event()
        self._kick_event = trio.Event()
        self._full_requested = False
        self._last_contact: float | None = None
        self._ack_waiters: list[tuple[int, trio.Event]] = []
        self._logged_state = ""
        previous = namespace.on_conflict
        namespace.on_conflict = conflict_logger(previous)

    # -- what the name service uses ---------------------------------------------------

    @property
    def twin_address(self) -> str:
        """``host:port`` where the twin serves."""
        host, port = self.twin
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def durable_seq(self) -> int:
        """The highest feed position that is durable here (what may be sent)."""
        return self.storage.last_seq if self.durable else self.namespace.last_seq

    def changed(self) -> None:
        """A write (or merge) made new changes: wake the sender."""
        self._kick()

    @property
    def degraded(self) -> bool:
        """In ``--ack twin`` mode, True while writes can only be acknowledged locally."""
        return self.ack_mode == "twin" and self.machine.state is not LinkState.PAIRED

    async def wait_twin(self, seq: int) -> bool:
        """``--ack twin``: wait until the twin has applied feed position *seq*.

        Returns True if it did; False (counted as a degraded acknowledgement) when the
        twin is not paired, or the link drops, or it takes longer than the peer timeout.
        """
        link = self._link
        if link is None or link.closed or self.machine.state is not LinkState.PAIRED:
            self.counters.degraded_acks += 1
            return False
        if link.positions.acked >= seq:
            self.counters.twin_acks += 1
            return True
        event = trio.Event()
        self._ack_waiters.append((seq, event))
        self._kick()
        with trio.move_on_after(self.peer_timeout):
            await event.wait()
        link = self._link
        if link is not None and not link.closed and link.positions.acked >= seq:
            self.counters.twin_acks += 1
            return True
        self.counters.degraded_acks += 1
        return False

    def request_resync(self) -> None:
        """Force a full resync in both directions (drops the current connection)."""
        self._full_requested = True
        log.warning("full resync with the twin requested")
        link = self._link
        if link is not None:
            self._fail(link, "full resync requested")

    def status(self) -> dict[str, Any]:
        """The replication part of ``status()``."""
        link = self._link
        now = trio.current_time()
        contact = None if self._last_contact is None else round(now - self._last_contact, 3)
        if link is not None and not link.closed:
            acked = link.positions.acked
            twin_id = link.twin_id
        else:
            acked = self._stored_acked if self._twin_id else 0
            twin_id = self._twin_id
        # While a full resync is owed, the twin's own earlier changes travel back too
        # (it may have lost them): only this link's echoes are held back, as it sends.
        scope: int | None = None
        if self._full_owed:
            scope = link.number if link is not None and not link.closed else -1
        unacked, oldest = count_unacked(
            self.namespace, self.origin, acked=acked, twin_id=twin_id, scope=scope
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
            "incarnation": self.history.current,
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the link until cancelled (the node's nursery owns this task)."""
        async with trio.open_nursery() as nursery:
            if self.durable:
                nursery.start_soon(self._merge_committer)
            task_status.started()
            if self.role == 2:
                await self._dial_loop()
            else:
                await self._accept_loop()

    # -- making merged batches durable -----------------------------------------------

    def queue_merged(self, link: _Link, upto: int, changes: ChangeSet) -> None:
        """*changes* (merged from *link*'s batch up to *upto*) must become durable
        before *link* acknowledges *upto*; in order, behind everything queued."""
        self._merged.append((link, upto, changes))
        self._merged_event.set()

    def merges_pending(self) -> bool:
        """True while some merged batch is not durable yet."""
        return bool(self._merged or self._committing)

    async def _merge_committer(self) -> None:
        """Commit merged batches (persistent mode), then advance their links' ``applied``.

        One for all connections: a batch merged on a connection that ended since is
        still made durable (its entries stay, and the twin's resend finds them known).
        If a commit fails, every merged change that is not durable is undone, newest
        first - what the commit held and what was merged while it ran - and the current
        connection fails: memory then holds nothing that the disk and ``applied`` do
        not, and the twin's resend after the reconnection merges it again.
        """
        while True:
            if not self._merged:
                self._merged_event = trio.Event()
                await self._merged_event.wait()
                continue
            batch, self._merged = self._merged, []
            self._committing = batch
            rows: list[Any] = []
            for _, _, changes in batch:
                rows.extend(changes.rows)
            try:
                await self.storage.commit(rows)
            except StorageError as exc:
                reason = f"cannot store what the twin sent: {exc}"
                undone, self._committing, self._merged = self._committing + self._merged, [], []
                for _, _, changes in reversed(undone):
                    self.namespace.undo(changes)
                for link in dict.fromkeys(link for link, _, _ in undone):
                    link.positions.received = link.positions.applied
                    self._fail(link, reason)
                log.warning("%s; the twin will send it again", reason)
                continue
            self._committing = []
            for link, upto, _ in batch:
                if not link.closed and link.positions.on_durable(upto):
                    self._kick()

    # -- -2: dial, hello, push and poll ----------------------------------------------

    async def _dial_loop(self) -> None:
        attempts = 0
        while True:
            attempts += 1
            if self.machine.state is not LinkState.REFUSED:  # a refusal shows until it ends
                self._transition(LinkEvent.DIAL, f"looking for the twin at {self.twin_address}")
            try:
                await self._connect_and_run()
            except _Refused as exc:
                self._refuse(exc)
            except (LinkFailed, ConnectionClosedError, NamingError, StorageError) as exc:
                self._down(str(exc), attempts)
            except Exception as exc:
                log.exception("peer link failed unexpectedly")
                self._down(f"internal error: {exc!r}", attempts)
            else:  # pragma: no cover - _connect_and_run only returns by raising
                self._down("link closed", attempts)
            if self._full_requested:
                continue  # resync() asked: reconnect at once
            self._dial_now = trio.Event()
            with trio.move_on_after(self.backoff.next()):
                await self._dial_now.wait()  # a probe from the twin: it is back

    async def _connect_and_run(self) -> None:
        host, port = self.twin
        proxy = AsyncProxy.for_address(
            host,
            port,
            PEER_OBJECT_ID,
            identification=self.identification,
            timeout=self.peer_timeout + self.heartbeat,
            max_frame_size=self.max_frame_size,
        )
        async with proxy:
            full = self._full_requested
            hello = self._my_hello(full=full, probe=False)
            answer = await self._call_hello(proxy, hello)
            self._transition(LinkEvent.CONNECTED)
            theirs, session = _parse_answer(answer)
            self._check_twin(theirs)
            reason = self._full_reason(theirs)
            if not theirs.full and reason is not None:
                # The -1 node accepted an incremental resync, but from this side it must
                # be a full one (say its claim on this node's feed is one this node's
                # history cannot have given): ask again, in full, both ways.
                self._full_requested = True
                raise LinkFailed(f"a full resync is needed ({reason}); asking for one")
            self._full_requested = False
            full = full or theirs.full
            link = self._start_link(theirs, their_applied=theirs.applied, full=full)
            try:
                async with trio.open_nursery() as nursery:
                    link.cancel_scope = nursery.cancel_scope
                    nursery.start_soon(self._pusher, proxy, session, link)
                    nursery.start_soon(self._poller, proxy, session, link)
                    nursery.start_soon(link.watchdog)
                    nursery.start_soon(link.persister)
            except BaseExceptionGroup as group:
                raise _link_error(group) from None
            finally:
                await self._end_link(link)
            raise LinkFailed(link.error or "link closed")

    async def _pusher(self, proxy: AsyncProxy, session: str, link: _Link) -> None:
        while True:
            await link.wait_news(self.heartbeat)
            _still_connected(proxy)
            with collector.paused():  # garbage once encoded (see the note on pausing)
                batch = link.next_batch()
                wire = batch.to_wire()
            await proxy.oneway("push", session, wire)
            if batch.more:
                await trio.lowlevel.checkpoint()

    async def _poller(self, proxy: AsyncProxy, session: str, link: _Link) -> None:
        """Fetch the -1 node's batches; the next poll is in flight while one is merged.

        Batches still apply strictly in order (one merger, a channel of one): the
        overlap only lets the twin build batch k+1 while this node merges batch k.
        """
        send, receive = trio.open_memory_channel[Any](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._merger, receive, link)
            async with send:
                while True:
                    _still_connected(proxy)
                    try:
                        reply = await proxy.call(
                            "poll", session, link.positions.applied, self.heartbeat
                        )
                    except NamingError as exc:
                        raise LinkFailed(f"the twin closed the link: {exc}") from None
                    self._last_contact = trio.current_time()
                    link.contact()
                    await send.send(reply)

    async def _merger(self, receive: trio.MemoryReceiveChannel[Any], link: _Link) -> None:
        async with receive:
            async for reply in receive:
                with collector.paused():
                    try:
                        batch = Batch.from_wire(reply)
                    except ValueError as exc:
                        raise LinkFailed(f"the twin sent an invalid batch: {exc}") from None
                    link.receive(batch)
                link.hold_gc(batch.more)
                await trio.lowlevel.checkpoint()

    # -- -1: accept hellos, serve polls ----------------------------------------------

    async def _accept_loop(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe_loop)
            # The daemon serves before this task starts: the twin's hello may have
            # started a session already, and the link is then no longer DOWN.
            if self.machine.state is LinkState.DOWN:
                self._transition(
                    LinkEvent.DIAL, f"waiting for the twin ({self.twin_address}) to connect"
                )
                log.warning(
                    "serving alone until the twin (-2 at %s) connects; its address is probed "
                    "with backoff of at most %g s",
                    self.twin_address,
                    PROBE_MAX_BACKOFF,
                )
            while True:
                session = self._session
                if session is None or session.done.is_set():
                    self._new_session = trio.Event()
                    await self._new_session.wait()
                    continue
                await self._run_session(session)

    async def _run_session(self, session: _Session) -> None:
        link = session.link
        try:
            async with trio.open_nursery() as nursery:
                link.cancel_scope = nursery.cancel_scope
                nursery.start_soon(link.watchdog)
                nursery.start_soon(link.persister)
        except BaseExceptionGroup as group:
            error = _link_error(group)
            link.error = link.error or str(error)
            if not isinstance(error, PairnsError):
                log.error("peer link failed unexpectedly", exc_info=error)
        finally:
            await self._end_link(link)
            session.done.set()
        if self._session is session:
            self._session = None
            self._down(link.error or "link closed", 1)
            self._transition(
                LinkEvent.DIAL, f"waiting for the twin ({self.twin_address}) to reconnect"
            )

    async def _probe_loop(self) -> None:
        """While unpaired, check the twin's address: report mismatches, log progress."""
        backoff = Backoff(initial=0.25, maximum=PROBE_MAX_BACKOFF)
        while True:
            await trio.sleep(backoff.next())
            if self._session is not None and not self._session.done.is_set():
                backoff.reset()
                continue
            host, port = self.twin
            proxy = AsyncProxy.for_address(
                host,
                port,
                PEER_OBJECT_ID,
                identification=self.identification,
                timeout=self.peer_timeout,
            )
            try:
                async with proxy:
                    answer = await self._call_hello(proxy, self._my_hello(full=False, probe=True))
                theirs, _ = _parse_answer(answer)
                self._check_twin(theirs)
            except _Refused as exc:
                self._refuse(exc)
            except (PairnsError, ValueError) as exc:
                if self.machine.state is LinkState.REFUSED:
                    continue
                log.info("still looking for the twin at %s: %s", self.twin_address, exc)
            else:
                if self.machine.state is LinkState.REFUSED:
                    self._transition(LinkEvent.DIAL, "the twin can now be paired with")

    # -- proving who the twin is (see pairns.replication.auth) -------------------------

    async def _call_hello(self, proxy: AsyncProxy, hello: Hello) -> Any:
        """Prove this node is the twin, then send *hello*; the answer as it came.

        Raises :class:`_Refused` for every reason pairing is impossible (identification
        or secret mismatch, a twin that cannot prove the secret, its refusal).
        """
        key = self._pair_key
        nonce = auth.new_nonce()
        try:
            answer = await proxy.call("challenge", nonce, key is not None)
            their_nonce, their_proof, their_secret = auth.parse_challenge_answer(answer)
            if key is not None and not their_secret:
                raise _Refused(
                    _IDENT_MISMATCH,
                    "this node has an identification (or pair secret) and the twin none",
                )
            if key is None and their_secret:
                raise _Refused(
                    _IDENT_MISMATCH,
                    "the twin has an identification (or pair secret) and this node none",
                )
            proof = None
            if key is not None:
                expected = auth.server_proof(key, 3 - self.role, nonce, their_nonce)
                if not auth.proofs_equal(expected, their_proof):
                    raise _Refused(
                        "twin proof failed",
                        f"the node at {self.twin_address} does not know the pair's secret "
                        "(a different -i or PYRO_NS_PAIR_SECRET, or not the twin)",
                    )
                proof = auth.client_proof(key, self.role, their_nonce, nonce)
            return await proxy.call("hello", hello.to_wire(), proof)
        except ConnectionDeniedError as exc:
            raise _Refused(_IDENT_MISMATCH, str(exc)) from None
        except NamingError as exc:
            raise _refusal(exc) from None
        except ValueError as exc:
            raise LinkFailed(f"invalid answer from the twin: {exc}") from None

    def _answer_challenge(
        self, info: ConnectionInfo, nonce: Any, has_secret: Any
    ) -> dict[str, Any]:
        """The ``challenge`` call: a fresh nonce for this connection, and this node's
        proof of the secret."""
        try:
            client_nonce = auth.parse_nonce(nonce)
        except ValueError:
            raise NamingError("refused: invalid challenge") from None
        key = self._pair_key
        if bool(has_secret) != (key is not None):
            mine, theirs = ("none", "one") if key is None else ("one", "none")
            refusal = _Refused(
                _IDENT_MISMATCH,
                f"this node has {mine} identification (or pair secret), the twin {theirs}",
            )
            self._refuse_caller(refusal)
            raise NamingError(f"refused: {refusal}")
        server_nonce = auth.new_nonce()
        info.attributes[_AUTH_KEY] = {"client": client_nonce, "server": server_nonce}
        proof = None
        if key is not None:
            proof = auth.server_proof(key, self.role, client_nonce, server_nonce)
        return {"nonce": server_nonce, "proof": proof, "has_secret": key is not None}

    async def _prove_caller(self, info: ConnectionInfo, proof: Any) -> None:
        """Mark *info*'s connection as the twin's, or raise the refusal."""
        state = info.attributes.get(_AUTH_KEY)
        key = self._pair_key
        if key is not None:
            if not isinstance(state, dict) or "server" not in state:
                raise NamingError("refused: twin proof failed: no challenge on this connection")
            expected = auth.client_proof(key, 3 - self.role, state["server"], state["client"])
            if not auth.proofs_equal(expected, proof):
                refusal = _Refused(
                    "twin proof failed",
                    f"a connection from {_address_text(info.peer)} does not know the pair's secret",
                )
                self._refuse_caller(refusal)
                raise NamingError(f"refused: {refusal}")
        elif not await self._from_twin_address(info):
            self.counters.refused_peer_calls += 1
            log.warning(
                "refused a peer hello from %s: without an identification or pair secret, "
                "only the twin's address (%s) may pair",
                _address_text(info.peer),
                self.twin[0],
            )
            raise NamingError(
                f"refused: not the twin's address (without a pair secret only {self.twin[0]} "
                "may pair)"
            )
        info.attributes[_AUTH_KEY] = {"proven": True}

    def _refuse_caller(self, refusal: _Refused) -> None:
        """A connection failed to prove it is the twin. Shown as the link's state while
        no twin is linked (it may be the twin, configured wrongly); while one is, only
        logged and counted: nobody else can change what the real link shows."""
        self.counters.refused_peer_calls += 1
        link = self._link
        if link is None or link.closed:
            self._refuse(refusal)
        else:
            log.warning("refused a peer connection while paired: %s", refusal)

    def _proven(self, info: ConnectionInfo, what: str) -> bool:
        """True if *info*'s connection proved it is the twin (else counted, logged)."""
        state = info.attributes.get(_AUTH_KEY)
        if isinstance(state, dict) and state.get("proven") is True:
            return True
        self.counters.refused_peer_calls += 1
        log.warning(
            "refused a peer %s from %s: the connection has not proved it is the twin",
            what,
            _address_text(info.peer),
        )
        return False

    async def _from_twin_address(self, info: ConnectionInfo) -> bool:
        if info.peer is None:
            return False
        if self._twin_ips is None:
            try:
                found = await trio.socket.getaddrinfo(self.twin[0], None)
            except OSError as exc:
                log.warning("cannot resolve the twin's host %s: %s", self.twin[0], exc)
                return False
            self._twin_ips = frozenset(_plain_ip(str(item[4][0])) for item in found)
        return _plain_ip(info.peer[0]) in self._twin_ips

    def _vouched(self, theirs: Hello) -> bool:
        """True if the twin's claim on this node's feed (``applied`` in the
        incarnation it names) is one this node's history can have given."""
        if theirs.expect != self.node_id:
            return True  # a claim on another node's feed: _full_reason handles it
        ok = self.history.vouches(theirs.expect_incarnation, theirs.applied, self.durable_seq())
        if not ok:
            log.warning(
                "the twin claims to hold this node's changes up to %d (run %s), which this "
                "node's history (up to %d) cannot have given: restarted from an older copy "
                "of its database? Full resync, both ways",
                theirs.applied,
                theirs.expect_incarnation or "unknown",
                self.durable_seq(),
            )
        return ok

    def _full_reason(self, theirs: Hello) -> str | None:
        """Why this link must be a full resync both ways, judged from this node's
        side, or None: a twin not met before or whose node id changed (wiped, or
        restored from a copy with another id), a twin that does not know this node's
        id, or a claim on this node's feed that its history cannot vouch for."""
        if theirs.node_id != self._twin_id:
            return "a new twin" if not self._twin_id else "the twin's node id changed"
        if theirs.expect != self.node_id:
            return "the twin does not know this node"
        if not self._vouched(theirs):
            return "this node's history was replaced"
        return None

    async def _accept_hello(self, info: ConnectionInfo, raw: Any, proof: Any) -> dict[str, Any]:
        try:
            theirs = Hello.from_wire(raw)
        except ValueError as exc:
            raise NamingError(f"refused: invalid hello ({exc})") from None
        try:
            self._check_twin(theirs)
        except _Refused as exc:
            self._refuse(exc)
            raise NamingError(f"refused: {exc}") from None
        await self._prove_caller(info, proof)
        if theirs.probe or self.role == 2:
            if self.role == 2 and not self._dial_now.is_set():
                self._dial_now.set()  # the -1 node reached us: dial it now
            return {"hello": self._my_hello(full=False, probe=True).to_wire(), "session": ""}
        old = self._session
        if old is not None:
            self._fail(old.link, "the twin reconnected")
            with trio.move_on_after(self.peer_timeout):
                await old.done.wait()
        full = self._full_requested or theirs.full or self._full_reason(theirs) is not None
        self._full_requested = False
        their_applied = 0 if full else theirs.applied
        if self.machine.state not in (LinkState.CONNECTING,):
            self._transition(LinkEvent.DIAL)
        self._transition(LinkEvent.CONNECTED)
        # The claim this node makes on the twin's feed names the twin's run it was
        # reached in, not the run that is dialling now (_start_link records that one).
        claimed_in = self._twin_incarnation
        link = self._start_link(theirs, their_applied=their_applied, full=full)
        mine = attrs.evolve(self._my_hello(full=full, probe=False), expect_incarnation=claimed_in)
        session = _Session(uuid.uuid4().hex, link)
        self._session = session
        self._new_session.set()
        return {"hello": mine.to_wire(), "session": session.id}

    def _current(self, session_id: str) -> _Session:
        session = self._session
        if session is None or session.id != session_id or session.link.closed:
            raise NamingError("peer session closed; reconnect")
        return session

    def _on_push(self, session_id: str, raw: Any) -> None:
        try:
            session = self._current(session_id)
        except NamingError:
            return  # a stale connection: the dialler finds out on its next poll
        link = session.link
        try:
            with collector.paused():
                batch = Batch.from_wire(raw)
                link.receive(batch)
        except (LinkFailed, ValueError) as exc:
            self._fail(link, f"bad batch from the twin: {exc}")
            return
        link.hold_gc(batch.more)
        self._last_contact = trio.current_time()

    async def _on_poll(self, session_id: str, ack: Any, wait: Any) -> dict[str, Any]:
        session = self._current(session_id)
        link = session.link
        if session.polling:
            raise NamingError("one poll at a time")
        if not isinstance(ack, int) or not isinstance(wait, int | float):
            raise NamingError("invalid poll")
        session.polling = True
        try:
            link.contact()
            self._last_contact = trio.current_time()
            if link.positions.on_ack(ack):
                self._acked_moved(link)
            wait = min(max(0.0, float(wait)), self.peer_timeout)
            try:
                with trio.move_on_after(wait):
                    while not link.has_news() and not link.closed:
                        await self._kicked()
            except trio.Cancelled:
                # The daemon cancels calls whose connection closed: the twin is gone.
                self._fail(link, "the twin closed the connection")
                raise
            if link.closed:
                raise NamingError("peer session closed; reconnect")
            link.contact()
            with collector.paused():  # garbage once encoded (see the note on pausing)
                return link.next_batch().to_wire()
        finally:
            session.polling = False

    # -- shared helpers --------------------------------------------------------------

    def _my_hello(self, *, full: bool, probe: bool) -> Hello:
        applied = 0 if full else self._stored_applied
        link = self._link
        if link is not None and not link.closed:
            applied = link.positions.applied
        return Hello(
            node_id=self.node_id,
            role=self.role,
            applied=applied,
            expect=self._twin_id,
            full=full,
            probe=probe,
            incarnation=self.history.current,
            expect_incarnation=self._twin_incarnation,
        )

    def _check_twin(self, theirs: Hello) -> None:
        if theirs.version != PROTOCOL_VERSION:
            raise _Refused(
                "protocol mismatch",
                f"the twin speaks peer protocol {theirs.version}, this node {PROTOCOL_VERSION}",
            )
        if theirs.node_id == self.node_id:
            raise _Refused("same node", "the twin address points back at this node")
        if theirs.role == self.role:
            raise _Refused(
                "same role",
                f"both nodes were started with -{self.role}; start one with -1 and the "
                "other with -2",
            )

    def _start_link(self, theirs: Hello, *, their_applied: int, full: bool) -> _Link:
        """A new link after hellos: positions from storage, reset if the twin changed."""
        twin_id = theirs.node_id
        self._twin_incarnation = theirs.incarnation
        if twin_id != self._twin_id:
            if self._twin_id:
                log.warning(
                    "the twin's node id changed (%s -> %s): full resync",
                    self._twin_id,
                    twin_id,
                )
            self._twin_id = twin_id
            self._stored_applied = 0
            self._stored_acked = 0
            full = True  # _full_reason said so already; this is the last word
        if full:
            their_applied = 0
            # Owed until the twin acknowledged it: if this link ends first, the next
            # one still sends the twin its own earlier changes (it may have lost them).
            self._full_owed = max(self._full_owed, self.durable_seq())
        applied = 0 if full else self._stored_applied
        link = _Link(self, twin_id, their_applied, applied, full or self._full_owed > 0)
        self._link = link
        if full or their_applied == 0 or applied == 0:
            self.counters.full_resyncs += 1
            kind = "full"
        else:
            self.counters.incremental_resyncs += 1
            kind = "incremental"
        self._transition(LinkEvent.HELLO)
        log.warning(
            "linked with the twin %s at %s: %s resync (it has my changes up to %d, "
            "I have its changes up to %d)",
            twin_id,
            self.twin_address,
            kind,
            their_applied,
            applied,
        )
        self._last_contact = trio.current_time()
        return link

    async def _end_link(self, link: _Link) -> None:
        link.closed = True
        link.release_gc()
        self.counters.drops += 1
        if self._link is link:
            self._link = None
        self._wake_ack_waiters(all_=True)
        self._kick()
        with trio.CancelScope(shield=True), trio.move_on_after(self.peer_timeout):
            await self._persist(link)

    def _positions_state(self) -> tuple[str, int, int, str, int]:
        return (
            self._twin_id,
            self._stored_applied,
            self._stored_acked,
            self._twin_incarnation,
            self._full_owed,
        )

    async def _persist(self, link: _Link) -> None:
        self._stored_applied = max(0, link.positions.applied)
        self._stored_acked = max(0, link.positions.acked)
        state = self._positions_state()
        if state == self._persisted:
            return
        failed: list[StorageError] = []

        async def put(key: str, value: str) -> None:
            try:
                await self.storage.set_kv(key, value)
            except StorageError as exc:
                failed.append(exc)

        # Submitted together, they ride in one transaction (one sync, not five).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(put, KV_TWIN_ID, state[0])
            nursery.start_soon(put, KV_APPLIED, str(state[1]))
            nursery.start_soon(put, KV_ACKED, str(state[2]))
            nursery.start_soon(put, KV_TWIN_INCARNATION, state[3])
            nursery.start_soon(put, KV_FULL_OWED, str(state[4]))
        if failed:
            log.warning("cannot store the twin's positions: %s", failed[0])
            return
        self._persisted = state

    def _fail(self, link: _Link, reason: str) -> None:
        if not link.closed:
            link.error = link.error or reason
            link.closed = True
            link.release_gc()
            link.cancel_scope.cancel()
            self._kick()

    def _acked_moved(self, link: _Link) -> None:
        if self._full_owed and link.positions.acked >= self._full_owed:
            self._full_owed = 0  # the full resync is done: the next link may filter echoes
        self._wake_ack_waiters(all_=False)

    def _wake_ack_waiters(self, *, all_: bool) -> None:
        link = self._link
        acked = link.positions.acked if link is not None else -1
        keep = []
        for seq, event in self._ack_waiters:
            if all_ or seq <= acked:
                event.set()
            else:
                keep.append((seq, event))
        self._ack_waiters = keep

    def _maybe_caught_up(self, link: _Link) -> None:
        if (
            link is self._link
            and link.sent_caught_up
            and link.received_caught_up
            and self.machine.state is LinkState.SYNCING
        ):
            self._transition(LinkEvent.CAUGHT_UP)
            self.backoff.reset()
            log.warning("paired with the twin at %s: in sync", self.twin_address)

    def _kick(self) -> None:
        self._kick_event.set()
        self._kick_event = trio.Event()

    async def _kicked(self) -> None:
        await self._kick_event.wait()

    def _transition(self, event: LinkEvent, reason: str = "") -> None:
        now = trio.current_time()
        try:
            status = self.machine.handle(event, now=now, reason=reason)
        except LocalProtocolError:
            # An event the table does not expect from here (a late task of an old
            # connection): restart from DOWN rather than crash the node.
            self.machine.status = LinkStatus(LinkState.DOWN, reason, now)
            status = self.machine.handle(event, now=now, reason=reason)
        if event is LinkEvent.DIAL and reason and status.text != self._logged_state:
            log.info("%s", reason)
        self._logged_state = status.text

    def _refuse(self, exc: _Refused) -> None:
        message = str(exc)
        if self.machine.status.text != f"refused: {exc.reason}":
            log.error("refusing to pair with the twin at %s: %s", self.twin_address, message)
        self._transition(LinkEvent.REFUSED, exc.reason)

    def _down(self, reason: str, attempts: int) -> None:
        was = self.machine.state
        if was is LinkState.REFUSED:
            # A retry after a refusal failed otherwise: the refusal is still the news.
            if attempts % 10 == 0:
                log.info("twin at %s still unreachable: %s", self.twin_address, reason)
            return
        self._transition(LinkEvent.FAILED, reason)
        if was in (LinkState.PAIRED, LinkState.SYNCING):
            log.warning("dropped the twin at %s: %s", self.twin_address, reason)
        elif attempts == 1:
            log.warning(
                "serving alone; still looking for the twin at %s (%s)", self.twin_address, reason
            )
        elif attempts % 10 == 0:
            log.info("still looking for the twin at %s: %s", self.twin_address, reason)


def _plain_ip(address: str) -> str:
    """*address* without an IPv4-mapped IPv6 prefix or a zone (for comparing)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _address_text(peer: tuple[str, int] | None) -> str:
    if peer is None:
        return "an unknown address"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _still_connected(proxy: AsyncProxy) -> None:
    """Fail the link rather than let the proxy reconnect: a link is one connection (the
    twin proved itself on it), and a new one would be refused anyway."""
    if not proxy.connected:
        raise LinkFailed("the connection to the twin was lost")


def _refusal(exc: NamingError) -> _Refused:
    """The twin's refusal of our hello (``"refused: <reason>: <detail>"``) as a value."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if text.startswith("refused: "):
        reason, _, detail = text[len("refused: ") :].partition(": ")
        return _Refused(reason, detail)
    return _Refused("refused by the twin", text)


def _int_or_zero(text: str | None) -> int:
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        return 0


def _parse_answer(answer: Any) -> tuple[Hello, str]:
    if not isinstance(answer, dict) or not isinstance(answer.get("session"), str):
        raise LinkFailed(f"invalid hello answer: {answer!r}")
    try:
        return Hello.from_wire(answer.get("hello")), answer["session"]
    except ValueError as exc:
        raise LinkFailed(f"invalid hello answer: {exc}") from None


def _link_error(group: BaseExceptionGroup[BaseException]) -> Exception:
    """The error that ended a link's nursery (the others are its consequences).

    A group of nothing but cancellations (the node is stopping) is re-raised as is.
    """
    errors: list[Exception] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        elif isinstance(exc, Exception):
            errors.append(exc)

    walk(group)
    if not errors:
        raise group
    for exc in errors:
        if isinstance(exc, PairnsError):
            return exc
    return errors[0]
