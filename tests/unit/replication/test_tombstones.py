"""Tombstone collection in a pair: no deleted name comes back, nothing is lost.

The pure parts of the link (``build_batch``, ``bury_collected``, ``StableMarks``,
``FeedHistory``) drive two namespaces through a simulated link: batches in flight,
acks, hellos that decide full or incremental resyncs, collection by the rule, and the
faults that make a node go back (restored from an older copy of its data, wiped,
restarted). Hypothesis draws the histories; after a final resync both nodes must
show the same namespace, no name may show a version older than a deletion that was
collected, and - without restores and wipes - every name must end as the highest
version anyone wrote (or gone, if that was a collected deletion).
"""

from __future__ import annotations

import copy
import itertools
import random
from collections import deque
from typing import Any

import attrs
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pairns.errors import NamingError
from pairns.namespace import Entry, HybridClock, Kind, Namespace
from pairns.namespace.stamps import ZERO_STAMP
from pairns.naming.requests import RequestTable
from pairns.replication.durability import StoredPositions
from pairns.replication.feed import StableMarks, TwinOrigin, build_batch, bury_collected
from pairns.replication.feed_history import FeedHistory
from pairns.replication.messages import Batch
from tests.unit.namespace.support import FakeTime, assert_matches_oracle, snapshot

PARTS = ("a", "b")
NAMES = [":" + ".".join(p) for n in (1, 2) for p in itertools.product(PARTS, repeat=n)]
OPS = ("register", "unregister", "create_group", "delete_group", "set_meta")


@attrs.define
class Stored:
    """What a node keeps with its data about the twin (``StoredPositions``)."""

    twin_id: str = ""
    twin_incarnation: str = ""
    applied: int = 0
    known: dict[str, tuple[FeedHistory, dict[str, int]]] = attrs.field(factory=dict)
    full_owed: int = 0

    def claim_forked(self, node_id: str, history: FeedHistory) -> bool:
        """``StoredPositions.claim_forked`` on these positions."""
        positions = StoredPositions(twin_id=self.twin_id, applied=self.applied, known=self.known)
        return positions.claim_forked(node_id, history)


@attrs.define(eq=False)
class Node:
    """One node of the simulated pair: its namespace and its end of the link."""

    base: str
    time: FakeTime
    runs: itertools.count  # type: ignore[type-arg]
    ns: Namespace = attrs.field(init=False)
    node_id: str = attrs.field(init=False)
    history: FeedHistory = attrs.field(init=False)
    stored: Stored = attrs.field(factory=Stored)
    origin: TwinOrigin = attrs.field(factory=TwinOrigin)
    marks: StableMarks = attrs.field(factory=StableMarks)
    stable: int = 0
    sent: int = 0
    applied: int = 0
    acked: int = 0
    seen_before: int = 0
    full: bool = False
    connection: int = 0
    wipes: int = 0

    def __attrs_post_init__(self) -> None:
        self.node_id = self.base
        self.start([], 0, ZERO_STAMP, FeedHistory())

    def start(
        self, rows: list[tuple[int, Entry]], last_seq: int, horizon: Any, history: FeedHistory
    ) -> None:
        """A run of the node on *rows* (what its storage holds)."""
        self.ns = Namespace(self.node_id, HybridClock(self.node_id, now=self.time))
        self.ns.load(rows, last_seq)
        self.ns.restore_horizon(horizon)
        self.history = history.started(f"{self.node_id}-run{next(self.runs)}", last_seq + 1)
        self.ns.bootstrap()
        self.stable = 0
        self.marks = StableMarks()
        self.origin = TwinOrigin()

    def image(self) -> dict[str, Any]:
        """A copy of the node's data, as a backup would hold it."""
        return {
            "rows": list(self.ns.entries_since(0)),
            "last_seq": self.ns.last_seq,
            "horizon": self.ns.horizon,
            "history": self.history,
            "stored": copy.deepcopy(self.stored),
            "node_id": self.node_id,
        }

    def restore(self, image: dict[str, Any]) -> None:
        self.node_id = image["node_id"]
        self.stored = copy.deepcopy(image["stored"])
        self.start(image["rows"], image["last_seq"], image["horizon"], image["history"])

    def wipe(self) -> None:
        self.wipes += 1
        self.node_id = f"{self.base}{self.wipes}"
        self.stored = Stored()
        self.start([], 0, ZERO_STAMP, FeedHistory())

    def collect(self, deaths: dict[str, list[tuple[Any, int]]], step: int) -> None:
        """The collector's pass (``Pairing.stable_upto``; everything here is durable)."""
        self.stable = max(self.stable, self.marks.stable(self.applied))
        while dropped := self.ns.collect(min(self.ns.last_seq, self.stable)):
            for name, _seq in dropped:
                deaths.setdefault(name, []).append((self.ns.horizon, step))


