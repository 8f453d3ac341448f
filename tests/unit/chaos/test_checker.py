"""The chaos checker: clean histories pass, planted bugs are reported."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.chaos.checker import Report, Violation, check
from pairns.chaos.history import WRITE_OPS, Checkpoint, ConflictRecord, Fault, NodeState, Op

Entries = dict[str, dict[str, Any]]
NS_URI = "PYRO://127.0.0.1:9090/ns"


def uri(tag: str) -> str:
    return f"PYRO://127.0.0.1:1/{tag}"


def group(meta: Any = None) -> dict[str, Any]:
    return {"kind": "group", "uri": None, "meta": meta}


def obj(u: str, meta: Any = None) -> dict[str, Any]:
    return {"kind": "object", "uri": u, "meta": meta}


def initial() -> Entries:
    return {":Pyro": group(), ":Default": group(), ":Pyro.NameServer": obj(NS_URI)}


def setup_entries() -> Entries:
    entries = initial()
    entries[":chaos"] = group()
    for k in range(4):
        entries[f":chaos.g{k}"] = group()
    return entries


def entry_of(name: str, value: dict[str, Any], deleted: bool = False) -> dict[str, Any]:
    return {"name": name, "deleted": deleted, **value}


class History:
    """Builds a run's records by hand."""

    def __init__(self, setup: bool = True) -> None:
        self.ops: list[Op] = []
        self.checkpoints: list[Checkpoint] = []
        self.conflicts: list[ConflictRecord] = []
        self.faults: list[Fault] = []
        self.count = 0
        if setup:
            for i, g in enumerate([":chaos"] + [f":chaos.g{k}" for k in range(4)]):
                self.call("createGroup", g, start=0.1 * i, end=0.1 * i + 0.05, client="setup")

    def call(
        self,
        op: str,
        *args: Any,
        start: float,
        end: float | None = None,
        status: str = "ok",
        client: str = "c1",
        node: int = 1,
        result: Any = None,
        error: str | None = None,
        op_id: str | None = None,
        attempt: int = 1,
    ) -> Op:
        if op_id is None:
            self.count += 1
            op_id = f"{client}-{self.count}"
        made = Op(
            client=client,
            op_id=op_id,
            attempt=attempt,
            node=node,
            op=op,
            args=tuple(args),
            start=start,
            end=start + 0.1 if end is None else end,
            status=status,  # type: ignore[arg-type]
            rid=f"rid-{op_id}" if op in WRITE_OPS else None,
            result=result,
            error=None if error is None else {"type": "NamingError", "message": error},
        )
        self.ops.append(made)
        return made

    def checkpoint(
        self,
        at: float,
        entries: Entries,
        other: Entries | None = None,
        *,
        converged: bool = True,
        seconds: float | None = 0.1,
        status: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
    ) -> Checkpoint:
        second = copy.deepcopy(entries if other is None else other)
        made = Checkpoint(
            round=len(self.checkpoints) + 1,
            time=at,
            converged=converged,
            convergence_seconds=seconds,
            states=(
                NodeState(1, "d1", copy.deepcopy(entries), status[0]),
                NodeState(2, "d1" if other is None else "d2", second, status[1]),
            ),
        )
        self.checkpoints.append(made)
        return made

    def conflict(
        self, kind: str, name: str, kept: dict[str, Any], lost: dict[str, Any], **kw: Any
    ) -> None:
        self.conflicts.append(
            ConflictRecord(
                node=kw.get("node", 1),
                incarnation=kw.get("incarnation", 1),
                kind=kind,
                name=name,
                kept=kept,
                lost=lost,
                time=kw.get("time"),
            )
        )

    def check(self, **kw: Any) -> Report:
        return check(self.ops, self.checkpoints, self.conflicts, self.faults, **kw)


def kinds(report: Report) -> list[str]:
    return [v.kind for v in report.violations]


def only(report: Report, kind: str) -> Violation:
    assert kinds(report) == [kind], report.format()
    return report.violations[0]


# -- clean histories ------------------------------------------------------------------------


