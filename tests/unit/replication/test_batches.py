"""Building batches from the change feed, and applying them on another replica."""

from __future__ import annotations

import itertools

from pairns.namespace import HybridClock, Namespace
from pairns.replication.link import FeedCursor, build_batch
from pairns.replication.messages import Batch
from pairns.replication.requests import RequestTable


def replica(node: str) -> Namespace:
    ticks = itertools.count(1_000_000)
    ns = Namespace(node, HybridClock(node, now=lambda: next(ticks) / 1000))
    ns.bootstrap()
    return ns


def drain(src: Namespace, dst: Namespace, start: int, *, skip: str | None, limit: int) -> int:
    """Send *src*'s feed above *start* to *dst* in batches; the final position."""
    requests = RequestTable()
    for _ in range(10_000):
        batch = build_batch(
            src,
            start=start,
            end=src.last_seq,
            ack=0,
            skip_node=skip,
            requests=requests,
            now=0.0,
            limit=limit,
        )
        batch = Batch.from_wire(batch.to_wire())  # through the wire form
        dst.merge_all((item.entry, item.seen) for item in batch.items)
        assert batch.start == start and batch.upto >= start
        start = batch.upto
        if not batch.more:
            return start
    raise AssertionError("the feed never ended")


def test_full_then_incremental_exchange_converges() -> None:
    a, b = replica("a"), replica("b")
    a.create_group(":g")
    for i in range(50):
        a.register(f":g.o{i}", f"PYRO://127.0.0.1:1/o{i}")
    b.create_group(":h")
    a_end = a.last_seq
    pos_a = drain(a, b, 0, skip=None, limit=7)
    pos_b = drain(b, a, 0, skip=None, limit=7)
    assert a.digest() == b.digest()
    assert pos_a == a_end
    # Later changes travel incrementally, from the positions reached.
    a.unregister(":g.o3")
    b.set_meta(":h", {"x": 1})
    before = a.last_seq
    drain(a, b, pos_a, skip="b", limit=7)
    drain(b, a, pos_b, skip="a", limit=7)
    assert a.digest() == b.digest()
    assert a.last_seq > before


def test_twin_stamped_entries_are_not_echoed_but_covered() -> None:
    a, b = replica("a"), replica("b")
    b.create_group(":from_b")
    drain(b, a, 0, skip=None, limit=100)
    start = 0
    batch = build_batch(
        a, start=start, end=a.last_seq, ack=0, skip_node="b", requests=RequestTable(), now=0.0
    )
    assert all(item.entry.stamp.node != "b" for item in batch.items)
    assert batch.upto == a.last_seq and not batch.more


def test_batches_stop_at_the_durable_end_and_at_the_size_limit() -> None:
    a = replica("a")
    a.create_group(":g")
    a.set_meta(":g", "m" * 4000)
    for i in range(20):
        a.register(f":g.o{i}", f"PYRO://127.0.0.1:1/o{i}")
    end = a.last_seq - 5  # the last five are not durable yet
    batch = build_batch(
        a, start=0, end=end, ack=0, skip_node=None, requests=RequestTable(), now=0.0
    )
    assert batch.upto == end and all(item.seq <= end for item in batch.items)
    assert not batch.more
    small = build_batch(
        a,
        start=0,
        end=a.last_seq,
        ack=0,
        skip_node=None,
        requests=RequestTable(),
        now=0.0,
        max_bytes=2000,
    )
    assert small.more and small.upto < a.last_seq


def test_request_records_travel_with_their_writes() -> None:
    a = replica("a")
    requests = RequestTable()
    changes = a.create_group(":g")
    requests.add("rid-1", None, changes.seqs[-1], now=0.0)
    batch = build_batch(
        a, start=0, end=a.last_seq, ack=0, skip_node=None, requests=requests, now=1.0
    )
    assert [r.request_id for r in batch.requests] == ["rid-1"]
    later = build_batch(
        a, start=batch.upto, end=a.last_seq, ack=0, skip_node=None, requests=requests, now=1.0
    )
    assert later.requests == ()


def test_cursor_pages_match_the_feed_even_when_names_change_meanwhile() -> None:
    a = replica("a")
    a.create_group(":g")
    for i in range(100):
        a.register(f":g.o{i}", f"PYRO://127.0.0.1:1/o{i}")
    cursor = FeedCursor(a)
    first = cursor.rows(0, 10)
    assert first == a.entries_since(0, limit=10)
    # A name in the next page is replaced: the cursor notices and lists again.
    a.unregister(":g.o15")
    second = cursor.rows(first[-1][0], 10)
    assert second == a.entries_since(first[-1][0], limit=10)
    assert all(a.entry(e.name) is e for _, e in second)
    # Paging to the end gives every current entry above 0 exactly once.
    pos, seen = 0, []
    for _ in range(100):
        page = cursor.rows(pos, 7)
        if not page:
            break
        seen.extend(page)
        pos = page[-1][0]
    assert seen == a.entries_since(0)