class Pair:
    """Two nodes, one connection between them (or none), batches in flight."""

    def __init__(self) -> None:
        runs = itertools.count()
        self.nodes = (Node("A", FakeTime(1000.0), runs), Node("B", FakeTime(1000.5), runs))
        self.wires: tuple[deque[Batch], deque[Batch]] = (deque(), deque())  # to B, to A
        self.linked = False
        self.step = 0
        self.born: dict[tuple[str, Any], int] = {}  # (name, stamp) -> step it was written
        self.deaths: dict[str, list[tuple[Any, int]]] = {}  # name -> (horizon, step)
        self.produced: list[Entry] = []
        # Backups of each node, oldest first: a restore takes one of them, so a node may
        # go back to an old copy and later to a newer one.
        self.images: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self.buried = 0
        self.went_back = False

    # -- the link -------------------------------------------------------------------

    def connect(self, *, full: bool = False) -> None:
        """Hellos (``Pairing.full_reason``, ``start_link``), then a new connection."""
        a, b = self.nodes
        # B dials: its hello carries its claim on A's feed as stored; A answers after
        # start_link, with its claim on B's feed cut to what B's history shares.
        for x, y in ((a, b), (b, a)):
            claim = x.stored.applied
            if x is a and x.stored.twin_id == y.node_id:
                old, runs = x.stored.known.get(y.node_id, (FeedHistory(), {}))
                runs = dict(runs)
                old.credit(runs, claim)
                claim = min(claim, y.history.known_prefix(runs))
            claim_ok = x.stored.twin_id == y.node_id and y.history.vouches(
                x.stored.twin_incarnation, claim, y.ns.last_seq
            )
            full = full or not claim_ok or x.stored.claim_forked(y.node_id, y.history)
        for x, y in ((a, b), (b, a)):
            stored = x.stored
            old, runs = stored.known.pop(y.node_id, (FeedHistory(), {}))
            if y.node_id == stored.twin_id:
                old.credit(runs, stored.applied)
            stored.known[y.node_id] = (y.history, runs)
            seen = y.history.known_prefix(runs)
            if y.node_id == stored.twin_id:
                stored.applied = min(stored.applied, seen)
            x.seen_before = seen
            stored.twin_incarnation = y.history.current
            if stored.twin_id != y.node_id:
                stored.twin_id = y.node_id
                stored.applied = 0
            if full:  # owed until acknowledged (the twin may have lost its own changes)
                stored.full_owed = max(stored.full_owed, x.ns.last_seq)
            x.full = full or stored.full_owed > 0
            x.connection += 1
            x.marks = StableMarks()
        for x, y in ((a, b), (b, a)):
            x.sent = x.acked = 0 if full else y.stored.applied
        for x in (a, b):
            x.applied = 0 if full else x.stored.applied
            x.stored.applied = x.applied  # what the link stores as it goes
        self.wires[0].clear()
        self.wires[1].clear()
        self.linked = True

    def disconnect(self) -> None:
        self.linked = False
        self.wires[0].clear()
        self.wires[1].clear()

    def send(self, who: int, limit: int) -> None:
        if not self.linked:
            return
        x, y = self.nodes[who], self.nodes[1 - who]
        number = x.connection if x.full else None

        def skip(entry: Entry) -> bool:
            return x.origin.came_from(entry, y.node_id, number)

        batch = build_batch(
            x.ns,
            start=x.sent,
            end=x.ns.last_seq,
            ack=x.applied,
            requests=RequestTable(),
            now=0.0,
            skip=skip,
            limit=limit,
        )
        x.sent = batch.upto
        self.wires[who].append(batch)

    def deliver(self, who: int) -> bool:
        """The oldest batch from node *who* reaches its twin (``Link.receive``)."""
        wire = self.wires[who]
        if not self.linked or not wire:
            return False
        batch = wire.popleft()
        x, y = self.nodes[who], self.nodes[1 - who]
        assert batch.start == y.applied
        y.acked = max(y.acked, batch.ack)
        if y.stored.full_owed and y.acked >= y.stored.full_owed:
            y.stored.full_owed = 0
        y.marks.note(batch)
        pairs = [(item.entry, item.seen) for item in batch.items]
        buried = bury_collected(y.ns, batch.items, pairs, y.seen_before, y.time())
        self.buried += len(buried)
        changes = y.ns.merge_pairs(pairs)
        mine = set(map(id, buried))
        y.origin.add_all([e for e in changes.entries if id(e) not in mine], x.node_id, y.connection)
        self.produced.extend(buried)
        y.applied = batch.upto
        y.stored.applied = y.applied
        history, runs = y.stored.known[x.node_id]
        history.credit(runs, y.applied)
        return True

    # -- a history ------------------------------------------------------------------

    def op(self, who: int, op: str, pick: int, arg: int) -> None:
        ns = self.nodes[who].ns
        candidates = [n for n in NAMES if _accepts(ns, op, n)]
        if not candidates:
            return
        name = candidates[pick % len(candidates)]
        try:
            if op == "register":
                changes = ns.register(name, f"PYRO://h{arg}/obj")
            elif op == "set_meta":
                changes = ns.set_meta(name, {"v": arg})
            else:
                changes = getattr(ns, op)(name)
        except NamingError:
            raise AssertionError(f"{op}({name}) refused though it looked valid") from None
        for entry in changes.entries:
            self.born.setdefault((entry.name, entry.stamp), self.step)
        self.produced.extend(changes.entries)

    def play(self, history: list[tuple[Any, ...]]) -> None:
        for step in history:
            self.step += 1
            kind, who = step[0], step[1]
            node = self.nodes[who]
            if kind == "op":
                self.op(who, *step[2:])
            elif kind == "send":
                self.send(who, step[2])
            elif kind == "deliver":
                for _ in range(step[2]):
                    self.deliver(who)
            elif kind == "collect":
                node.collect(self.deaths, self.step)
            elif kind == "link":
                if step[2] == "connect":
                    self.connect()
                elif step[2] == "resync":
                    self.connect(full=True)
                else:
                    self.disconnect()
            elif kind == "tick":
                node.time.advance(step[2])
            elif kind == "sync":
                self.settle()
            elif kind == "backup":
                self.images[who].append(node.image())
            elif kind in ("restore", "wipe", "restart"):
                # A restart takes a while: the node's clock passes every stamp it made
                # before. (A node restored from an older copy whose clock has not passed
                # the stamps of the changes it lost can make one of them again, exactly;
                # two changes with one stamp are one change to the merge. That holds
                # without collection too, and is outside what this test is about.)
                node.time.now = max(n.time.now for n in self.nodes) + 10.0
                self.disconnect()
                if kind == "restore" and self.images[who]:
                    images = self.images[who]
                    node.restore(images[(self.step * 7919) % len(images)])
                    self.went_back = True
                elif kind == "wipe":
                    node.wipe()
                    self.went_back = True
                elif kind == "restart":
                    node.restore(node.image())

    def settle(self) -> None:
        """Link, exchange everything both ways, collect; until nothing moves."""
        if not self.linked:
            self.connect()
        for _ in range(200):
            before = [(n.ns.last_seq, n.ns.tombstone_count, n.applied) for n in self.nodes]
            for who in (0, 1):
                while self.nodes[who].sent < self.nodes[who].ns.last_seq:
                    self.send(who, 3)
                while self.deliver(who):
                    pass
            for who in (0, 1):  # heartbeats: acks with nothing more to send
                self.send(who, 3)
                self.deliver(who)
                self.nodes[who].collect(self.deaths, self.step)
            after = [(n.ns.last_seq, n.ns.tombstone_count, n.applied) for n in self.nodes]
            if before == after and not any(self.wires):
                return
        raise AssertionError("the pair did not settle")