def test_clean_history() -> None:
    h = History()
    h.call("register", ":chaos.o0", uri("a"), start=1, client="c1")
    h.call("resolve", ":chaos.o0", start=1.2, client="c2", node=2, result=uri("a"))
    h.call("unregister", ":chaos.o0", start=1.4)
    h.call("register", ":chaos.o0", uri("b"), start=1.6, client="c2", node=2)
    # a stale read on the other node still shows the older value: it was written
    h.call("resolve", ":chaos.o0", start=1.8, node=1, result=uri("a"))
    h.call("setMeta", ":chaos.o0", {"op": "m1"}, start=2.0)
    h.call("getMeta", ":chaos.o0", start=2.2, node=2, result={"op": "m1"})
    h.call("getMeta", ":chaos.g1", start=2.2, node=2, result=None)
    # a retry answered with the first result
    h.call("register", ":chaos.g0.o1", uri("r"), start=3, end=4, status="unknown", op_id="c3-1")
    h.call("register", ":chaos.g0.o1", uri("r"), start=4.1, node=2, op_id="c3-1", attempt=2)
    # unknown writes: one shows up, one does not
    h.call("register", ":chaos.o3", uri("u"), start=4.5, end=5, status="unknown")
    h.call("setMeta", ":chaos.g2", {"op": "never"}, start=4.5, end=5, status="unknown")
    # an error write: no effect
    h.call(
        "register", ":chaos.o0", uri("dup"), start=5.1, status="error", error="name already exists"
    )
    h.call(
        "list",
        ":chaos",
        start=5.3,
        result=[["g0", 0], ["g1", 0], ["g2", 0], ["g3", 0], ["o0", 1], ["o3", 1]],
    )
    h.call("list", ":", start=5.3, result=[["Default", 0], ["Pyro", 0], ["chaos", 0]])
    h.call("list", ":Pyro", start=5.3, result=[["NameServer", 1]])
    h.call("flatlist", start=5.4, result=[[":Pyro.NameServer", NS_URI], [":chaos.o0", uri("b")]])
    state = setup_entries()
    state[":chaos.o0"] = obj(uri("b"), {"op": "m1"})
    state[":chaos.g0.o1"] = obj(uri("r"))
    state[":chaos.o3"] = obj(uri("u"))
    other = copy.deepcopy(state)
    other[":Pyro.NameServer"] = obj("PYRO://127.0.0.1:9091/ns")  # ignored: each node's own
    h.checkpoint(6, state, other)
    # a concurrent conflict (partition): both registered, node 2's version won
    h.call("register", ":chaos.o1", uri("p1"), start=7, end=7.2, node=1)
    h.call("register", ":chaos.o1", uri("p2"), start=7.1, end=7.3, node=2, client="c2")
    h.conflict(
        "version",
        ":chaos.o1",
        entry_of(":chaos.o1", obj(uri("p2"))),
        entry_of(":chaos.o1", obj(uri("p1"))),
        time=8.1,
    )
    state[":chaos.o1"] = obj(uri("p2"))
    h.checkpoint(8, state)
    report = h.check(seed=7)
    assert report.ok, report.format()
    assert report.operations == len({op.op_id for op in h.ops})
    assert report.attempts == len(h.ops)
    assert report.checkpoints == report.converged == 2
    assert report.convergence_seconds == (0.1, 0.1)
    assert "ok" in report.format()


def test_loss_justified_by_a_conflict_whose_winner_a_client_wrote() -> None:
    h = History()
    # node 2's clock runs ahead: its earlier write has the higher stamp and wins
    h.call("register", ":chaos.o1", uri("fast"), start=1, node=2, client="c2")
    h.faults.append(Fault("partition", 0, 0.5, 3))
    h.call("register", ":chaos.o1", uri("slow"), start=2, node=1)
    h.conflict(
        "version",
        ":chaos.o1",
        entry_of(":chaos.o1", obj(uri("fast"))),
        entry_of(":chaos.o1", obj(uri("slow"))),
        time=3.2,
    )
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("fast"))
    h.checkpoint(4, state)
    assert h.check().ok, h.check().format()


def test_hidden_conflict_justifies_a_loss() -> None:
    h = History()
    h.call("deleteGroup", ":chaos.g1", start=1, node=2)
    h.call("register", ":chaos.g1.o0", uri("x"), start=2, node=1)
    h.conflict(
        "hidden",
        ":chaos.g1.o0",
        entry_of(":chaos.g1", group(), deleted=True),
        entry_of(":chaos.g1.o0", obj(uri("x"))),
        time=None,
    )
    state = setup_entries()
    del state[":chaos.g1"]
    h.checkpoint(4, state)
    assert h.check().ok, h.check().format()


