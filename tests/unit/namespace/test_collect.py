"""Collecting tombstones in one namespace: what may go, and that nothing shows it."""

from __future__ import annotations

import gc

from pairns.namespace import Entry, Kind, Stamp
from pairns.namespace.stamps import COUNTER_BITS

from .support import assert_matches_oracle, make_ns, snapshot, visible_names


def _shown(ns: object) -> dict[str, object]:
    """What clients see (the snapshot without the stored entries and the digest)."""
    view = snapshot(ns)  # type: ignore[arg-type]
    del view["stored"]
    return view


def test_a_tombstone_goes_once_its_position_is_covered() -> None:
    ns, _ = make_ns("A")
    ns.register(":Default.x", "PYRO://h/1")
    tomb = ns.unregister(":Default.x")
    seq = tomb.seqs[0]
    del tomb
    before = _shown(ns)
    assert ns.collect(seq - 1) == []
    assert ns.tombstone_count == 1
    assert ns.collect(seq) == [(":Default.x", seq)]
    assert ns.tombstone_count == 0
    assert ns.entry(":Default.x") is None
    assert ns.collected_count == 1
    assert ns.horizon.hlc > 0
    assert _shown(ns) == before
    ns.check_invariants()
    assert_matches_oracle(ns)
    # the name can be registered again, as if it had never existed
    ns.register(":Default.x", "PYRO://h/2")
    assert ns.resolve(":Default.x") == "PYRO://h/2"
    ns.check_invariants()


def test_a_group_tombstone_goes_after_its_children() -> None:
    ns, _ = make_ns("A")
    ns.create_group(":g")
    ns.register(":g.x", "PYRO://h/1")
    ns.create_group(":g.h")
    ns.delete_group(":g")
    gc.collect()
    first = ns.collect(ns.last_seq)
    assert {name for name, _ in first} == {":g.x", ":g.h"}
    assert ns.entry(":g") is not None  # it had descendants when the pass began
    assert [name for name, _ in ns.collect(ns.last_seq)] == [":g"]
    assert ns.tombstone_count == 0
    ns.check_invariants()
    assert_matches_oracle(ns)


def test_the_names_a_start_makes_keep_their_tombstones() -> None:
    ns, _ = make_ns("A")
    ns.delete_group(":Default")
    ns.delete_group(":Pyro")
    gc.collect()
    assert ns.collect(ns.last_seq) == []
    for name in (":Default", ":Pyro"):
        entry = ns.entry(name)
        assert entry is not None and entry.deleted
    # a start makes them again above the deletion (a real write), never below it
    for entry in ns.bootstrap().entries:
        assert entry.stamp.hlc > 1


def test_a_tombstone_still_being_committed_stays() -> None:
    ns, _ = make_ns("A")
    ns.register(":Default.x", "PYRO://h/1")
    pending = ns.unregister(":Default.x")
    assert ns.collect(ns.last_seq) == []
    ns.undo(pending)  # its commit failed: the object is back
    assert ns.resolve(":Default.x") == "PYRO://h/1"
    ns.check_invariants()


def test_a_group_tombstone_that_hides_a_live_entry_stays() -> None:
    a, ta = make_ns("A")
    b, _ = make_ns("B")
    a.create_group(":g")
    b.merge_all([e for _, e in a.entries_since(0)])
    late = b.register(":g.y", "PYRO://h/y")  # concurrent with the deletion below
    ta.advance(1.0)
    a.delete_group(":g")
    a.merge_all(late.entries)  # older than the deletion: hidden
    del late
    gc.collect()
    assert not a.exists(":g.y")
    assert a.collect(a.last_seq) == []  # :g hides :g.y: it must stay
    assert a.entry(":g") is not None


def test_the_digest_leaves_tombstones_out() -> None:
    a, _ = make_ns("A")
    b, _ = make_ns("B")
    b.merge_all([e for _, e in a.entries_since(0)])
    a.merge_all([e for _, e in b.entries_since(0)])
    a.register(":Default.x", "PYRO://h/1")
    changes = a.unregister(":Default.x")
    b.merge_all([e for _, e in a.entries_since(0)])
    del changes
    gc.collect()
    assert a.digest() == b.digest()
    a.collect(a.last_seq)  # collected on one node only, for now
    assert a.tombstone_count == 0 and b.tombstone_count == 1
    assert a.digest() == b.digest()
    assert visible_names(a) == visible_names(b)
    b.collect(b.last_seq)
    assert a.digest() == b.digest()
    a.check_invariants()
    b.check_invariants()


def test_is_collected_needs_a_live_entry_whose_name_has_none_here() -> None:
    ns, _ = make_ns("A")
    ns.register(":Default.x", "PYRO://h/1")
    old = ns.entry(":Default.x")
    assert old is not None
    ns.unregister(":Default.x")
    gc.collect()
    assert not ns.is_collected(old)  # its tombstone is still there
    ns.collect(ns.last_seq)
    assert ns.is_collected(old)
    tomb = Entry(":Default.y", Kind.GROUP, None, None, 1, 1, "B", Stamp(5, "B"), True)
    assert not ns.is_collected(tomb)


class _CountingSeqs(dict[str, int]):
    """The namespace's name -> position map, counting the lookups by name."""

    lookups = 0

    def __getitem__(self, name: str) -> int:
        type(self).lookups += 1
        return super().__getitem__(name)


def test_a_pass_stops_at_the_first_tombstone_too_new_and_later_ones_wait_for_it() -> None:
    ns, time = make_ns("A")
    for i in range(1_000):
        ns.register(f":Default.c{i}", "PYRO://h/1")
        ns.unregister(f":Default.c{i}")
    counting = _CountingSeqs(ns._seq)
    object.__setattr__(ns, "_seq", counting)
    # Nothing is durable: the pass looks at the oldest tombstone only, not at 1,000.
    assert ns.collect(0) == []
    assert _CountingSeqs.lookups <= 2
    # Within the grace period: the same.
    _CountingSeqs.lookups = 0
    older_than = ns.clock.physical() - (60_000 << COUNTER_BITS)
    assert ns.collect(ns.last_seq, older_than=older_than) == []
    assert _CountingSeqs.lookups <= 2
    # A tombstone from the twin with an older stamp, after a newer one in the feed,
    # waits for that one to age, then both go.
    assert len(ns.collect(ns.last_seq, limit=10_000)) == 1_000  # no grace asked
    time.advance(30)
    ns.register(":Default.late", "PYRO://h/2")
    ns.unregister(":Default.late")
    old_stamp = Stamp(ns.clock.physical() - (40_000 << COUNTER_BITS), "B")
    merged = ns.merge(
        Entry(
            name=":Default.twins",
            kind=Kind.OBJECT,
            uri=None,
            meta=None,
            created=1000.0,
            modified=1000.0,
            owner="B",
            stamp=old_stamp,
            deleted=True,
        )
    )
    assert merged
    time.advance(25)  # ":Default.late" is 25 s old, the twin's 65 s
    grace = ns.clock.physical() - (60_000 << COUNTER_BITS)
    assert ns.collect(ns.last_seq, older_than=grace) == []
    time.advance(40)
    grace = ns.clock.physical() - (60_000 << COUNTER_BITS)
    gone = {name for name, _seq in ns.collect(ns.last_seq, older_than=grace)}
    assert gone == {":Default.late", ":Default.twins"}
    assert ns.tombstone_count == 0
    ns.check_invariants()
