"""One connection's worth of the peer link: :class:`Link`.

Both roles use it the same way: the dialling ``-2`` node pushes and polls through it,
the accepting ``-1`` node serves pushes and polls from it. It keeps the feed positions
of the connection both ways, merges what the twin sends (synchronously: batches apply
in arrival order), builds what to send, and watches for silence.

What matters beyond the connection goes up through :class:`LinkOwner`, a small
interface the link is given: an ack that moved, a direction that caught up, a merged
batch that must become durable. The link never reaches into its owner otherwise.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import trio

from pairns import _collector as collector
from pairns.errors import LocalProtocolError, PairnsError
from pairns.namespace import ChangeSet, Entry, Namespace
from pairns.namespace.fields import get_hlc, get_stamp
from pairns.namespace.stamps import COUNTER_BITS
from pairns.naming.requests import RequestRecord, RequestTable
from pairns.replication.feed import (
    FeedCursor,
    StableMarks,
    TwinOrigin,
    build_batch,
    bury_collected,
    item_entry,
    item_seen,
)
from pairns.replication.messages import MAX_BATCH_ENTRIES, Batch, Item
from pairns.replication.state import Positions
from pairns.replication.status import Counters

__all__ = ["GC_HOLD_MAX", "SEND_WINDOW", "Link", "LinkFailed", "LinkOwner", "link_error"]

log = logging.getLogger("pairns.replication")

#: Most unacknowledged feed positions the sender lets out before it waits for acks.
SEND_WINDOW: Final = 8 * MAX_BATCH_ENTRIES

#: Longest the cyclic collector stays paused for one link's catch-up stream (seconds).
GC_HOLD_MAX = 10.0


class LinkFailed(PairnsError):
    """The current connection to the twin is unusable (the link resyncs after a retry)."""


class LinkOwner(Protocol):
    """What a :class:`Link` needs from the node it links, and tells it.

    Read: the namespace and what travels with it, the settings. Told: the events of
    the connection that matter beyond it (each names the link, so the owner can tell a
    stale connection from the current one).
    """

    @property
    def namespace(self) -> Namespace:
        """The namespace the link mirrors."""

    @property
    def origin(self) -> TwinOrigin:
        """Which entries came from the twin (not echoed back)."""

    @property
    def requests(self) -> RequestTable:
        """The client request records that travel with the writes."""

    @property
    def counters(self) -> Counters:
        """Where the link counts what it sent and received."""

    @property
    def peer_timeout(self) -> float:
        """Seconds of silence after which the twin is dropped."""

    @property
    def heartbeat(self) -> float:
        """Seconds between heartbeats (and position stores)."""

    @property
    def max_batch_bytes(self) -> int:
        """Largest batch to build (it must fit the frame limit)."""

    @property
    def max_clock_skew(self) -> float:
        """How far ahead of this node's clock a stamp from the twin may be (seconds)."""

    @property
    def max_skew_hlc(self) -> int:
        """:attr:`max_clock_skew` in hybrid-clock units."""

    def durable_seq(self) -> int:
        """The highest feed position that is durable here (what may be sent)."""

    def changed(self) -> None:
        """Something may be worth sending now: wake whoever waits in :meth:`kicked`."""

    async def kicked(self) -> None:
        """Wait for the next :meth:`changed`."""

    def merged(
        self,
        link: Link,
        upto: int,
        changes: ChangeSet,
        learnt: Sequence[RequestRecord] = (),
    ) -> None:
        """*link* merged *changes*, up to the twin's feed position *upto*, and learnt
        the request records *learnt* with them: once both are durable, move
        ``link.positions.applied`` (``on_durable``)."""

    def acked_moved(self, link: Link) -> None:
        """The twin acknowledged more of this node's feed on *link*."""

    def caught_up(self, link: Link) -> None:
        """One direction of *link* caught up (see ``sent_caught_up``,
        ``received_caught_up``)."""

    async def persist(self, link: Link) -> None:
        """Store *link*'s positions (a restart then resyncs incrementally)."""