def _accepts(ns: Namespace, op: str, name: str) -> bool:
    kind = ns.kind_of(name)
    parent_ok = ns.kind_of(name.rpartition(".")[0] or ":") is Kind.GROUP
    if op in ("register", "create_group"):
        return parent_ok and kind is None
    if op == "unregister":
        return kind is Kind.OBJECT
    if op == "delete_group":
        return kind is Kind.GROUP
    return kind is not None


def _winners(entries: list[Entry]) -> dict[str, Entry]:
    best: dict[str, Entry] = {}
    for e in entries:
        if e.name not in best or e.stamp > best[e.name].stamp:
            best[e.name] = e
    return best


def check(pair: Pair) -> None:
    pair.settle()
    a, b = (n.ns for n in pair.nodes)
    for ns in (a, b):
        ns.check_invariants()
        assert_matches_oracle(ns)
    shown_a, shown_b = snapshot(a), snapshot(b)
    del shown_a["stored"], shown_b["stored"]
    assert shown_a == shown_b
    assert a.digest() == b.digest()
    # No resurrection: no name shows a version older than a deletion of it that some
    # node had collected when that version was written or since.
    for name in shown_a["visible"]:
        entry = a.entry(name)
        if entry is None or entry.deleted:
            continue
        born = pair.born.get((name, entry.stamp), -1)
        for horizon, when in pair.deaths.get(name, ()):
            assert not (born < when and entry.stamp < horizon), (
                f"{name} came back: {entry} (written at step {born}) is older than a "
                f"deletion collected at step {when}"
            )
    if not pair.went_back:
        # Nothing lost: each name ends as the highest version written, or gone if that
        # was a deletion that was collected.
        stored = {e.name: e for _, e in a.entries_since(0)}
        for name, best in _winners(pair.produced).items():
            if best.deleted and name not in stored:
                continue
            assert stored.get(name) == best, name
        assert pair.buried == 0  # no twin went back: nothing to bury
    if pair.buried:
        event("a restored twin's stale entries were buried")
    if pair.deaths:
        event("tombstones collected")


