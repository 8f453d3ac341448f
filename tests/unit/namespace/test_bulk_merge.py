"""The bulk merge path of ``Namespace.merge_all`` gives exactly what merging the same
entries one by one gives: entries, feed, knowledge, visible state, digest, conflicts,
change set and undo."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pairns.errors import NamingError
from pairns.namespace import ChangeSet, Conflict, Entry, Kind, Namespace, Stamp
from pairns.namespace import state as state_module

from .support import assert_matches_oracle, make_ns, snapshot

NAMES = [":" + ".".join(p) for n in (1, 2, 3) for p in itertools.product("ab", repeat=n)]
NAMES += [":Default", ":Pyro", ":Pyro.x"]

Pairs = list[tuple[Entry, Stamp | None]]


@st.composite
def entries(draw: st.DrawFn, tombstones: bool) -> tuple[Entry, Stamp | None]:
    name = draw(st.sampled_from(NAMES))
    kind = draw(st.sampled_from([Kind.GROUP, Kind.OBJECT]))
    deleted = tombstones and draw(st.integers(0, 5)) == 0
    uri = None if deleted or kind is Kind.GROUP else f"PYRO://h:1/{draw(st.integers(0, 2))}"
    meta = None if deleted else draw(st.sampled_from([None, 1, {"k": [1]}]))
    node = draw(st.sampled_from(["B", "C"]))
    stamp = Stamp(draw(st.integers(1, 40)) << 16, node)
    seen = draw(st.one_of(st.none(), st.builds(Stamp, st.integers(0, 40 << 16), st.just("A"))))
    return Entry(name, kind, uri, meta, 5.0, 6.0, node, stamp, deleted), seen


def receiver(before: Pairs) -> tuple[Namespace, list[Conflict]]:
    """A bootstrapped namespace that merged *before* one by one, collecting conflicts."""
    ns, _ = make_ns("A")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "BULK_MERGE_MIN", 10**9)
        ns.merge_all(before)
    found: list[Conflict] = []
    ns.on_conflict = found.append
    return ns, found


def state_of(ns: Namespace) -> dict[str, Any]:
    """Everything observable (after checking the bookkeeping the incremental path
    reads)."""
    result = snapshot(ns)
    result["feed"] = ns.entries_since(0)
    result["last_seq"] = ns.last_seq
    result["seen"] = {name: ns.seen_of(name) for name in result["stored"]}
    resolved: dict[str, str] = {}
    for name in NAMES:
        try:
            resolved[name] = ns.resolve(name)
        except NamingError as exc:
            resolved[name] = f"error: {exc}"
    result["resolve"] = resolved
    ns.check_invariants()  # the bookkeeping the incremental path reads matches the entries
    return result


def change_fields(changes: ChangeSet) -> tuple[Any, ...]:
    return (
        changes.entries,
        changes.seqs,
        changes.previous,
        changes.previous_seqs,
        changes.previous_seen,
        changes.seen,
    )


def check_same(before: Pairs, batch: Pairs, digest_first: bool) -> bool:
    """Merge *batch* both ways into equal receivers; compare; undo; compare. True if the
    bulk path was taken."""
    one, one_found = receiver(before)
    bulk, bulk_found = receiver(before)
    if digest_first:
        one.digest()
        bulk.digest()
    initial = state_of(one)
    assert state_of(bulk) == initial
    eligible = bulk._bulk_eligible(list(batch))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "BULK_MERGE_MIN", 10**9)
        one_changes = one.merge_all(batch)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "BULK_MERGE_MIN", 1)
        bulk_changes = bulk.merge_all(batch)
    assert change_fields(bulk_changes) == change_fields(one_changes)
    assert bulk_found == one_found
    assert bulk.conflict_count == one.conflict_count
    assert state_of(bulk) == state_of(one)
    assert bulk.clock.last == one.clock.last
    assert_matches_oracle(bulk)
    bulk.undo(bulk_changes)
    one.undo(one_changes)
    after_undo = state_of(bulk)
    assert after_undo == state_of(one)
    del after_undo["last_seq"], initial["last_seq"]  # the feed goes on after an undo
    assert after_undo == initial
    assert_matches_oracle(bulk)
    return eligible


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(entries(tombstones=False), max_size=25),
    batch=st.lists(entries(tombstones=False), min_size=1, max_size=25),
    digest_first=st.booleans(),
)
def test_bulk_merge_equals_merging_one_by_one(
    before: Pairs, batch: Pairs, digest_first: bool
) -> None:
    event(f"bulk path: {check_same(before, batch, digest_first)}")


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(entries(tombstones=False), max_size=6),
    batch=st.lists(
        entries(tombstones=False), min_size=1, max_size=25, unique_by=lambda p: p[0].name
    ),
    digest_first=st.booleans(),
)
def test_bulk_merge_of_new_names_equals_merging_one_by_one(
    before: Pairs, batch: Pairs, digest_first: bool
) -> None:
    """Batches of distinct names, often none of them stored yet: the column-wise path."""
    stored = {entry.name for entry, _ in before} | {":", ":Default", ":Pyro"}
    fresh = not stored & {entry.name for entry, _ in batch}
    event(f"bulk path: {check_same(before, batch, digest_first)}, all names new: {fresh}")


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(entries(tombstones=True), max_size=25),
    batch=st.lists(entries(tombstones=True), min_size=1, max_size=25),
    digest_first=st.booleans(),
)
def test_batches_outside_the_bulk_rule_merge_one_by_one(
    before: Pairs, batch: Pairs, digest_first: bool
) -> None:
    event(f"bulk path: {check_same(before, batch, digest_first)}")


def test_a_full_snapshot_to_a_fresh_node_takes_the_bulk_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender, _ = make_ns("B")
    for g in range(10):
        sender.create_group(f":g{g}")
        for i in range(300):
            sender.register(f":g{g}.o{i}", f"PYRO://h:1/{g}-{i}")
        sender.set_meta(f":g{g}", {"n": g})  # the parent now comes after its children
    rows = [(e, sender.seen_of(e.name)) for _, e in sender.entries_since(0)]
    calls: list[int] = []
    original = Namespace._merge_bulk

    def spy(self: Namespace, pairs: Pairs, changes: ChangeSet) -> None:
        calls.append(len(pairs))
        original(self, pairs, changes)

    monkeypatch.setattr(Namespace, "_merge_bulk", spy)
    fresh, _ = make_ns("A")
    found: list[Conflict] = []
    fresh.on_conflict = found.append
    for start in range(0, len(rows), 2000):
        fresh.merge_all(rows[start : start + 2000])
    assert calls == [2000, len(rows) - 2000]
    assert fresh.flatlist() == sender.flatlist()
    assert fresh.list(":g3") == sender.list(":g3")
    assert fresh.get_meta(":g7") == {"n": 7}
    assert found == []  # both sides made the same bootstrap groups: not a conflict
    assert_matches_oracle(fresh)
    # Later incremental changes see a consistent view.
    fresh.delete_group(":g2")
    assert not fresh.exists(":g2.o5")
    assert_matches_oracle(fresh)


def test_an_invalid_entry_in_a_large_batch_fails_whole_as_one_by_one() -> None:
    good = [
        Entry(f":n{i}", Kind.OBJECT, "PYRO://h:1/x", None, 1.0, 1.0, "B", Stamp((i + 1) << 16, "B"))
        for i in range(400)
    ]
    bad = Entry(":bad", Kind.OBJECT, None, None, 1.0, 1.0, "B", Stamp(1 << 16, "B"))
    ns, _ = make_ns("A")
    with pytest.raises(ValueError, match="without a URI"):
        ns.merge_all([*good[:300], bad, *good[300:]])
    # All or nothing (issue 22): what came before the bad entry is undone too.
    assert not ns.exists(":n299") and not ns.exists(":n0")
    assert not ns.exists(":n300")
    small = make_ns("A")[0]
    with pytest.raises(ValueError, match="without a URI"):
        small.merge_all([*good[:3], bad])
    assert not small.exists(":n0")
    assert_matches_oracle(ns)
