"""Merging replicas: structural conflicts, conflict reports, and convergence properties."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pairns.errors import NamingError
from pairns.namespace import ZERO_STAMP, ChangeSet, Conflict, Entry, Kind, Namespace, Stamp

from .support import FakeTime, assert_matches_oracle, make_ns, snapshot

Outbox = list[tuple[Entry, Stamp]]


def pair(skew: float = 0.0) -> tuple[Namespace, Namespace, FakeTime, FakeTime]:
    """Two bootstrapped replicas "A" and "B" that already hold each other's state."""
    a, ta = make_ns("A", start=1000.0)
    b, tb = make_ns("B", start=1000.0 + skew)
    sync(a, b)
    return a, b, ta, tb


def send(changes: ChangeSet) -> Outbox:
    """What the node that made *changes* sends its twin: each entry with its knowledge."""
    return list(zip(changes.entries, changes.seen, strict=True))


def deliver(outbox: Outbox, to: Namespace) -> None:
    for entry, seen in outbox:
        to.merge(entry, seen)


def sync(a: Namespace, b: Namespace) -> None:
    """Full exchange both ways (what a resync from position 0 does)."""
    for src, dst in ((a, b), (b, a)):
        dst.merge_all([(e, src.seen_of(e.name)) for _, e in src.entries_since(0)])


def collect(ns: Namespace) -> list[Conflict]:
    found: list[Conflict] = []
    ns.on_conflict = found.append
    return found


# -- structural conflicts, by hand -----------------------------------------------------


def test_delete_wins_over_an_older_concurrent_register() -> None:
    a, b, ta, tb = pair()
    a.create_group(":g")
    sync(a, b)
    b_conflicts = collect(b)
    tb.advance(1)
    reg = send(b.register(":g.new", "PYRO://h/1"))  # older...
    ta.advance(2)
    dele = send(a.delete_group(":g"))  # ...than the deletion, made without knowing it
    deliver(reg, a)
    deliver(dele, b)
    for ns in (a, b):
        assert not ns.exists(":g") and not ns.exists(":g.new")
        assert_matches_oracle(ns)
    assert a.digest() == b.digest()
    assert [(c.kind, c.name) for c in b_conflicts] == [("hidden", ":g.new")]
    assert b_conflicts[0].loser.uri == "PYRO://h/1"
    # re-creating the group does not bring the hidden registration back
    for ns in (a, b):
        fresh = ns.create_group(":g")
        assert ns.list(":g") == []
        assert ":g.new" in [e.name for e in fresh]  # buried with the deletion's stamp
    sync(a, b)
    assert a.list(":g") == b.list(":g") == []
    assert a.digest() == b.digest()


def test_a_newer_register_revives_a_deleted_group() -> None:
    a, b, ta, tb = pair()
    a.create_group(":g")
    a.register(":g.old", "PYRO://h/old")
    a.create_group(":g.sub")
    sync(a, b)
    a_conflicts = collect(a)
    ta.advance(1)
    dele = send(a.delete_group(":g"))
    tb.advance(2)
    reg = send(b.register(":g.new", "PYRO://h/new"))  # newer than the deletion
    deliver(reg, a)
    deliver(dele, b)
    for ns in (a, b):
        assert ns.list(":g") == [("new", 1)]  # the deletion's other victims stay deleted
        assert ns.resolve(":g.new") == "PYRO://h/new"
        assert ns.get_meta(":g") is None
        assert ns.get_system_meta(":g")["kind"] == "group"
        assert_matches_oracle(ns)
    assert a.digest() == b.digest()
    assert [(c.kind, c.name) for c in a_conflicts] == [("revived", ":g")]
    # the revived group is a normal group again: metadata, deletion, re-creation
    a.set_meta(":g", "back")
    assert a.get_meta(":g") == "back" and a.list(":g") == [("new", 1)]
    a.delete_group(":g")
    assert not a.exists(":g.new")
    sync(a, b)
    assert snapshot(a) == snapshot(b)


def test_revival_goes_up_through_deleted_parents_only_on_the_path() -> None:
    a, b, ta, tb = pair()
    a.create_group(":g")
    a.create_group(":g.h")
    a.create_group(":g.other")
    sync(a, b)
    ta.advance(1)
    dele = send(a.delete_group(":g"))
    tb.advance(2)
    reg = send(b.register(":g.h.x", "PYRO://h/x"))
    deliver(reg, a)
    deliver(dele, b)
    for ns in (a, b):
        assert ns.list(":g") == [("h", 0)]
        assert ns.list(":g.h") == [("x", 1)]
        assert_matches_oracle(ns)