op_step = st.tuples(
    st.just("op"), st.integers(0, 1), st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 8)
)
send_step = st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 4))
deliver_step = st.tuples(st.just("deliver"), st.integers(0, 1), st.integers(1, 3))
collect_step = st.tuples(st.just("collect"), st.integers(0, 1))
link_step = st.tuples(
    st.just("link"), st.integers(0, 1), st.sampled_from(["connect", "drop", "resync"])
)
tick_step = st.tuples(st.just("tick"), st.integers(0, 1), st.sampled_from([0.0, 0.5, 3.0, -2.0]))
fault_step = st.tuples(st.sampled_from(["backup", "restore", "wipe", "restart"]), st.integers(0, 1))
calm = [op_step, op_step, op_step, send_step, send_step, deliver_step, deliver_step, collect_step]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(*calm, link_step, tick_step), min_size=10, max_size=80))
def test_collection_loses_nothing_and_revives_nothing(history: list[tuple[Any, ...]]) -> None:
    pair = Pair()
    pair.connect()
    pair.play(history)
    check(pair)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.one_of(*calm, link_step, tick_step, fault_step, fault_step), min_size=10, max_size=100
    )
)
def test_a_node_that_goes_back_brings_no_deleted_name_back(history: list[tuple[Any, ...]]) -> None:
    pair = Pair()
    pair.connect()
    pair.play(history)
    check(pair)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.one_of(*calm, tick_step), max_size=30),
    st.integers(0, 1),
    st.lists(st.one_of(*calm, tick_step, st.just(("sync", 0))), max_size=40),
    st.lists(st.one_of(*calm, link_step, tick_step), max_size=30),
)
def test_a_twin_restored_after_collection_gets_its_deletions_again(
    before: list[tuple[Any, ...]],
    who: int,
    between: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
) -> None:
    """The case the rule is for: a backup, deletions that both nodes then collect,
    the backup restored; more writes on both sides before the final resync."""
    pair = Pair()
    pair.connect()
    pair.play([("op", 0, "create_group", 0, 0), ("op", 0, "register", 1, 0), ("sync", 0)])
    pair.play([*before, ("sync", 0), ("backup", who), ("op", 0, "unregister", 0, 0)])
    pair.play([("op", 1, "unregister", 0, 0), ("op", 1 - who, "delete_group", 0, 0)])
    pair.play([*between, ("sync", 0), ("restore", who), *after])
    check(pair)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(*calm, tick_step), max_size=20),
    st.integers(0, 1),
    st.lists(st.one_of(*calm, tick_step, st.just(("sync", 0))), max_size=30),
    st.booleans(),
)
def test_a_copy_restored_after_a_wipe_is_known_by_its_old_id(
    before: list[tuple[Any, ...]], who: int, between: list[tuple[Any, ...]], same: bool
) -> None:
    """A backup, deletions both nodes collect, a wipe (a new node id), then the backup
    restored: the twin meets the old node id again and must still know which of its
    entries it had seen (found by the chaos suite, seed 3)."""
    pair = Pair()
    pair.connect()
    pair.play([("op", 0, "create_group", 0, 0), ("op", 0, "register", 1, 0), ("sync", 0)])
    pair.play([*before, ("sync", 0), ("backup", who), ("op", 0, "unregister", 0, 0)])
    pair.play([("op", 1 - who, "delete_group", 0, 0), *between, ("sync", 0)])
    # the restored node wiped first, or its twin (which then never collected the
    # deletions itself: it got the state after them)
    pair.play([("wipe", who if same else 1 - who), ("sync", 0), ("restore", who)])
    check(pair)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32))
