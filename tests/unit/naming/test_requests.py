"""The request-id table: bounded in size and age, indexed by feed position."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pairns.naming import requests
from pairns.naming.requests import RequestRecord, RequestTable


def test_known_request_returns_the_first_result() -> None:
    t = RequestTable()
    assert t.get("r1", now=0.0) == (False, None)
    t.add("r1", {"x": 1}, seq=5, now=0.0)
    t.add("r1", "second", seq=6, now=1.0)  # a second add does not replace the first
    assert t.get("r1", now=2.0) == (True, {"x": 1})


def test_bounded_by_count_and_by_age() -> None:
    t = RequestTable(max_size=3, ttl=10.0)
    for i in range(5):
        t.add(f"r{i}", i, seq=i + 1, now=float(i))
    assert len(t) == 3
    assert t.get("r0", now=5.0)[0] is False and t.get("r4", now=5.0) == (True, 4)
    assert t.get("r4", now=20.0)[0] is False  # too old
    t.add("late", None, seq=9, now=30.0)  # trimming drops the expired ones
    assert len(t) == 1


def test_between_lists_local_writes_by_feed_position() -> None:
    t = RequestTable()
    t.add("a", None, seq=3, now=0.0)
    t.add("c", None, seq=9, now=0.0)
    t.add("b", None, seq=5, now=0.0)  # finished out of order
    t.learn(RequestRecord("remote", None, 1.0), now=0.0)
    assert [r.request_id for r in t.between(0, 100, now=1.0)] == ["a", "b", "c"]
    assert [r.request_id for r in t.between(3, 5, now=1.0)] == ["b"]
    assert t.between(9, 100, now=1.0) == []
    assert {r.request_id for r in t.all_records(now=1.0)} == {"a", "b", "c", "remote"}


def test_a_full_table_keeps_its_index_right_and_bounded() -> None:
    # A full table forgets its oldest record on every write; the index rows of
    # forgotten records are cut off in batches, not one by one (which moved the
    # whole index on every write), and writes that finish out of order stay in order.
    t = RequestTable(max_size=1000)
    seqs = [s for base in range(1, 20_000, 4) for s in (base + 1, base, base + 3, base + 2)]
    for seq in seqs:
        t.add(f"r{seq}", None, seq=seq, now=0.0)
        assert len(t._by_seq) <= len(t) + requests._DEAD_ROWS
    assert len(t) == 1000
    got = [r.request_id for r in t.between(0, 10**9, now=0.0)]
    kept = sorted(seqs[-1000:])
    assert got == [f"r{s}" for s in kept]
    low = kept[500]
    assert [r.request_id for r in t.between(low, low + 10, now=0.0)] == [
        f"r{s}" for s in kept if low < s <= low + 10
    ]


def test_restore_reloads_young_stored_ids_within_the_bounds() -> None:
    t = RequestTable(max_size=3, ttl=10.0)
    stored = [("s1", 1, 85.0), ("s2", 2, 92.0), ("s3", 3, 95.0), ("s4", 4, 99.0), ("x", 7, 96.0)]
    t.restore(stored, now=100.0)
    # s1 is too old; of the rest the newest three are kept (the table's count bound).
    assert [rid for rid in ("s1", "s2", "s3", "s4", "x") if t.get(rid, now=100.0)[0]] == [
        "s3",
        "s4",
        "x",
    ]
    assert t.get("s3", now=100.0) == (True, None)
    # Restored ids are local writes: they go to the twin with their feed positions.
    assert [r.request_id for r in t.between(0, 10, now=100.0)] == ["s3", "s4", "x"]
    assert [r.age for r in t.between(3, 4, now=100.0)] == [1.0]
    t.add("new", None, seq=8, now=101.0)  # the oldest restored one makes room
    assert t.get("s3", now=101.0)[0] is False and t.get("new", now=101.0)[0]
    t.restore([], now=101.0)
    assert len(t) == 3


def test_restored_ids_of_the_twin_are_known_but_not_sent_back() -> None:
    t = RequestTable(ttl=10.0)
    t.restore([("twin", 0, 95.0), ("old-twin", 0, 80.0), ("mine", 4, 96.0)], now=100.0)
    assert t.get("twin", now=100.0) == (True, None)
    assert t.get("old-twin", now=100.0)[0] is False
    assert [r.request_id for r in t.between(0, 10, now=100.0)] == ["mine"]


def test_learnt_records_keep_their_age() -> None:
    t = RequestTable(ttl=10.0)
    t.learn(RequestRecord("old", None, 11.0), now=100.0)
    assert t.get("old", now=100.0)[0] is False
    t.learn(RequestRecord("young", 7, 9.0), now=100.0)
    assert t.get("young", now=100.5) == (True, 7)
    assert t.get("young", now=101.5)[0] is False


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.integers(0, 3), st.floats(0, 20)
        ),
        max_size=12,
    ),
    st.lists(st.sampled_from(["a", "b", "x"]), max_size=3, unique=True),
    st.integers(1, 8),
)
def test_learn_all_is_learn_one_by_one(
    batch: list[tuple[str, int, float]], known: list[str], max_size: int
) -> None:
    """Bulk learning (fast path or not) leaves what learning each record in turn does."""
    records = [RequestRecord(rid, result, age) for rid, result, age in batch]
    one, bulk = RequestTable(max_size=max_size, ttl=10.0), RequestTable(max_size=max_size, ttl=10.0)
    for t in (one, bulk):
        for i, rid in enumerate(known):
            t.add(rid, "local", seq=i + 1, now=99.0)
    for record in records:
        one.learn(record, now=100.0)
    bulk.learn_all(records, now=100.0)
    assert one.all_records(now=100.0) == bulk.all_records(now=100.0)
    assert one.between(0, 10, now=100.0) == bulk.between(0, 10, now=100.0)