def test_an_object_replacing_a_group_hides_its_children() -> None:
    a, b, ta, tb = pair()
    ta.advance(1)
    grp = send(a.create_group(":n"))
    grp += send(a.register(":n.child", "PYRO://h/c"))
    tb.advance(2)
    obj = send(b.register(":n", "PYRO://h/obj"))  # newer: wins the name
    a_conflicts = collect(a)
    deliver(obj, a)
    deliver(grp, b)
    for ns in (a, b):
        assert ns.resolve(":n") == "PYRO://h/obj"
        with pytest.raises(NamingError, match="group not found"):
            ns.resolve(":n.child")
        assert_matches_oracle(ns)
    assert a.digest() == b.digest()
    kinds = {(c.kind, c.name) for c in a_conflicts}
    assert ("version", ":n") in kinds and ("hidden", ":n.child") in kinds


def test_a_group_replacing_an_object_wins_when_newer() -> None:
    a, b, ta, tb = pair()
    ta.advance(1)
    obj = send(a.register(":n", "PYRO://h/obj"))
    tb.advance(2)
    grp = send(b.create_group(":n"))
    deliver(obj, b)
    deliver(grp, a)
    for ns in (a, b):
        assert ns.kind_of(":n") is Kind.GROUP
        assert_matches_oracle(ns)


def test_normal_replication_reports_no_conflicts() -> None:
    a, b, ta, tb = pair()
    seen_by_b = collect(b)
    seen_by_a = collect(a)
    ops: list[Callable[[], ChangeSet]] = [
        lambda: a.create_group(":g"),
        lambda: a.register(":g.x", "PYRO://h/1"),
        lambda: a.create_group(":g.h"),
        lambda: a.register(":g.h.y", "PYRO://h/2"),
    ]
    for op in ops:
        ta.advance(1)
        deliver(send(op()), b)
    tb.advance(5)
    deliver(send(b.set_meta(":g.x", "m")), a)  # B updates what it got from A
    deliver(send(b.unregister(":g.h.y")), a)
    ta.advance(5)
    deliver(send(a.delete_group(":g")), b)  # children's tombstones travel first
    assert seen_by_a == [] and seen_by_b == []
    assert snapshot(a) == snapshot(b)


def test_concurrent_writes_to_one_name_report_a_version_conflict_on_the_loser() -> None:
    a, b, ta, tb = pair()
    a_conflicts, b_conflicts = collect(a), collect(b)
    ta.advance(1)
    from_a = send(a.register(":Default.o", "PYRO://h/a"))
    tb.advance(2)
    from_b = send(b.register(":Default.o", "PYRO://h/b"))  # newer, written without A's
    deliver(from_a, b)
    deliver(from_b, a)
    assert a.resolve(":Default.o") == b.resolve(":Default.o") == "PYRO://h/b"
    assert b_conflicts == []
    assert [(c.kind, c.winner.uri, c.loser.uri) for c in a_conflicts] == [
        ("version", "PYRO://h/b", "PYRO://h/a")
    ]
    assert a.conflict_count == 1 and b.conflict_count == 0


def test_my_deletion_lost_to_the_twins_concurrent_one_is_reported() -> None:
    """Found by the chaos suite (seed 49): B deletes a name A deleted concurrently with
    a clock ahead; A's deletion wins (nothing a client sees changes), then A registers
    the name again, knowing only its own deletion. Without a report when B's deletion
    lost, B's client's unregister was undone by a register nobody reported."""
    a, b, ta, tb = pair(skew=-20.0)  # B's clock 20 s behind A's
    ta.advance(1)
    tb.advance(1)
    deliver(send(a.register(":Default.o", "PYRO://h/1")), b)
    a_conflicts, b_conflicts = collect(a), collect(b)
    ta.advance(1)
    from_a = send(a.unregister(":Default.o"))
    tb.advance(1)
    from_b = send(b.unregister(":Default.o"))  # concurrent, stamped below A's
    ta.advance(1)
    from_a += send(a.register(":Default.o", "PYRO://h/again"))  # knows A's deletion
    deliver(from_b, a)
    deliver(from_a, b)
    assert a.resolve(":Default.o") == b.resolve(":Default.o") == "PYRO://h/again"
    assert a_conflicts == []  # B's deletion lost on A: A's was newer, and A's own
    assert [(c.kind, c.winner.deleted, c.winner.owner, c.loser.owner) for c in b_conflicts] == [
        ("version", True, "A", "B")
    ]