def test_delete_of_an_ancestor_justifies_a_missing_register() -> None:
    h = History()
    h.call("register", ":chaos.g1.o1", uri("x"), start=1)
    h.call("setMeta", ":chaos.g1.o1", {"op": "m"}, start=1.5)
    h.call("deleteGroup", ":chaos.g1", start=2, node=2)
    state = setup_entries()
    del state[":chaos.g1"]
    h.checkpoint(3, state)
    assert h.check().ok, h.check().format()


def test_revived_group() -> None:
    h = History()
    h.call("register", ":chaos.g2.o1", uri("old"), start=1)
    h.faults.append(Fault("partition", 0, 1.5, 4))
    h.call("deleteGroup", ":chaos.g2", start=2, node=1)
    h.call("register", ":chaos.g2.o0", uri("new"), start=2.5, node=2, client="c2")
    h.call("list", ":chaos", start=5, result=[["g0", 0], ["g1", 0], ["g2", 0], ["g3", 0]])
    h.call("list", ":chaos.g2", start=5, result=[["o0", 1]])
    h.call("getMeta", ":chaos.g2", start=5, result=None)
    h.conflict(
        "revived",
        ":chaos.g2",
        entry_of(":chaos.g2.o0", obj(uri("new"))),
        entry_of(":chaos.g2", group(), deleted=True),
        time=4.5,
    )
    state = setup_entries()
    state[":chaos.g2"] = group()
    state[":chaos.g2.o0"] = obj(uri("new"))
    h.checkpoint(4.5, state)
    assert h.check().ok, h.check().format()


# -- lost writes ---------------------------------------------------------------------------


def test_lost_write() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("keep"), start=1)
    write = h.call("register", ":chaos.o2", uri("lost"), start=1.2, node=2)
    h.call("resolve", ":chaos.o2", start=1.4, result=uri("lost"))
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("keep"))
    state[":chaos.o2"] = obj(uri("lost"))
    h.checkpoint(2, state)
    h.faults.append(Fault("restore-old-copy", 2, 2.5, 2.6))
    h.call("register", ":chaos.o3", uri("other"), start=3)
    del state[":chaos.o2"]
    state[":chaos.o3"] = obj(uri("other"))
    h.checkpoint(4, state)
    h.checkpoint(5, state)  # reported once, not at every later checkpoint
    report = h.check(seed=42)
    v = only(report, "lost-write")
    assert v.name == ":chaos.o2"
    assert v.checkpoint == 2
    assert write in v.ops
    assert all(op.args and op.args[0] == ":chaos.o2" for op in v.ops)
    assert [f.kind for f in v.faults] == ["restore-old-copy"]
    assert report.lost == 1
    text = report.format()
    assert "seed 42" in text and "replay with --seed 42" in text
    assert "register(:chaos.o2, PYRO://127.0.0.1:1/lost)" in text
    assert "not in the namespace at checkpoint 2" in text


def test_lost_write_of_each_kind() -> None:
    h = History()
    h.call("register", ":chaos.o0", uri("a"), start=1)
    h.call("register", ":chaos.g0.o0", uri("b"), start=1.1)
    h.call("setMeta", ":chaos.g1", {"op": "m"}, start=1.2)
    h.call("unregister", ":chaos.g0.o0", start=1.3)
    h.call("deleteGroup", ":chaos.g3", start=1.4)
    h.call("createGroup", ":chaos.g4", start=1.5)
    state = setup_entries()
    state[":chaos.o0"] = obj(uri("a"))
    state[":chaos.g0.o0"] = obj(uri("b"))  # unregister lost
    state[":chaos.g1"] = group()  # setMeta lost
    # deleteGroup lost: :chaos.g3 still there; createGroup lost: no :chaos.g4
    h.checkpoint(2, state)
    report = h.check()
    assert sorted(v.name or "" for v in report.violations) == [
        ":chaos.g0.o0",
        ":chaos.g1",
        ":chaos.g3",
        ":chaos.g4",
    ]
    assert set(kinds(report)) == {"lost-write"}