def test_long_histories_with_faults(seed: int) -> None:
    rnd = random.Random(seed)
    history: list[tuple[Any, ...]] = [("backup", 0), ("backup", 1)]
    for _ in range(400):
        roll = rnd.random()
        who = rnd.randrange(2)
        if roll < 0.45:
            history.append(("op", who, rnd.choice(OPS), rnd.randrange(10**6), rnd.randrange(9)))
        elif roll < 0.65:
            history.append(("send", who, rnd.randrange(1, 5)))
        elif roll < 0.8:
            history.append(("deliver", who, rnd.randrange(1, 4)))
        elif roll < 0.9:
            history.append(("collect", who))
        elif roll < 0.94:
            history.append(("link", who, rnd.choice(["connect", "drop", "resync"])))
        elif roll < 0.97:
            history.append(("tick", who, rnd.choice([0.0, 0.5, 3.0, -2.0])))
        else:
            history.append((rnd.choice(["backup", "restore", "restore", "wipe", "restart"]), who))
    pair = Pair()
    pair.connect()
    pair.play(history)
    check(pair)


# -- the pure parts, by hand -----------------------------------------------------------


def test_what_was_seen_of_a_feed_is_kept_per_run() -> None:
    heard = FeedHistory((("r1", 1), ("r2", 100), ("r3", 400)))
    seen: dict[str, int] = {}
    heard.credit(seen, 800)
    assert seen == {"r1": 99, "r2": 399, "r3": 800}
    assert heard.known_prefix(seen) == 800
    # restarted normally since: the new run is not seen yet
    assert FeedHistory((*heard.incarnations, ("r4", 801))).known_prefix(seen) == 800
    # restored from a copy taken during r2 (at 250): its new run starts at 251
    forked = FeedHistory((("r1", 1), ("r2", 100), ("x1", 251)))
    assert forked.known_prefix(seen) == 250
    forked.credit(seen, 260)  # applied a little of the new run
    assert forked.known_prefix(seen) == 260
    # later restored from a newer copy (during r3, at 500): r3 up to there was seen
    newer = FeedHistory((*heard.incarnations[:3], ("x2", 501)))
    assert newer.known_prefix(seen) == 500
    # nothing seen of its first run; runs that wrote nothing
    assert FeedHistory((("z", 1),)).known_prefix(seen) == 0
    assert FeedHistory((("r1", 1), ("e", 100), ("r2", 100))).known_prefix(seen) == 399