def test_the_same_deletion_coming_back_is_no_conflict() -> None:
    """A deletion from the twin that replaces a deletion it knew, or one of the twin's
    own, reports nothing."""
    a, b, ta, _tb = pair()
    ta.advance(1)
    deliver(send(a.register(":Default.o", "PYRO://h/1")), b)
    b_conflicts = collect(b)
    ta.advance(1)
    deliver(send(a.unregister(":Default.o")), b)  # B held A's live version: causal
    ta.advance(1)
    sync(a, b)
    assert b_conflicts == []


def test_knowledge_survives_a_chain_of_updates() -> None:
    a, b, ta, tb = pair()
    ta.advance(1)
    deliver(send(a.register(":Default.o", "PYRO://h/1")), b)
    tb.advance(1)
    b.set_meta(":Default.o", 1)
    tb.advance(1)
    b.set_meta(":Default.o", 2)  # both B versions were built on A's
    registered = a.entry(":Default.o")
    assert registered is not None
    assert b.seen_of(":Default.o") == registered.stamp  # inherited along B's chain
    a_conflicts = collect(a)
    sync(a, b)  # a resync only sends B's latest version
    assert a_conflicts == []
    assert a.get_meta(":Default.o") == 2


def test_a_version_built_on_a_lost_version_of_mine_is_a_conflict() -> None:
    """Knowledge is the exact version a remote one was built on, not an order: a node
    restored from an older copy writes below versions of its own that it lost, and a
    twin's version built on one of those (it never saw the new write) must still be
    reported when it wins. Found by the chaos suite: a setMeta on a restored node lost
    to a concurrent one, and nothing was logged."""
    a, b, ta, tb = pair()
    ta.advance(10)
    deliver(send(a.register(":Default.o", "PYRO://h/lost")), b)  # A's version, later lost
    tb.advance(1)
    from_b = send(b.set_meta(":Default.o", "b"))  # built on A's lost version
    # A, restored from a copy taken before it registered the name, writes it again with
    # its clock behind the lost version (the copy does not hold that stamp).
    restored, _, ta2, _ = pair()
    ta2.advance(5)
    restored.register(":Default.o", "PYRO://h/again")
    conflicts = collect(restored)
    deliver(from_b, restored)
    assert restored.get_meta(":Default.o") == "b"
    assert [(c.kind, c.loser.uri) for c in conflicts] == [("version", "PYRO://h/again")]


def test_a_lost_version_of_my_own_that_wins_is_a_conflict_too() -> None:
    """A node restored from an older copy gets its own lost versions back from the twin;
    one stamped above what the node wrote since (its clock was ahead then) wins, and
    the write it supersedes is reported like any other. Found by the chaos suite: a
    setMeta on :Default lost that way, with nothing logged, because versions from the
    node's own id were taken never to conflict."""
    a, b, ta, _ = pair()
    ta.advance(30)
    old = send(a.set_meta(":Default", "before the restore"))  # A's clock ran ahead
    deliver(old, b)
    restored, _, ta2, _ = pair()  # A again, from a copy without that version
    ta2.advance(5)
    restored.set_meta(":Default", "after the restore")
    conflicts = collect(restored)
    deliver([(e, b.seen_of(e.name)) for e in (b.entry(":Default"),) if e], restored)
    assert restored.get_meta(":Default") == "before the restore"
    assert [(c.kind, c.loser.meta) for c in conflicts] == [("version", "after the restore")]


def test_merge_without_knowledge_reports_no_version_conflict() -> None:
    a, b, ta, tb = pair()
    ta.advance(1)
    a.register(":Default.o", "PYRO://h/a")
    tb.advance(2)
    entry = b.register(":Default.o", "PYRO://h/b").entries[0]
    found = collect(a)
    assert a.merge(entry) is True
    assert found == []


# -- merge mechanics ---------------------------------------------------------------------


def test_merge_is_idempotent_and_ignores_older_entries() -> None:
    a, b, ta, _ = pair()
    ta.advance(1)
    first = a.register(":Default.o", "PYRO://h/1").entries[0]
    ta.advance(1)
    second = a.set_meta(":Default.o", "m").entries[0]
    assert b.merge(second) is True
    last = b.last_seq
    assert b.merge(second) is False  # the same change again
    assert b.merge(first) is False  # an older one
    assert b.last_seq == last
    assert b.get_meta(":Default.o") == "m"