def test_builtin_metadata_wiped_by_an_empty_restart() -> None:
    h = History()
    write = h.call("setMeta", ":Default", {"op": "c1-5"}, start=1)
    h.call("getMeta", ":Default", start=1.2, result={"op": "c1-5"})
    h.faults.append(Fault("wipe", 2, 2, 2.5))
    h.conflict(
        "version",
        ":Default",
        entry_of(":Default", group()),
        entry_of(":Default", group({"op": "c1-5"})),
        time=2.8,
    )
    h.checkpoint(3, setup_entries())
    report = h.check()
    v = only(report, "lost-write")
    assert v.name == ":Default"
    assert write in v.ops
    assert [f.kind for f in v.faults] == ["wipe"]


def skewed_loss(conflict_time: float) -> History:
    """node 2's earlier write wins by its stamp; node 1 logs the loss at *conflict_time*;
    the states are captured at 4.1 and the next round starts at 5."""
    h = History()
    h.call("register", ":chaos.o1", uri("fast"), start=1, node=2)
    h.call("register", ":chaos.o1", uri("slow"), start=2, node=1)
    h.conflict(
        "version",
        ":chaos.o1",
        entry_of(":chaos.o1", obj(uri("fast"))),
        entry_of(":chaos.o1", obj(uri("slow"))),
        time=conflict_time,
    )
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("fast"))
    h.checkpoint(4, state)
    h.call("resolve", ":chaos.o1", start=5, result=uri("fast"))
    h.checkpoint(6, state)
    return h


def test_conflict_seen_just_after_the_capture_justifies() -> None:
    # the runner reads the logs right after capturing the states
    assert skewed_loss(4.3).check().ok


def test_conflict_logged_in_a_later_round_does_not_justify() -> None:
    report = skewed_loss(5.5).check()
    v = only(report, "lost-write")
    assert v.checkpoint == 1


def test_conflict_with_metadata_too_large_to_log() -> None:
    big = {"op": "c1-1", "pad": "x" * 600}
    h = History()
    h.call("setMeta", ":chaos.g1", {"op": "fast"}, start=1, node=2)
    h.call("setMeta", ":chaos.g1", big, start=2, node=1)
    lost = entry_of(":chaos.g1", group())
    lost["meta_bytes"] = len(json.dumps(big, separators=(",", ":")).encode())
    h.conflict("version", ":chaos.g1", entry_of(":chaos.g1", group({"op": "fast"})), lost, time=3)
    state = setup_entries()
    state[":chaos.g1"] = group({"op": "fast"})
    h.checkpoint(4, state)
    assert h.check().ok
    lost["meta_bytes"] += 1
    assert kinds(h.check()) == ["lost-write"]


def test_concurrent_write_justifies_but_earlier_one_does_not() -> None:
    h = History()
    h.call("setMeta", ":chaos.g0", {"op": "a"}, start=1, end=2)
    h.call("setMeta", ":chaos.g0", {"op": "b"}, start=1.5, end=1.6, client="c2")
    state = setup_entries()
    state[":chaos.g0"] = group({"op": "a"})
    h.checkpoint(3, state)
    assert h.check().ok  # concurrent: either order is fine
    h2 = History()
    h2.call("setMeta", ":chaos.g0", {"op": "a"}, start=1, end=1.2)
    h2.call("setMeta", ":chaos.g0", {"op": "b"}, start=1.5, end=1.6, client="c2")
    h2.checkpoint(3, state)
    assert [v.name for v in h2.check().violations] == [":chaos.g0"]


def test_unknown_write_justifies_forever() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("a"), start=1)
    h.call("unregister", ":chaos.o1", start=0.5, end=0.9, status="unknown")
    h.checkpoint(3, setup_entries())
    assert h.check().ok


def test_write_acknowledged_after_the_checkpoint_is_judged_later() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("a"), start=1, end=2, status="unknown", op_id="c1-9")
    h.checkpoint(3, setup_entries())  # the first attempt did not take effect
    h.call("register", ":chaos.o1", uri("a"), start=4, op_id="c1-9", attempt=2)
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("a"))
    h.checkpoint(5, state)
    assert h.check().ok, h.check().format()


# -- divergence ----------------------------------------------------------------------------