# The collector is paused while one batch is built and encoded, or parsed and merged
# (synchronous). A resync batch makes tens of thousands of objects. On the receiver
# they all live on (entries, stamps, request records): the collector would only rescan
# them, and the growing namespace with them, again and again (as in
# ``Namespace.load``). On the sender they are garbage as soon as the batch is encoded,
# and freed by reference counting; but while the batch is built they survive enough
# young collections to reach the oldest generation, and that growth triggers full
# collections over the whole namespace every few batches.


class Link:
    """What both ends of one connection share: positions, applying and committing.

    Lives as long as one connection; a new one is made per connection (so a stale task
    of an old connection cannot move the new positions). What it learns that matters
    beyond the connection goes up to its :class:`LinkOwner`.
    """

    def __init__(
        self,
        owner: LinkOwner,
        twin_id: str,
        *,
        number: int,
        acked: int,
        applied: int,
        full: bool,
        seen_before: int = 0,
    ) -> None:
        self.owner = owner
        self.twin_id = twin_id
        self.positions = Positions()
        self.positions.restart(acked, applied)
        self.full = full
        #: Positions of the twin's feed known here before this link (see
        #: ``Pairing._seen_before``): a live entry sent from there whose name has no
        #: entry here was deleted and collected here (see _bury_collected).
        self.seen_before = seen_before
        #: The acks of the batches the twin sent with nothing more to send, until
        #: ``Pairing.stable_upto`` takes them.
        self.stable_marks = StableMarks()
        # Connections are numbered: a full resync holds back only what this one brought.
        self.number = number
        self.cursor = FeedCursor(owner.namespace)
        self.last_contact = trio.current_time()
        self.closed = False
        self.error: str = ""
        self.cancel_scope = trio.CancelScope()
        self.sent_caught_up = False
        self.received_caught_up = False
        self.last_ack_sent = -1
        # When the collector was paused for this link's catch-up stream (see hold_gc).
        self._gc_held_since: float | None = None
        self._gc_hold: collector.Pause | None = None
        self._gc_hold_used = False

    def fail(self, reason: str) -> bool:
        """End this link with *reason* (the first reason given is kept); cancels its
        tasks. False if it had ended already."""
        if self.closed:
            return False
        self.error = self.error or reason
        self.closed = True
        self.release_gc()
        self.cancel_scope.cancel()
        self.owner.changed()
        return True

    # -- receiving -------------------------------------------------------------------

    def contact(self) -> None:
        """The twin was heard from (the watchdog's clock restarts)."""
        self.last_contact = trio.current_time()

    def receive(self, batch: Batch) -> None:
        """Merge a batch from the twin (synchronously: batches apply in arrival order)."""
        owner = self.owner
        self.contact()
        positions = self.positions
        try:
            positions.check_batch(batch.start)
        except LocalProtocolError as exc:
            raise LinkFailed(str(exc)) from None
        if positions.on_ack(batch.ack):
            owner.acked_moved(self)
        self.stable_marks.note(batch)
        if batch.upto == batch.start and not batch.items and not batch.requests:
            if not batch.more:
                self._caught_up_received()
            return
        items = batch.items
        if items:
            self.check_skew(items)
        try:
            pairs = list(zip(map(item_entry, items), map(item_seen, items), strict=True))
            buried = bury_collected(owner.namespace, items, pairs, self.seen_before, time.time())
            changes = owner.namespace.merge_pairs(pairs)
        except ValueError as exc:
            raise LinkFailed(f"the twin sent an invalid change: {exc}") from None
        if buried:
            owner.counters.buried += len(buried)
            log.warning(
                "the twin still holds %d names deleted and collected here (restored from "
                "an older copy of its database?); sending it their deletion again (%s%s)",
                len(buried),
                ", ".join(t.name for t in buried[:3]),
                ", ..." if len(buried) > 3 else "",
            )
            mine = set(map(id, buried))
            owner.origin.add_all(
                [e for e in changes.entries if id(e) not in mine], self.twin_id, self.number
            )
        else:
            owner.origin.add_all(changes.entries, self.twin_id, self.number)
        if batch.requests:
            owner.requests.learn_all(batch.requests, time.time())
        positions.on_received(batch.upto)
        owner.counters.entries_received += len(batch.items)
        owner.counters.batches_received += 1
        # applied moves once that is durable, request ids included
        owner.merged(self, batch.upto, changes, batch.requests)
        if changes.entries:
            owner.changed()
        if not batch.more:
            self._caught_up_received()

    def check_skew(self, items: tuple[Item, ...]) -> None:
        """Refuse a batch holding a stamp further ahead of this node's wall clock than
        the maximum clock skew: merging it would drag this node's clock (and every
        stamp it makes) that far ahead, and a hostile twin could stamp a deletion
        years ahead so that nothing could ever replace it."""
        owner = self.owner
        top = max(map(get_hlc, map(get_stamp, map(item_entry, items))))
        now = owner.namespace.clock.physical()
        if top <= now + owner.max_skew_hlc:
            return
        owner.counters.skew_refusals += 1
        ahead = ((top - now) >> COUNTER_BITS) / 1000
        reason = (
            f"refused a batch from the twin: a change stamped {ahead:.1f} s ahead of this "
            f"node's clock, more than the maximum clock skew ({owner.max_clock_skew:g} s, "
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
                self._gc_hold = collector.Pause()
                self._gc_held_since = trio.current_time()
                self._gc_hold_used = True
        elif not more or self.closed or trio.current_time() - since > GC_HOLD_MAX:
            self.release_gc(freeze=not more and not self.closed)

    def release_gc(self, *, freeze: bool = False) -> None:
        """End the pause :meth:`hold_gc` started, if any (first freezing what is alive,
        with *freeze*: the twin caught up, see :meth:`hold_gc`)."""
        if self._gc_hold is not None:
            self._gc_held_since = None
            self._gc_hold.end(freeze=freeze)
            self._gc_hold = None

    def _caught_up_received(self) -> None:
        if not self.received_caught_up:
            self.received_caught_up = True
            self.owner.caught_up(self)

    # -- sending ---------------------------------------------------------------------

    def has_news(self) -> bool:
        """Something to tell the twin: new durable changes or a new ack."""
        p = self.positions
        return (
            self.owner.durable_seq() > p.sent and p.sent - p.acked < SEND_WINDOW
        ) or p.applied != self.last_ack_sent

    def next_batch(self) -> Batch:
        """The next batch to send (maybe a heartbeat); marks it sent."""
        owner = self.owner
        p = self.positions
        durable = owner.durable_seq()
        end = min(durable, max(p.sent, p.acked + SEND_WINDOW))  # wait for acks past that
        batch = build_batch(
            owner.namespace,
            start=p.sent,
            end=end,
            durable_end=durable,
            ack=p.applied,
            skip=self.echo_filter(),
            requests=owner.requests,
            now=time.time(),
            cursor=self.cursor,
            max_bytes=owner.max_batch_bytes,
        )
        p.on_sent(batch.upto)
        self.last_ack_sent = p.applied
        owner.counters.entries_sent += len(batch.items)
        if not batch.more and not self.sent_caught_up:
            self.sent_caught_up = True
            owner.caught_up(self)
        return batch

    def echo_filter(self) -> Callable[[Entry], bool]:
        """What not to send back: entries this twin sent (on this connection only while
        a full resync is owed: the twin may have lost what it sent before)."""
        origin = self.owner.origin
        twin = self.twin_id
        number = self.number if self.full else None

        def skip(entry: Entry) -> bool:
            return origin.came_from(entry, twin, number)

        return skip

    async def wait_news(self, timeout: float) -> None:
        """Wait until :meth:`has_news` or *timeout* seconds pass."""
        with trio.move_on_after(timeout):
            while not self.has_news():
                await self.owner.kicked()

    async def watchdog(self) -> None:
        """Fail the link when the twin has been silent for longer than the peer timeout."""
        timeout = self.owner.peer_timeout
        while True:
            silent = trio.current_time() - self.last_contact
            if silent > timeout:
                raise LinkFailed(f"the twin was silent for {silent:.1f} s")
            await trio.sleep(max(0.01, timeout - silent + 0.001))

    async def persister(self) -> None:
        """Store the positions now and then, so a restart resyncs incrementally."""
        interval = self.owner.heartbeat
        while True:
            await trio.sleep(interval)
            await self.owner.persist(self)


def link_error(group: BaseExceptionGroup[BaseException]) -> Exception:
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
