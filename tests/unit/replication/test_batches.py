"""Building batches from the change feed, and applying them on another replica."""

from __future__ import annotations

import itertools
from typing import Any

from pairns.namespace import HybridClock, Namespace
from pairns.naming.requests import RequestTable
from pairns.replication.feed import FeedCursor, TwinOrigin, build_batch
from pairns.replication.messages import Batch
from pairns.wire.frames import encode_json


def replica(node: str) -> Namespace:
    ticks = itertools.count(1_000_000)
    ns = Namespace(node, HybridClock(node, now=lambda: next(ticks) / 1000))
    ns.bootstrap()
    return ns


def drain(
    src: Namespace,
    dst: Namespace,
    start: int,
    *,
    limit: int,
    origin: TwinOrigin | None = None,
    mark: TwinOrigin | None = None,
) -> int:
    """Send *src*'s feed above *start* to *dst* in batches; the final position.

    *origin* is what *src* merged from *dst* (not echoed); *mark* records what *dst*
    merges from *src*.
    """
    requests = RequestTable()
    skip = None if origin is None else (lambda e: origin.came_from(e, dst.node_id))
    for _ in range(10_000):
        batch = build_batch(
            src,
            start=start,
            end=src.last_seq,
            ack=0,
            skip=skip,
            requests=requests,
            now=0.0,
            limit=limit,
        )
        batch = Batch.from_wire(batch.to_wire())  # through the wire form
        merged = dst.merge_all((item.entry, item.seen) for item in batch.items)
        for entry in merged.entries:
            if mark is not None:
                mark.add(entry, src.node_id, 1)
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
    from_b, from_a = TwinOrigin(), TwinOrigin()  # what a merged from b, b from a
    pos_a = drain(a, b, 0, limit=7, mark=from_a)
    pos_b = drain(b, a, 0, limit=7, origin=from_a, mark=from_b)
    assert a.digest() == b.digest()
    assert pos_a == a_end
    # Later changes travel incrementally, from the positions reached.
    a.unregister(":g.o3")
    b.set_meta(":h", {"x": 1})
    before = a.last_seq
    drain(a, b, pos_a, limit=7, origin=from_b, mark=from_a)
    drain(b, a, pos_b, limit=7, origin=from_a, mark=from_b)
    assert a.digest() == b.digest()
    assert a.last_seq > before


def test_what_the_twin_sent_is_not_echoed_but_covered() -> None:
    a, b = replica("a"), replica("b")
    b.create_group(":from_b")
    from_b = TwinOrigin()
    drain(b, a, 0, limit=100, mark=from_b)
    assert len(from_b) > 0
    batch = build_batch(
        a,
        start=0,
        end=a.last_seq,
        ack=0,
        requests=RequestTable(),
        now=0.0,
        skip=lambda e: from_b.came_from(e, "b"),
    )
    assert not any(from_b.came_from(item.entry, "b") for item in batch.items)
    assert batch.upto == a.last_seq and not batch.more
    assert ":from_b" not in {item.entry.name for item in batch.items}


def test_an_entry_written_here_with_the_twins_stamp_is_sent() -> None:
    """A group the twin deleted, re-created here: the tombstone copies this node writes
    for the children the deletion hid carry the *twin's* stamp, and the twin must get
    them (else the child shows up again there)."""
    ticks = itertools.count(1_000_000)
    a = Namespace("a", HybridClock("a", now=lambda: next(ticks) / 1000))
    b = Namespace("b", HybridClock("b", now=lambda: next(ticks) / 1000))
    a.bootstrap(), b.bootstrap()
    from_b, from_a = TwinOrigin(), TwinOrigin()  # what a merged from b, b from a
    a.create_group(":g")
    pos_a = drain(a, b, 0, limit=50, mark=from_a)
    b.register(":g.x", "PYRO://127.0.0.1:1/x")  # b writes under :g ...
    a.delete_group(":g")  # ... while a, later, deletes it without knowing :g.x
    pos_b = drain(b, a, 0, limit=50, origin=from_a, mark=from_b)
    pos_a = drain(a, b, pos_a, limit=50, origin=from_b, mark=from_a)
    assert not b.exists(":g.x")  # hidden by the newer deletion
    b.create_group(":g")  # re-created on b: it buries :g.x with a copy of a's tombstone
    copy = b.entry(":g.x")
    assert copy is not None and copy.deleted and copy.stamp.node == "a"
    drain(b, a, pos_b, limit=50, origin=from_a, mark=from_b)
    assert a.digest() == b.digest()
    assert not a.exists(":g.x")