def test_merge_moves_the_clock_past_remote_stamps() -> None:
    a, b, ta, _ = pair()
    ta.advance(3600)  # A's clock is an hour ahead
    future = a.register(":Default.o", "PYRO://h/1").entries[0]
    b.merge(future)
    later = b.set_meta(":Default.o", "m").entries[0]
    assert later.stamp > future.stamp
    assert b.get_meta(":Default.o") == "m"


def test_merge_all_returns_an_undoable_change_set() -> None:
    a, b, ta, _ = pair()
    before = snapshot(b)
    ta.advance(1)
    a.create_group(":g")
    a.register(":g.o", "PYRO://h/1")
    changes = b.merge_all(e for _, e in a.entries_since(0))
    assert [e.name for e in changes] == [":g", ":g.o"]  # the rest b already had
    assert changes.seqs == [b.last_seq - 1, b.last_seq]
    assert b.resolve(":g.o") == "PYRO://h/1"
    b.undo(changes)
    assert snapshot(b) == before


@pytest.mark.parametrize(
    "bad",
    [
        Entry(":a..b", Kind.GROUP, None, None, 1.0, 1.0, "B", Stamp(5, "B")),
        Entry("relative", Kind.GROUP, None, None, 1.0, 1.0, "B", Stamp(5, "B")),
        Entry(":", Kind.GROUP, None, None, 1.0, 1.0, "B", Stamp(5, "B"), deleted=True),
        Entry(":", Kind.OBJECT, "PYRO://h/x", None, 1.0, 1.0, "B", Stamp(5, "B")),
        Entry(":o", Kind.OBJECT, None, None, 1.0, 1.0, "B", Stamp(5, "B")),
        Entry(":g", Kind.GROUP, "PYRO://h/x", None, 1.0, 1.0, "B", Stamp(5, "B")),
        Entry(":g", Kind.GROUP, None, None, 1.0, 1.0, "B", Stamp(0, "B")),
    ],
)
def test_merge_refuses_entries_no_node_writes(bad: Entry) -> None:
    ns, _ = make_ns()
    before = snapshot(ns)
    with pytest.raises(ValueError):
        ns.merge(bad)
    assert snapshot(ns) == before


def test_a_child_arriving_before_its_parent_waits_for_it() -> None:
    a, b, ta, _ = pair()
    ta.advance(1)
    parent = a.create_group(":g").entries[0]
    child = a.register(":g.o", "PYRO://h/1").entries[0]
    b.merge(child)
    assert not b.exists(":g.o")
    assert_matches_oracle(b)
    b.merge(parent)
    assert b.resolve(":g.o") == "PYRO://h/1"
    assert_matches_oracle(b)


# -- properties ---------------------------------------------------------------------------

PARTS = ("a", "b")
NAMES = [":" + ".".join(p) for n in (1, 2, 3) for p in itertools.product(PARTS, repeat=n)]
OPS = ("register", "unregister", "create_group", "delete_group", "set_meta")

op_step = st.tuples(
    st.just("op"),
    st.integers(0, 1),
    st.sampled_from(OPS),
    st.integers(0, 10**6),
    st.integers(0, 9),  # 9: any name (mostly refused); else a name the op accepts now
)
deliver_step = st.tuples(
    st.just("deliver"), st.integers(0, 1), st.integers(0, 10**6), st.integers(1, 4), st.booleans()
)
drop_step = st.tuples(st.just("drop"), st.integers(0, 1), st.integers(0, 10**6))
TICKS = [0.0, 1e-6, 0.5, 3.0, -2.0]  # including a wall clock that steps back
tick_step = st.tuples(st.just("tick"), st.integers(0, 1), st.sampled_from(TICKS))
steps = st.lists(
    st.one_of(op_step, op_step, op_step, deliver_step, drop_step, tick_step),
    min_size=10,
    max_size=80,
)


def accepts(ns: Namespace, op: str, name: str) -> bool:
    """Whether *op* on *name* should succeed on *ns* now (by the visible state)."""
    kind = ns.kind_of(name)
    parent_ok = ns.kind_of(name.rpartition(".")[0] or ":") is Kind.GROUP
    if op in ("register", "create_group"):
        return parent_ok and kind is None
    if op == "unregister":
        return kind is Kind.OBJECT
    if op == "delete_group":
        return kind is Kind.GROUP
    return kind is not None