def test_divergence_different_entries() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("a"), start=1)
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("a"))
    other = copy.deepcopy(state)
    other[":chaos.o1"] = obj(uri("a"), {"op": "x"})
    h.checkpoint(2, state, other)
    report = h.check()
    v = only(report, "divergence")
    assert v.name == ":chaos.o1"
    assert ":chaos.o1" in v.message and "meta" in v.message
    assert report.divergences == 1 and report.converged == 0
    assert [op.args[0] for op in v.ops] == [":chaos", ":chaos.o1"]  # the name and ancestors


def test_divergence_not_converged() -> None:
    h = History()
    h.checkpoint(2, setup_entries(), converged=False, seconds=None)
    v = only(h.check(), "divergence")
    assert "did not converge" in v.message


def test_divergence_too_slow() -> None:
    h = History()
    h.checkpoint(2, setup_entries(), seconds=7.5)
    v = only(h.check(), "divergence")
    assert "7.50 s" in v.message
    assert h.check(bound=10).ok


def test_lost_writes_are_not_judged_at_a_diverged_checkpoint() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("a"), start=1)
    h.checkpoint(2, setup_entries(), converged=False, seconds=None)
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("a"))
    h.checkpoint(3, state)
    assert kinds(h.check()) == ["divergence"]


# -- conflict counts -----------------------------------------------------------------------


def test_conflict_count() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("x"), start=1)
    h.conflict(
        "version",
        ":chaos.o1",
        entry_of(":chaos.o1", obj(uri("x"))),
        entry_of(":chaos.o1", obj(uri("y"))),
        time=2.15,
        node=2,
        incarnation=3,
    )
    # The runner's restart records say which process each node runs (the status field
    # "incarnation" is the node's own run id, not that number: it is not used).
    h.faults.append(Fault("restart", 1, -1, -1, {"incarnation": 1}))
    h.faults.append(Fault("restart", 2, -1, -1, {"incarnation": 3}))
    state = setup_entries()
    state[":chaos.o1"] = obj(uri("x"))
    h.checkpoint(
        2, state, status=({"conflicts": 0, "incarnation": "ab12"}, {"conflicts": 1})
    )
    h.checkpoint(3, state, status=({"conflicts": 0}, {"conflicts": 2, "incarnation": "cd34"}))
    report = h.check()
    v = only(report, "conflict-count")
    assert v.checkpoint == 2
    assert "counted 2" in v.message and "logged 1" in v.message


def test_conflict_count_uses_the_incarnation_of_the_last_restart() -> None:
    h = History()
    h.faults.append(Fault("restart", 1, -1, -1, {"incarnation": 1}))
    h.faults.append(Fault("kill", 1, 1, 1))
    h.faults.append(Fault("restart", 1, 1.2, 1.5, {"incarnation": 2}))
    record = entry_of(":chaos.g0", group())
    h.conflict("version", ":chaos.g0", record, record, time=0.5, incarnation=1)
    h.conflict("version", ":chaos.g0", record, record, time=1.8, incarnation=2)
    h.checkpoint(2, setup_entries(), status=({"conflicts": 1}, {"conflicts": 5}))
    assert h.check().ok  # node 2 has no known incarnation: not compared
    h.checkpoint(3, setup_entries(), status=({"conflicts": 2}, {}))
    v = only(h.check(), "conflict-count")
    assert "incarnation 2" in v.message and v.checkpoint == 2


# -- double applies ------------------------------------------------------------------------


def test_double_apply() -> None:
    h = History()
    h.call("register", ":chaos.o4", uri("d"), start=1, end=2, status="unknown", op_id="c1-1")
    retry = h.call(
        "register",
        ":chaos.o4",
        uri("d"),
        start=2.1,
        node=2,
        status="error",
        error="name already exists: :chaos.o4",
        op_id="c1-1",
        attempt=2,
    )
    report = h.check()
    v = only(report, "double-apply")
    assert v.name == ":chaos.o4"
    assert retry in v.ops
    assert report.double_applied == 1


