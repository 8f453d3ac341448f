"""What both roles share about the one link to the twin: :class:`Pairing`.

It holds the link state machine (and fires its events: the table in
:mod:`pairns.replication.state` decides every transition), the current
:class:`~pairns.replication.session.Link`, the twin's identity and stored positions,
and the hellos' rules (who may pair, when a resync must be full). The dialling side
(:mod:`~pairns.replication.dialer`) and the accepting side
(:mod:`~pairns.replication.acceptor`) drive it; it is the links' :class:`LinkOwner`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import trio

from pairns import structured_log
from pairns.errors import PairnsError
from pairns.namespace import ChangeSet, Namespace
from pairns.naming.requests import RequestRecord, RequestTable
from pairns.replication.durability import MergeCommitter, StoredPositions
from pairns.replication.feed import TwinOrigin
from pairns.replication.feed_history import FeedHistory
from pairns.replication.link_log import describe_change
from pairns.replication.messages import PROTOCOL_VERSION, Hello
from pairns.replication.session import Link
from pairns.replication.state import Backoff, LinkEvent, LinkMachine, LinkState
from pairns.replication.status import Counters
from pairns.storage import Storage

__all__ = ["IDENT_MISMATCH", "LIVE_STATES", "Pairing", "Refused"]

log = logging.getLogger("pairns.replication")

#: The refusal reason of a pair whose two nodes do not share the secret.
IDENT_MISMATCH: Final = "identification mismatch"

#: States in which a link was started and has not reported its end yet.
LIVE_STATES: Final = frozenset({LinkState.SYNCING, LinkState.PAIRED})


class Refused(PairnsError):
    """The twin cannot be paired with; ``reason`` is what status shows."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Pairing:
    """The link's shared state and the rules both roles follow (no sockets).

    Every state change goes through :meth:`fire`, which applies the table and raises
    ``LocalProtocolError`` for an event the table does not allow: callers fire only
    events that are the current link's news (see :meth:`refuse_other`).
    """

    def __init__(
        self,
        *,
        namespace: Namespace,
        storage: Storage,
        node_id: str,
        role: int,
        twin: tuple[str, int],
        durable: bool,
        peer_timeout: float,
        heartbeat: float,
        max_batch_bytes: int,
        max_clock_skew: float,
        max_skew_hlc: int,
        requests: RequestTable,
        history: FeedHistory,
        stored: StoredPositions,
        backoff: Backoff,
    ) -> None:
        self._namespace = namespace
        self.storage = storage
        self.node_id = node_id
        self.role = role
        self.twin = twin
        self.durable = durable
        self.peer_timeout = peer_timeout
        self.heartbeat = heartbeat
        self.max_batch_bytes = max_batch_bytes
        self.max_clock_skew = max_clock_skew
        self.max_skew_hlc = max_skew_hlc
        self.requests = requests
        self.history = history
        self.stored = stored
        self.backoff = backoff
        self.counters = Counters()
        self.origin = TwinOrigin()
        self.machine = LinkMachine()
        self.committer = MergeCommitter(
            namespace, storage, durable=durable, on_durable=self.changed
        )
        #: The current link (None between connections).
        self.link: Link | None = None
        #: A full resync was asked for (``resync()`` or a hello that needs one).
        self.full_requested = False
        #: When the twin was last heard from (Trio clock), on any connection.
        self.last_contact: float | None = None
        self._link_number = 0
        self._kick_event = trio.Event()
        self._ack_waiters: list[tuple[int, trio.Event]] = []
        # Attempts to reach the twin that failed in a row, and the last one's reason:
        # how loudly the next retry is logged (see link_log).
        self._failures = 0
        self._last_failure = ""
        #: Called each time the link reaches ``paired`` (the resync pacer listens).
        self.on_paired: Callable[[], None] | None = None
        #: Called each time a link starts a full resync, whichever node asked for it
        #: (the resync pacer listens: the twin's resyncs are paced with this node's).
        self.on_full_resync: Callable[[], None] | None = None
        # How far the twin holds this node's feed durably, having sent everything it
        # wrote before (see stable_upto); only grows while the node runs.
        self._stable = 0

    # -- shared objects ----------------------------------------------------------------

    @property
    def namespace(self) -> Namespace:
        """The namespace the link mirrors."""
        return self._namespace

    @namespace.setter
    def namespace(self, ns: Namespace) -> None:
        self._namespace = ns
        self.committer.namespace = ns

    @property
    def twin_address(self) -> str:
        """``host:port`` where the twin serves."""
        host, port = self.twin
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def durable_seq(self) -> int:
        """The highest feed position that is durable here (what may be sent)."""
        return self.storage.last_seq if self.durable else self.namespace.last_seq

    def stable_upto(self) -> int:
        """The feed position up to which tombstones may be collected, as far as the
        twin goes: it holds this node's feed durably up to there, and this node holds
        (durably, and stored as applied) everything the twin wrote before it did.

        A batch the twin built with nothing more to send (``more`` false) carries its
        ack and covers its whole durable feed, so also every change it made before
        the changes the ack covers: a change from the twin that arrives after that
        batch was written knowing them (see ``docs/namespace-merge.md``). The ack
        counts once the batch is durable here and the stored ``applied`` covers it.
        """
        link = self.link
        if link is not None and not link.closed:
            upto = min(link.positions.applied, self.stored.persisted_applied)
            self._stable = max(self._stable, link.stable_marks.stable(upto))
        return self._stable

    def current(self, link: Link) -> bool:
        """True if *link* is the current link and has not ended (its news counts)."""
        return link is self.link and not link.closed

    # -- waking the senders ------------------------------------------------------------

    def changed(self) -> None:
        """Wake every task waiting in :meth:`kicked`."""
        self._kick_event.set()
        self._kick_event = trio.Event()

    async def kicked(self) -> None:
        """Wait for the next :meth:`changed`."""
        await self._kick_event.wait()

    # -- what a link reports (LinkOwner) -----------------------------------------------

    def merged(
        self,
        link: Link,
        upto: int,
        changes: ChangeSet,
        learnt: Sequence[RequestRecord] = (),
    ) -> None:
        """A link merged a batch: the committer makes it durable, in order."""
        self.committer.merged(link, upto, changes, learnt)

    def acked_moved(self, link: Link) -> None:
        """The twin acknowledged more: a full resync it acknowledged is done; wake the
        ``--ack twin`` writers it covers."""
        if self.stored.full_owed and link.positions.acked >= self.stored.full_owed:
            self.stored.full_owed = 0  # the full resync is done: the next link may filter
        self.wake_ack_waiters(all_=False)

    def caught_up(self, link: Link) -> None:
        """One direction caught up: if both did on the current link, it is paired."""
        if (
            link is self.link
            and link.sent_caught_up
            and link.received_caught_up
            and self.machine.state is LinkState.SYNCING
        ):
            self.fire(LinkEvent.CAUGHT_UP, detail="in sync")
            self.backoff.reset()
            if self.on_paired is not None:
                self.on_paired()

    async def persist(self, link: Link) -> None:
        """Store *link*'s positions."""
        await self.stored.persist(
            self.storage, applied=link.positions.applied, acked=link.positions.acked
        )

    # -- --ack twin ---------------------------------------------------------------------

    async def wait_acked(self, seq: int) -> bool:
        """Wait (at most the peer timeout) until the twin acknowledged *seq* on the
        current link; False if it did not, or there is no paired link."""
        link = self.link
        if link is None or link.closed or self.machine.state is not LinkState.PAIRED:
            return False
        if link.positions.acked >= seq:
            return True
        event = trio.Event()
        self._ack_waiters.append((seq, event))
        self.changed()
        with trio.move_on_after(self.peer_timeout):
            await event.wait()
        link = self.link
        return link is not None and not link.closed and link.positions.acked >= seq

    def wake_ack_waiters(self, *, all_: bool) -> None:
        """Wake the waiters the current link's ack covers (with *all_*, every one)."""
        link = self.link
        acked = link.positions.acked if link is not None else -1
        keep = []
        for seq, event in self._ack_waiters:
            if all_ or seq <= acked:
                event.set()
            else:
                keep.append((seq, event))
        self._ack_waiters = keep

    # -- hellos ------------------------------------------------------------------------

    def my_hello(self, *, full: bool, probe: bool) -> Hello:
        """This node's hello: who it is, and what it holds of the twin's feed."""
        applied = 0 if full else self.stored.applied
        link = self.link
        if link is not None and not link.closed:
            applied = link.positions.applied
        return Hello(
            node_id=self.node_id,
            role=self.role,
            applied=applied,
            expect=self.stored.twin_id,
            full=full,
            probe=probe,
            incarnation=self.history.current,
            expect_incarnation=self.stored.twin_incarnation,
            history=self.history.incarnations,
        )

    def check_twin(self, theirs: Hello) -> None:
        """Raise :class:`Refused` if *theirs* comes from a node this one cannot pair
        with (another protocol, itself, the same role)."""
        if theirs.version != PROTOCOL_VERSION:
            raise Refused(
                "protocol mismatch",
                f"the twin speaks peer protocol {theirs.version}, this node {PROTOCOL_VERSION}",
            )
        if theirs.node_id == self.node_id:
            raise Refused("same node", "the twin address points back at this node")
        if theirs.role == self.role:
            raise Refused(
                "same role",
                f"both nodes were started with -{self.role}; start one with -1 and the "
                "other with -2",
            )

    def full_reason(self, theirs: Hello) -> str | None:
        """Why this link must be a full resync both ways, judged from this node's
        side, or None: a twin not met before or whose node id changed (wiped, or
        restored from a copy with another id), a twin that does not know this node's
        id, a claim on this node's feed that its history cannot vouch for, or a twin
        whose own history went back below what this node holds of it."""
        if theirs.node_id != self.stored.twin_id:
            return "a new twin" if not self.stored.twin_id else "the twin's node id changed"
        if theirs.expect != self.node_id:
            return "the twin does not know this node"
        if not self._vouched(theirs):
            return "this node's history was replaced"
        # A link the twin's reconnection ended may not have stored its claim yet.
        link = self.link
        unstored = 0
        if link is not None and link.twin_id == theirs.node_id:
            unstored = link.positions.applied
        if self.stored.claim_forked(theirs.node_id, FeedHistory(theirs.history), unstored):
            log.warning(
                "the twin's history forks below its changes this node holds (up to %d): "
                "it went back to an older copy of its database and lost changes it had "
                "sent here. Full resync, both ways",
                max(self.stored.applied, unstored),
            )
            return "the twin's history went back"
        return None

    def _vouched(self, theirs: Hello) -> bool:
        """True if the twin's claim on this node's feed (``applied`` in the
        incarnation it names) is one this node's history can have given."""
        if theirs.expect != self.node_id:
            return True  # a claim on another node's feed: full_reason handles it
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

    # -- starting and ending links -----------------------------------------------------

    def start_link(self, theirs: Hello, *, their_applied: int, full: bool) -> Link:
        """A new link after hellos (state ``handshaking``): positions from storage,
        reset if the twin changed; the link state moves to ``syncing``."""
        stored = self.stored
        twin_id = theirs.node_id
        stored.twin_incarnation = theirs.incarnation
        seen = stored.seen_before(theirs.node_id, FeedHistory(theirs.history))
        if twin_id != stored.twin_id:
            if stored.twin_id:
                log.warning(
                    "the twin's node id changed (%s -> %s): full resync",
                    stored.twin_id,
                    twin_id,
                )
            stored.twin_id = twin_id
            stored.applied = 0
            stored.acked = 0
            full = True  # full_reason said so already; this is the last word
        if full:
            their_applied = 0
            # Owed until the twin acknowledged it: if this link ends first, the next
            # one still sends the twin its own earlier changes (it may have lost them).
            stored.full_owed = max(stored.full_owed, self.durable_seq())
        applied = 0 if full else stored.applied
        self._link_number += 1
        link = Link(
            self,
            twin_id,
            number=self._link_number,
            acked=their_applied,
            applied=applied,
            full=full or stored.full_owed > 0,
            seen_before=seen,
        )
        self.link = link
        if link.full and self.on_full_resync is not None:
            self.on_full_resync()
        if full or their_applied == 0 or applied == 0:
            self.counters.full_resyncs += 1
            kind = "full"
        else:
            self.counters.incremental_resyncs += 1
            kind = "incremental"
        self._failures = 0
        self.fire(
            LinkEvent.HELLO,
            detail=f"linked with node {twin_id}, {kind} resync (it has my changes up to "
            f"{their_applied}, I have its changes up to {applied})",
            fields={"twin_node": twin_id, "resync": kind},
        )
        self.last_contact = trio.current_time()
        return link

    async def end_link(self, link: Link) -> None:
        """*link*'s connection is over: release what it held, store its positions.

        The link state is left to the caller, which reports the end (``down``) only
        if *link* was the current one.
        """
        link.closed = True
        link.release_gc()
        self.counters.drops += 1
        if self.link is link:
            self.link = None
        self.wake_ack_waiters(all_=True)
        self.changed()
        with trio.CancelScope(shield=True), trio.move_on_after(self.peer_timeout):
            await self.persist(link)

    # -- the link state ----------------------------------------------------------------

    def fire(
        self,
        event: LinkEvent,
        reason: str = "",
        *,
        detail: str = "",
        level: int | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply *event* to the link state (the table refuses what it does not allow:
        ``LocalProtocolError``, a bug of the caller) and log the change, if it is one,
        in one line (:mod:`pairns.replication.link_log`).

        *reason* is what a ``down``/``refused`` state shows; *detail* (or, for an event
        whose state shows none, *reason*) is added to the line only.
        """
        before = self.machine.status
        status = self.machine.handle(event, now=trio.current_time(), reason=reason)
        note = detail or ("" if status.reason else reason)
        line = describe_change(
            before,
            status,
            twin=self.twin_address,
            note=note,
            failures=self._failures,
            new_reason=status.reason != self._last_failure,
            level=level,
            fields=fields,
        )
        if line is not None:
            log.log(line.level, "%s", line.message, extra=structured_log.fields(**line.fields))

    def refuse(self, exc: Refused) -> None:
        """The link's own handshake found the twin cannot be paired with."""
        self._failures = 0
        self.fire(LinkEvent.REFUSED, exc.reason, detail=exc.detail)

    def refuse_other(self, exc: Refused) -> None:
        """A connection other than the link's own (a hello, a probe) found a twin that
        cannot be paired with. Shown as the link's state while no link is live (it may
        be the twin, configured wrongly); while one is, only logged: nobody else can
        change what the real link shows."""
        if self.machine.state in LIVE_STATES:
            log.warning("refused a peer connection while paired: %s", exc)
        else:
            self.refuse(exc)

    def down(self, reason: str, attempts: int) -> None:
        """An attempt (the *attempts*-th in a row) or the current link failed."""
        was = self.machine.state
        if was is LinkState.REFUSED:
            # A retry after a refusal failed otherwise: the refusal is still the news.
            if attempts % 10 == 0:
                log.info("twin at %s still unreachable: %s", self.twin_address, reason)
            return
        if was in LIVE_STATES:
            self._failures = 0
            self.fire(LinkEvent.FAILED, reason)
            return
        self._failures += 1
        if self._failures == 1:
            note = "serving alone; still looking for the twin"
        else:
            note = f"still looking for the twin ({self._failures} attempts)"
        self.fire(LinkEvent.FAILED, reason, detail=note)
        self._last_failure = reason