def run_history(
    history: list[tuple[Any, ...]], *, check_each_step: bool = False
) -> tuple[Namespace, Namespace, list[Entry]]:
    """Play *history* on two replicas; return them and every entry any op produced.

    With *check_each_step*, the incrementally kept view of the replica that changed is
    compared with the oracle after every step."""
    a, ta = make_ns("A")
    b, tb = make_ns("B", start=1000.5)
    nodes, clocks = (a, b), (ta, tb)
    outboxes: tuple[Outbox, Outbox] = ([], [])
    produced: list[Entry] = [e for ns in nodes for _, e in ns.entries_since(0)]
    for step in history:
        kind, who = step[0], step[1]
        ns, out = nodes[who], outboxes[who]
        if kind == "op":
            _, _, op, pick, arg = step
            candidates = NAMES if arg == 9 else [n for n in NAMES if accepts(ns, op, n)]
            if not candidates:
                continue
            name = candidates[pick % len(candidates)]
            try:
                if op == "register":
                    changes = ns.register(name, f"PYRO://h{arg}/obj")
                elif op == "set_meta":
                    changes = ns.set_meta(name, {"v": arg})
                else:
                    changes = getattr(ns, op)(name)
            except NamingError:
                assert arg == 9, f"{op}({name}) refused though it looked valid"
                continue
            out.extend(send(changes))
            produced.extend(changes.entries)
        elif kind == "deliver" and out:
            _, _, start, count, duplicate = step
            picked = [out.pop(start % len(out)) for _ in range(min(count, len(out)))]
            random.Random(start).shuffle(picked)
            if duplicate:
                picked += picked[:1]
            deliver(picked, nodes[1 - who])
        elif kind == "drop" and out:
            out.pop(step[2] % len(out))  # lost; the final resync re-sends it
        elif kind == "tick":
            clocks[who].advance(step[2])
        if check_each_step:
            assert_matches_oracle(nodes[1 - who] if kind == "deliver" else ns)
    return a, b, produced


def winners(entries: list[Entry]) -> dict[str, Entry]:
    best: dict[str, Entry] = {}
    for e in entries:
        if e.name not in best or e.stamp > best[e.name].stamp:
            best[e.name] = e
    return best


@settings(max_examples=200, deadline=None)
@given(steps)
def test_replicas_converge_whatever_the_delivery(history: list[tuple[Any, ...]]) -> None:
    a, b, produced = run_history(history)
    assert_matches_oracle(a)
    assert_matches_oracle(b)
    found: list[Conflict] = []
    a.on_conflict = b.on_conflict = found.append
    sync(a, b)
    for kind in sorted({c.kind for c in found}):
        event(f"conflict: {kind}")
    event(f"entries written: {min(len(produced) // 10 * 10, 40)}+")
    assert a.digest() == b.digest()
    assert snapshot(a) == snapshot(b)
    assert_matches_oracle(a)
    # the result is the per-name maximum of everything ever written, nothing else
    expected = winners(produced)
    assert {e.name: e for _, e in a.entries_since(0)} == expected
    # writes keep working after convergence and stay consistent
    try:
        a.create_group(":a")
    except NamingError:
        pass
    assert_matches_oracle(a)


def random_history(seed: int, length: int) -> list[tuple[Any, ...]]:
    """A long history from a seed: Hypothesis keeps its own lists short, and conflicts
    need many writes on both sides between deliveries."""
    rnd = random.Random(seed)
    history: list[tuple[Any, ...]] = []
    for _ in range(length):
        roll = rnd.random()
        who = rnd.randrange(2)
        if roll < 0.6:
            history.append(("op", who, rnd.choice(OPS), rnd.randrange(10**6), rnd.randrange(10)))
        elif roll < 0.8:
            history.append(
                ("deliver", who, rnd.randrange(10**6), rnd.randrange(1, 6), rnd.random() < 0.2)
            )
        elif roll < 0.9:
            history.append(("drop", who, rnd.randrange(10**6)))
        else:
            history.append(("tick", who, rnd.choice(TICKS)))
    return history


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_long_random_histories_converge(seed: int) -> None:
    a, b, produced = run_history(random_history(seed, 200))
    found: list[Conflict] = []
    a.on_conflict = b.on_conflict = found.append
    sync(a, b)
    for kind in sorted({c.kind for c in found}):
        event(f"conflict: {kind}")
    assert snapshot(a) == snapshot(b)
    assert {e.name: e for _, e in a.entries_since(0)} == winners(produced)
    assert_matches_oracle(a)
    assert_matches_oracle(b)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32))