def test_no_double_apply_when_another_client_registered_the_name() -> None:
    h = History()
    h.call("register", ":chaos.o4", uri("d"), start=1, end=2, status="unknown", op_id="c1-1")
    h.call("register", ":chaos.o4", uri("e"), start=1.5, client="c2")
    h.call(
        "register",
        ":chaos.o4",
        uri("d"),
        start=2.1,
        node=2,
        status="error",
        error="name already exists",
        op_id="c1-1",
        attempt=2,
    )
    assert h.check().ok


def test_no_double_apply_when_a_failed_register_ran_meanwhile() -> None:
    # a register undone for a full disk was visible while it ran
    h = History()
    h.call("register", ":chaos.o4", uri("d"), start=1, end=2, status="unknown", op_id="c1-1")
    h.call("register", ":chaos.o4", uri("e"), start=2, end=2.5, status="error", client="c2")
    refused = {"status": "error", "error": "name already exists", "op_id": "c1-1"}
    h.call("register", ":chaos.o4", uri("d"), start=2.1, attempt=2, **refused)
    assert h.check().ok
    h.call("register", ":chaos.o4", uri("d"), start=3, attempt=3, **refused)
    assert kinds(h.check()) == ["double-apply"]


def test_double_apply_of_create_group() -> None:
    h = History()
    h.call("createGroup", ":chaos.g7", start=1, end=2, status="unknown", op_id="c1-1")
    h.call(
        "createGroup",
        ":chaos.g7",
        start=2.1,
        status="error",
        error="group already exists",
        op_id="c1-1",
        attempt=2,
    )
    assert kinds(h.check()) == ["double-apply"]


def test_double_apply_of_unregister_needs_proof_the_name_was_there() -> None:
    h = History()
    h.call("register", ":chaos.o2", uri("a"), start=1)
    state = setup_entries()
    state[":chaos.o2"] = obj(uri("a"))
    h.checkpoint(2, state)
    h.call("unregister", ":chaos.o2", start=3, end=4, status="unknown", op_id="c1-7")
    h.call(
        "unregister",
        ":chaos.o2",
        start=4.1,
        node=2,
        status="error",
        error="name not found",
        op_id="c1-7",
        attempt=2,
    )
    assert kinds(h.check()) == ["double-apply"]
    # without a checkpoint showing the name, "not found" may be the first attempt's answer
    h2 = History()
    h2.call("unregister", ":chaos.o2", start=3, end=4, status="unknown", op_id="c1-7")
    h2.call(
        "unregister",
        ":chaos.o2",
        start=4.1,
        status="error",
        error="name not found",
        op_id="c1-7",
        attempt=2,
    )
    assert h2.check().ok
    # nor when another client deleted the group meanwhile
    h.call("deleteGroup", ":chaos", start=3.5, client="c2")
    assert h.check().ok


# -- phantom reads -------------------------------------------------------------------------


def test_phantom_reads() -> None:
    h = History()
    h.call("register", ":chaos.o1", uri("real"), start=1)
    h.call("resolve", ":chaos.o1", start=2, result=uri("nobody"))
    h.call("list", ":chaos", start=2, result=[["g0", 0], ["g9", 0], ["o1", 1], ["o7", 1]])
    h.call("getMeta", ":chaos.o1", start=2, result={"op": "nobody"})
    h.call("flatlist", start=2, result=[[":chaos.o1", uri("real")], [":chaos.o2", uri("z")]])
    report = h.check()
    assert kinds(report) == ["phantom-read"] * 4
    assert [v.name for v in report.violations] == [
        ":chaos.o1",
        ":chaos.g9",
        ":chaos.o1",
        ":chaos.o2",
    ]
    assert ":chaos.o7" in report.violations[1].message
    assert report.phantom_reads == 4


def test_read_before_the_write_started_is_phantom() -> None:
    h = History()
    h.call("resolve", ":chaos.o1", start=1, end=1.1, result=uri("later"))
    h.call("register", ":chaos.o1", uri("later"), start=1.2)
    assert kinds(h.check()) == ["phantom-read"]


def test_read_of_a_failed_write_while_it_ran() -> None:
    h = History()
    h.call("register", ":chaos.o2", uri("e"), start=5, end=6, status="error", error="disk full")
    h.call("resolve", ":chaos.o2", start=5.5, end=5.7, result=uri("e"))
    assert h.check().ok
    h.call("resolve", ":chaos.o2", start=7, end=7.1, result=uri("e"))
    assert kinds(h.check()) == ["phantom-read"]


