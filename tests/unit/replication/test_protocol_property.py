"""Property: two replicas that exchange batches over a lossy, duplicating channel, with
reconnections that restart from the acknowledged positions, converge to identical
namespaces once the channel behaves. Drives the real batch builder, wire form, position
bookkeeping and skip rule; only the sockets are replaced by lists."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.errors import LocalProtocolError, NamingError
from pairns.namespace import HybridClock, Namespace
from pairns.naming.requests import RequestTable
from pairns.replication.feed import FeedCursor, TwinOrigin, build_batch
from pairns.replication.messages import Batch
from pairns.replication.state import Positions

NAMES = [":a", ":b", ":a.x", ":a.y", ":b.z", ":a.x.q"]


class Side:
    def __init__(self, node: str, now: itertools.count[int]) -> None:
        self.node = node
        self.ns = Namespace(node, HybridClock(node, now=lambda: next(now) / 1000))
        self.ns.bootstrap()
        self.pos = Positions()
        self.cursor = FeedCursor(self.ns)
        self.requests = RequestTable()
        self.full = True
        self.link = 0
        self.origin = TwinOrigin()  # what this side merged from its twin

    def write(self, rng: random.Random) -> None:
        name = rng.choice(NAMES)
        op = rng.randrange(4)
        try:
            if op == 0:
                self.ns.create_group(name)
            elif op == 1:
                self.ns.register(name, f"PYRO://127.0.0.1:1/{rng.randrange(99)}")
            elif op == 2:
                self.ns.delete_group(name)
            else:
                self.ns.unregister(name)
        except NamingError:
            pass

    def next_batch(self, twin: str) -> Batch:
        batch = build_batch(
            self.ns,
            start=self.pos.sent,
            end=self.ns.last_seq,
            ack=self.pos.applied,
            skip=lambda e: self.origin.came_from(e, twin, self.link if self.full else None),
            requests=self.requests,
            now=0.0,
            limit=3,
            cursor=self.cursor,
        )
        self.pos.on_sent(batch.upto)
        return Batch.from_wire(batch.to_wire())

    def receive(self, batch: Batch, twin: str) -> None:
        self.pos.check_batch(batch.start)  # raises on a gap or a replay: reconnect
        self.pos.on_ack(batch.ack)
        changes = self.ns.merge_all((item.entry, item.seen) for item in batch.items)
        for entry in changes.entries:
            self.origin.add(entry, twin, self.link)
        self.pos.on_received(batch.upto)
        self.pos.on_durable(batch.upto)


def reconnect(a: Side, b: Side, *, full: bool) -> None:
    """What the hellos agree on: each sends from what the other has applied."""
    a_applied, b_applied = (0, 0) if full else (a.pos.applied, b.pos.applied)
    a.pos.restart(acked=b_applied, applied=a_applied)
    b.pos.restart(acked=a_applied, applied=b_applied)
    for side in (a, b):
        side.full = full
        side.link += 1
        side.cursor = FeedCursor(side.ns)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 300))
def test_lossy_exchange_with_reconnects_converges(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    now = itertools.count(1_000_000)
    a, b = Side("a", now), Side("b", now)
    reconnect(a, b, full=True)
    to_b: list[Batch] = []
    to_a: list[Batch] = []
    for _ in range(steps):
        action = rng.randrange(10)
        if action < 3:
            rng.choice((a, b)).write(rng)
        elif action == 3:
            to_b.append(a.next_batch("b"))
        elif action == 4:
            to_a.append(b.next_batch("a"))
        elif action in (5, 6):
            queue, side = rng.choice(((to_b, b), (to_a, a)))
            if queue:
                batch = queue.pop(0) if rng.random() < 0.8 else rng.choice(queue)  # reorder
                if rng.random() < 0.2:
                    queue.insert(0, batch)  # duplicate
                try:
                    side.receive(batch, "a" if side is b else "b")
                except LocalProtocolError:
                    to_a.clear(), to_b.clear()
                    reconnect(a, b, full=False)
        elif action == 7:
            (to_b if rng.random() < 0.5 else to_a).clear()  # the connection dropped
            reconnect(a, b, full=rng.random() < 0.1)
        elif action == 8 and to_b:
            to_b.pop(rng.randrange(len(to_b)))  # a lost batch: the next one is a gap
    # The link heals: reconnect, then exchange until neither side has anything more.
    to_a.clear(), to_b.clear()
    reconnect(a, b, full=False)
    for _ in range(1000):
        ba, bb = a.next_batch("b"), b.next_batch("a")
        b.receive(ba, "a")
        a.receive(bb, "b")
        if (
            not ba.more
            and not bb.more
            and a.pos.sent == a.ns.last_seq
            and (b.pos.sent == b.ns.last_seq)
        ):
            break
    assert a.ns.digest() == b.ns.digest()
    assert a.ns.flatlist() == b.ns.flatlist()