def test_the_view_matches_the_rule_after_every_step(seed: int) -> None:
    run_history(random_history(seed, 120), check_each_step=True)


@settings(max_examples=100, deadline=None)
@given(steps, st.randoms(use_true_random=False))
def test_merge_is_commutative_associative_and_idempotent(
    history: list[tuple[Any, ...]], rnd: random.Random
) -> None:
    _, _, produced = run_history(history)
    pool = list(produced)
    rnd.shuffle(pool)
    cut1, cut2 = sorted(rnd.randrange(len(pool) + 1) for _ in range(2))
    parts = [pool[:cut1], pool[cut1:cut2], pool[cut2:]]

    def build(groups: list[list[Entry]], twice: bool = False) -> dict[str, Any]:
        ns, _ = make_ns("Z", bootstrap=False)
        for group in groups:
            ns.merge_all(group)
            if twice:
                ns.merge_all(group)
        return snapshot(ns)

    reference = build([pool])
    assert build(list(reversed(parts))) == reference  # commutative
    assert build([parts[0] + parts[1], parts[2]]) == build([parts[0], parts[1] + parts[2]])
    assert build(parts, twice=True) == reference  # idempotent
    assert build([sorted(pool, key=lambda e: e.stamp)]) == reference


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(0, 10**6))
def test_undo_in_any_order_restores_the_state(history: list[tuple[Any, ...]], seed: int) -> None:
    a, _, _ = run_history(history)
    before = snapshot(a)
    rnd = random.Random(seed)
    pending = []
    for _ in range(12):
        name = rnd.choice(NAMES)
        op = rnd.choice(OPS)
        try:
            if op == "register":
                pending.append(a.register(name, "PYRO://h/u"))
            elif op == "set_meta":
                pending.append(a.set_meta(name, "u"))
            else:
                pending.append(getattr(a, op)(name))
        except NamingError:
            pass
    rnd.shuffle(pending)
    for changes in pending:
        a.undo(changes)
    assert snapshot(a) == before
    assert_matches_oracle(a)


def test_zero_stamp_is_below_every_real_stamp() -> None:
    assert Stamp(1, "") > ZERO_STAMP
    assert attrs.evolve(ZERO_STAMP) == ZERO_STAMP


@pytest.mark.parametrize("bulk", [False, True])
def test_a_merge_notes_the_writes_in_flight_its_entries_lost_to(bulk: bool) -> None:
    """A remote entry that loses to a local entry whose change set is still in flight
    (its commit may yet fail) names that change set in ``lost_to``; one that loses to a
    settled entry, or to an entry of the same merge, names nothing. Both merge paths."""
    from pairns.namespace import state as state_module

    ns, time = make_ns("A")
    settled = ns.register(":Default.settled", "PYRO://h:1/s")
    old = ns.entry(":Default.settled")
    del settled  # committed: no longer in flight
    time.advance(1)
    in_flight = ns.register(":Default.flying", "PYRO://h:1/f")
    mine = in_flight.entries[-1]
    assert old is not None
    below = Stamp(mine.stamp.hlc - 1, "B")
    stale = [
        (Entry(":Default.flying", Kind.OBJECT, "PYRO://h:1/b", None, 5.0, 6.0, "B", below), None),
        (Entry(":Default.settled", Kind.OBJECT, "PYRO://h:1/b", None, 5.0, 6.0, "B",
               Stamp(old.stamp.hlc - 1, "B")), None),
    ]
    fresh = [
        (Entry(f":Default.n{i}", Kind.OBJECT, "PYRO://h:1/n", None, 5.0, 6.0, "B", below), None)
        for i in range(3)
    ]
    again = [(fresh[0][0], None)]  # the same entry twice in one batch: loses to itself
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "BULK_MERGE_MIN", 1 if bulk else 10**9)
        changes = ns.merge_pairs(stale + fresh + again)
    assert changes.lost_to == [in_flight]
    assert ns.entry(":Default.flying") is mine
    assert [e.name for e in changes] == [":Default.n0", ":Default.n1", ":Default.n2"]
    ns.undo(in_flight)
    assert in_flight.undone and ns.entry(":Default.flying") is None