def test_reads_of_an_unknown_write_and_of_revived_groups() -> None:
    h = History()
    h.call("setMeta", ":chaos.g0", {"op": "u"}, start=1, end=3, status="unknown")
    h.call("getMeta", ":chaos.g0", start=10, result={"op": "u"})
    h.call("register", ":chaos.g5.o0", uri("x"), start=11, status="unknown")
    h.call("list", ":chaos", start=12, result=[["g5", 0]])
    h.call("list", ":", start=12, result=[["Default", 0], ["Pyro", 0], ["chaos", 0]])
    assert h.check().ok, h.check().format()


# -- properties ----------------------------------------------------------------------------

GROUPS = [":chaos", ":chaos.g0", ":chaos.g1"]
OBJECTS = [":chaos.o0", ":chaos.o1", ":chaos.g0.o0", ":chaos.g0.o1", ":chaos.g1.o0"]
NAMES = [*GROUPS, *OBJECTS, ":Default", ":"]
OPS = [
    "register",
    "unregister",
    "createGroup",
    "deleteGroup",
    "setMeta",
    "resolve",
    "getMeta",
    "list",
    "flatlist",
]


def parent(name: str) -> str:
    i = name.rfind(".")
    return ":" if i < 0 else name[:i]


class Model:
    """One node, applying calls in order."""

    def __init__(self) -> None:
        self.entries = initial()
        self.root_meta: Any = None

    def _parent_error(self, name: str) -> str | None:
        p = parent(name)
        if p == ":":
            return None
        e = self.entries.get(p)
        if e is None:
            return "(parent)group not found"
        return "parent is no group" if e["kind"] == "object" else None

    def apply(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any, str | None]:
        """(status, result, error message) of the call."""
        n = args[0] if args else None
        e = self.entries.get(n) if n is not None else None
        if op in ("register", "unregister", "createGroup", "deleteGroup") and n == ":":
            return "error", None, "invalid name"
        if op in ("register", "createGroup"):
            error = self._parent_error(n)  # type: ignore[arg-type]
            if error:
                return "error", None, error
            if e is not None:
                return "error", None, "name already exists"
            self.entries[n] = obj(args[1]) if op == "register" else group()  # type: ignore[index]
            return "ok", None, None
        if op == "unregister":
            if e is None or e["kind"] != "object":
                return "error", None, "name not found"
            del self.entries[n]  # type: ignore[arg-type]
            return "ok", None, None
        if op == "deleteGroup":
            if e is None or e["kind"] != "group":
                return "error", None, "group not found"
            for name in [k for k in self.entries if k == n or k.startswith(f"{n}.")]:
                del self.entries[name]
            return "ok", None, None
        if op == "setMeta":
            if n == ":":
                self.root_meta = args[1]
            elif e is None:
                return "error", None, "name not found"
            else:
                e["meta"] = args[1]
            return "ok", None, None
        if op == "resolve":
            if e is None or e["kind"] != "object":
                return "error", None, "name not found"
            return "ok", e["uri"], None
        if op == "getMeta":
            if n == ":":
                return "ok", self.root_meta, None
            return ("ok", e["meta"], None) if e else ("error", None, "name not found")
        if op == "list":
            if n != ":" and (e is None or e["kind"] != "group"):
                return "error", None, "group not found"
            children = sorted(
                [k.rsplit(".", 1)[1] if n != ":" else k[1:], 0 if v["kind"] == "group" else 1]
                for k, v in self.entries.items()
                if parent(k) == n
            )
            return "ok", children, None
        assert op == "flatlist"
        return "ok", sorted([k, v["uri"]] for k, v in self.entries.items() if v["uri"]), None