def test_stable_marks_wait_for_the_batch_to_be_applied() -> None:
    marks = StableMarks()
    marks.note(Batch(start=0, upto=10, ack=5, items=(), more=True))
    assert marks.stable(10) == 0  # the twin had more to send
    marks.note(Batch(start=10, upto=20, ack=7, items=(), more=False))
    assert marks.stable(19) == 0
    assert marks.stable(20) == 7
    marks.note(Batch(start=20, upto=20, ack=9, items=(), more=False))
    assert marks.stable(20) == 9
    assert marks.stable(0) == 9  # never goes back


@settings(max_examples=1, deadline=None)
@given(st.just(1))
def test_a_twin_restored_from_a_copy_of_its_current_run_gets_its_lost_deletions(
    _: int,
) -> None:
    """Found by the chaos suite (seed 41): B is copied mid-run, deletes a name after the
    copy (A merges the deletion), and goes back to the copy. A's claim on B's feed, cut
    to where B's history forks, is one B can vouch for; an incremental link would leave
    B with the name for good (A's echo filter holds back what came from B). A twin whose
    history forks below the claim is a full resync (``StoredPositions.claim_forked``)."""
    pair = Pair()
    pair.connect()
    pair.play([("op", 1, "create_group", 0, 0), ("op", 1, "register", 1, 0), ("sync", 0)])
    pair.play([("backup", 1), ("op", 1, "unregister", 0, 0), ("sync", 0)])
    pair.play([("restore", 1), ("sync", 0)])
    check(pair)


def test_a_claim_past_the_twins_fork_is_seen_also_before_it_is_stored() -> None:
    """``claim_forked``: the twin ran r1 from 1 and r2 from 101; it came back from a
    copy taken at 150 (r3 from 151). A claim up to 150 is one it can still vouch for; up
    to 180 it lost changes it had sent, also when only a link that has not ended yet
    holds that claim (the stored one is older)."""
    before = FeedHistory((("r1", 1), ("r2", 101)))
    after = FeedHistory((("r1", 1), ("r2", 101), ("r3", 151)))
    stored = StoredPositions(twin_id="B", applied=150, known={"B": (before, {})})
    assert not stored.claim_forked("B", after)
    assert not stored.claim_forked("B", after, unstored=150)
    assert stored.claim_forked("B", after, unstored=180)
    assert not stored.claim_forked("C", after, unstored=180)  # another node's feed
    stored.applied = 180
    assert stored.claim_forked("B", after)
    # a plain restart: the new run starts where the claim ends
    assert not stored.claim_forked("B", FeedHistory((("r1", 1), ("r2", 101), ("r3", 181))))