def test_origin_forgets_replaced_entries_and_other_twins() -> None:
    a = replica("a")
    origin = TwinOrigin()
    changes = a.create_group(":g")
    entry = changes.entries[-1]
    origin.add(entry, "b", 3)
    assert origin.came_from(entry, "b") and origin.came_from(entry, "b", 3)
    assert not origin.came_from(entry, "b", 4) and not origin.came_from(entry, "c")
    del changes
    a.delete_group(":g")
    del entry
    assert len(origin) == 0


def test_batches_stop_at_the_durable_end_and_at_the_size_limit() -> None:
    a = replica("a")
    a.create_group(":g")
    a.set_meta(":g", "m" * 4000)
    for i in range(20):
        a.register(f":g.o{i}", f"PYRO://127.0.0.1:1/o{i}")
    end = a.last_seq - 5  # the last five are not durable yet
    batch = build_batch(a, start=0, end=end, ack=0, requests=RequestTable(), now=0.0)
    assert batch.upto == end and all(item.seq <= end for item in batch.items)
    assert not batch.more
    small = build_batch(
        a,
        start=0,
        end=a.last_seq,
        ack=0,
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
    batch = build_batch(a, start=0, end=a.last_seq, ack=0, requests=requests, now=1.0)
    assert [r.request_id for r in batch.requests] == ["rid-1"]
    later = build_batch(a, start=batch.upto, end=a.last_seq, ack=0, requests=requests, now=1.0)
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
    assert _all_pages(cursor, 7) == a.entries_since(0)


def test_a_cursor_serves_a_snapshot_from_0_page_by_page() -> None:
    a = replica("a")
    a.create_group(":g")
    for i in range(50):
        a.register(f":g.o{i}", f"PYRO://h:1/{i}")
    feed = a.entries_since(0)
    assert a.entries_since(0, limit=7) == feed[:7]
    assert a.entries_since(0, limit=0) == []
    assert _all_pages(FeedCursor(a), 10) == feed


def _all_pages(cursor: FeedCursor, size: int) -> list[Any]:
    """Every row a cursor serves from position 0, page by page (at most 100 pages)."""
    rows: list[Any] = []
    start = 0
    for _ in range(100):
        page = cursor.rows(start, size)
        if not page:
            break
        rows.extend(page)
        start = page[-1][0]
    return rows


def _frame_bytes(batch: Batch) -> int:
    return len(encode_json(batch.to_wire()))


def _all_batches(a: Namespace, requests: RequestTable, max_bytes: int) -> list[Batch]:
    batches = []
    start = 0
    for _ in range(1_000):
        batch = build_batch(
            a, start=start, end=a.last_seq, ack=0, requests=requests, now=1.0, max_bytes=max_bytes
        )
        batches.append(batch)
        start = batch.upto
        if not batch.more:
            return batches
    raise AssertionError("the feed never ended")


def test_large_unicode_metadata_stays_within_the_frame() -> None:
    """16,000 emoji are 64,000 bytes of metadata (the limit is 64 KiB): counted in
    characters, 25 of them went into one batch, a 1.4 MB frame against a 1 MiB limit,
    and the link failed on that batch again and again."""
    frame = 1 << 20
    a = replica("a")
    for i in range(40):
        a.register(f":Default.n{i}", f"PYRO://h:1/o{i}")
        a.set_meta(f":Default.n{i}", "\U0001f600" * 16_000)
    batches = _all_batches(a, RequestTable(), max_bytes=frame // 3)
    assert max(map(_frame_bytes, batches)) <= frame
    sent = [item.entry.name for batch in batches for item in batch.items]
    assert {f":Default.n{i}" for i in range(40)} <= set(sent)


def test_long_request_ids_stay_within_the_frame_and_all_travel() -> None:
    frame = 64 * 1024
    a = replica("a")
    requests = RequestTable()
    for i in range(400):
        changes = a.register(f":Default.n{i}", f"PYRO://h:1/o{i}")
        requests.add(f"{i:04d}" + "\u00e9" * 250, None, changes.seqs[-1], now=0.0)
    batches = _all_batches(a, requests, max_bytes=frame // 3)
    assert max(map(_frame_bytes, batches)) <= frame
    assert len(batches) > 2
    travelled = [record.request_id[:4] for batch in batches for record in batch.requests]
    assert travelled == [f"{i:04d}" for i in range(400)]