def simulate(
    steps: list[tuple[str, int, float, bool, bool]], clients: int = 3
) -> tuple[History, Model]:
    """Run *steps* (op, name index, duration, checkpoint after, unknown) on the model;
    calls may overlap, each taking effect at its start. Always ends with a checkpoint."""
    h = History(setup=False)
    model = Model()
    for g in [":chaos", ":chaos.g0", ":chaos.g1"]:
        model.apply("createGroup", (g,))
        h.call("createGroup", g, start=-1, end=-0.9, client="setup")
    t = 0.0
    last_end = 0.0
    for i, (op, index, duration, pause, unknown) in enumerate(steps):
        name = NAMES[index % len(NAMES)]
        op_id = f"c{i % clients}-{i}"
        args: tuple[Any, ...] = (name,)
        if op == "register":
            args = (name, uri(op_id))
        elif op == "setMeta":
            args = (name, {"op": op_id})
        elif op == "flatlist":
            args = ()
        elif op == "list" and name not in GROUPS:
            args = (":",)
        applied = not unknown or i % 2 == 0
        status, result, error = model.apply(op, args) if applied else ("error", None, None)
        if unknown:
            status, result, error = "unknown", None, "timeout"
        h.call(
            op,
            *args,
            start=t,
            end=t + duration,
            status=status,
            result=result,
            error=error,
            client=f"c{i % clients}",
            node=1 + i % 2,
            op_id=op_id,
        )
        last_end = max(last_end, t + duration)
        t += 1.0
        if pause or i == len(steps) - 1:
            h.checkpoint(last_end + 0.1, model.entries)
            t = last_end + 1.0
    if not steps:
        h.checkpoint(0.5, model.entries)
    return h, model


steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.integers(0, len(NAMES) - 1),
        st.sampled_from([0.5, 2.5]),
        st.booleans(),
        st.sampled_from([False] * 9 + [True]),
    ),
    max_size=60,
)


def related(a: str, b: str) -> bool:
    if a == ":" or b == ":":
        return a == b
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


@settings(max_examples=300)
@given(steps=steps_strategy, data=st.data())
def test_no_false_alarms_and_dropped_effects_are_lost(
    steps: list[tuple[str, int, float, bool, bool]], data: st.DataObject
) -> None:
    h, _ = simulate(steps)
    report = h.check()
    assert report.ok, report.format()

    # drop the effect of a write nothing could have superseded from the final state
    writes = [op for op in h.ops if op.is_write and op.status != "error"]
    candidates = [
        w
        for w in writes
        if w.status == "ok"
        and w.args[0] != ":"
        and w.client != "setup"
        and not any(
            o is not w
            and related(o.args[0], w.args[0])
            and (o.status == "unknown" or o.end > w.start)
            for o in writes
        )
    ]
    if not candidates:
        return
    w = data.draw(st.sampled_from(candidates))
    name = w.args[0]
    final = h.checkpoints[-1]
    entries = copy.deepcopy(final.states[0].entries)
    if w.op in ("register", "createGroup"):
        del entries[name]
    elif w.op == "unregister":
        entries[name] = obj(uri("before"))
    elif w.op == "deleteGroup":
        entries[name] = group()
    else:
        entries[name]["meta"] = {"op": "before"}
    h.checkpoints[-1] = Checkpoint(
        final.round,
        final.time,
        True,
        0.1,
        tuple(NodeState(s.node, s.digest, copy.deepcopy(entries)) for s in final.states),
    )
    report = h.check()
    assert [(v.kind, v.name) for v in report.violations] == [("lost-write", name)], report.format()
    assert w in report.violations[0].ops


def test_simulated_history_with_every_kind_of_step() -> None:
    rng = random.Random(3)
    steps = [
        (
            rng.choice(OPS),
            rng.randrange(len(NAMES)),
            rng.choice([0.5, 2.5]),
            rng.random() < 0.1,
            rng.random() < 0.05,
        )
        for _ in range(3000)
    ]
    h, _ = simulate(steps)
    report = h.check()
    assert report.ok, report.format()
    assert report.acknowledged_writes > 300


def test_performance_on_a_large_history() -> None:
    rng = random.Random(11)
    n = 100_000
    steps = [
        (
            rng.choice(OPS),
            rng.randrange(len(NAMES)),
            rng.choice([0.5, 2.5]),
            rng.random() < 300 / n,
            rng.random() < 0.01,
        )
        for _ in range(n)
    ]
    h, _ = simulate(steps, clients=8)
    assert len(h.ops) > 95_000
    assert len(h.checkpoints) > 200
    began = time.perf_counter()
    report = h.check()
    elapsed = time.perf_counter() - began
    assert report.ok, report.format(max_ops=5)[:5000]
    assert elapsed < 20, elapsed
