"""Rule 4 (failover clients stay available while a node is up) and the gap figures."""

from __future__ import annotations

from typing import Any

import pytest

from pairns.chaos.availability import (
    FAILOVER_MARGIN,
    Downtime,
    FailoverCall,
    down_intervals,
    failover_calls,
    longest_gaps,
)
from pairns.chaos.checker import check
from pairns.chaos.history import Fault, Op, Pause, read_jsonl, write_jsonl

GAVE_UP = {
    "type": "ConnectionClosedError",
    "message": "resolve(): no node of the pair answered (127.0.0.1:1: refused; ...)",
}


class Calls:
    """Failover clients' calls, built by hand: one attempt each unless told."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.count = 0

    def call(
        self,
        start: float,
        end: float,
        status: str = "ok",
        *,
        client: str = "f0",
        error: dict[str, str] | None = None,
        attempts: tuple[tuple[int, float, float, str], ...] = (),
        failover: bool = True,
    ) -> str:
        """A call on [start, end]; *attempts* (node, start, end, status) before its last."""
        self.count += 1
        op_id = f"{client}-{self.count}"
        earlier = [
            self._op(op_id, i, node, s, e, st, client, failover, None)
            for i, (node, s, e, st) in enumerate(attempts, start=1)
        ]
        if status != "ok" and error is None:
            error = GAVE_UP
        last = self._op(op_id, len(attempts) + 1, 2, start, end, status, client, failover, error)
        self.ops.extend([*earlier, last])
        return op_id

    @staticmethod
    def _op(
        op_id: str,
        attempt: int,
        node: int,
        start: float,
        end: float,
        status: str,
        client: str,
        failover: bool,
        error: dict[str, str] | None,
    ) -> Op:
        return Op(
            client=client,
            op_id=op_id,
            attempt=attempt,
            node=node,
            op="resolve",
            args=(":chaos.o1",),
            start=start,
            end=end,
            status=status,  # type: ignore[arg-type]
            error=error if status != "ok" else None,
            failover=failover,
        )


def kill(node: int, at: float, listening: float) -> list[Fault]:
    """A kill and the restart that ended it (listening again at *listening*)."""
    return [
        Fault("kill", node, at, at, {"incarnation": 1}),
        Fault("restart", node, at + 0.3, listening, {"incarnation": 2, "after": "kill"}),
    ]


def violations(calls: Calls, faults: list[Fault], **kw: Any) -> list[Any]:
    report = check(calls.ops, [], [], faults, seed=7, **kw)
    return [v for v in report.violations if v.kind == "failover"]


# -- rule 4 --------------------------------------------------------------------------------


def test_a_failed_call_while_the_twin_was_up_is_reported() -> None:
    calls = Calls()
    calls.call(9.0, 9.01)
    failed = calls.call(10.5, 10.6, "unknown", attempts=((1, 10.5, 10.55, "unknown"),))
    found = violations(calls, kill(1, 10.0, 12.0))
    assert len(found) == 1
    v = found[0]
    assert v.name == ":chaos.o1" and v.checkpoint is None
    assert [op.op_id for op in v.ops] == [failed, failed]  # the call's attempts, no more
    assert "node 2 was up" in v.message and "no node of the pair answered" in v.message
    assert "node 1 was down t=10.000..12.000" in v.message
    assert [f.kind for f in v.faults] == ["kill", "restart"]
    report = check(calls.ops, [], [], kill(1, 10.0, 12.0), seed=7)
    assert not report.ok and report.failover_failures == 1
    assert report.failover_calls == 2 and report.failover_unavailable == 1
    assert "[failover] :chaos.o1" in report.format() and "--seed 7" in report.format()


def test_a_call_timeout_while_a_node_was_up_is_reported_too() -> None:
    calls = Calls()
    timeout = {"type": "CallTimeoutError", "message": "resolve(): no node of the pair answered"}
    calls.call(20.0, 30.0, "unknown", error=timeout)
    faults = [Fault("stop", 1, 19.0, 31.0, {})]  # node 1 frozen, node 2 up all along
    assert len(violations(calls, faults)) == 1


def test_a_node_going_down_or_coming_up_within_the_margin_excuses() -> None:
    margin = FAILOVER_MARGIN
    for offset, reported in ((margin - 0.05, False), (margin + 0.05, True)):
        calls = Calls()
        calls.call(10.5, 10.6, "unknown")
        # node 1 is down throughout; node 2 freezes just after the call ends...
        faults = [*kill(1, 10.0, 12.0), Fault("stop", 2, 10.6 + offset, 11.5, {})]
        assert bool(violations(calls, faults)) is reported, offset
        # ... or came back just before it started
        faults = [*kill(1, 10.0, 12.0), *kill(2, 9.0, 10.5 - offset)]
        assert bool(violations(calls, faults)) is reported, offset


def test_no_node_up_is_not_a_violation() -> None:
    calls = Calls()
    calls.call(10.5, 10.6, "unknown")
    both = [*kill(1, 10.0, 12.0), Fault("stop", 2, 10.2, 11.0, {})]
    assert violations(calls, both) == []
    # a node that went down during the call was not up for all of it
    calls = Calls()
    calls.call(10.5, 11.5, "unknown")
    assert violations(calls, [*kill(1, 10.0, 12.0), *kill(2, 11.0, 11.8)]) == []


def test_answers_and_plain_clients_are_not_judged() -> None:
    calls = Calls()
    full = {"type": "StorageError", "message": "database or disk is full"}
    calls.call(10.5, 10.6, "error", error=full)  # an answer, not unavailability
    calls.call(10.7, 10.8, "unknown", failover=False, client="c0")  # a plain client
    other = {"type": "RemoteProtocolError", "message": "garbage"}
    calls.call(10.9, 11.0, "unknown", error=other)  # not the proxy giving up
    calls.call(11.1, 11.3, "ok", attempts=((1, 11.1, 11.2, "unknown"),))  # failed over
    assert violations(calls, kill(1, 10.0, 12.0)) == []


def test_link_faults_and_full_disks_leave_nodes_up() -> None:
    for kind in ("partition", "delay", "cut", "disk-full"):
        calls = Calls()
        calls.call(10.5, 10.6, "unknown")
        node = 0 if kind != "disk-full" else 2
        faults = [*kill(1, 10.0, 12.0), Fault(kind, node, 10.0, 11.0, {})]
        assert len(violations(calls, faults)) == 1, kind


def test_a_netns_partition_leaves_no_call_judged() -> None:
    calls = Calls()
    calls.call(10.5, 10.6, "unknown")
    assert violations(calls, [Fault("netns-partition", 0, 10.0, 11.0, {"side": 1})]) == []
    assert len(violations(calls, [Fault("netns-partition", 0, 11.0, 12.0, {"side": 1})])) == 1


def test_down_intervals_from_the_runners_faults() -> None:
    faults = [
        Fault("restart", 1, 0.0, 0.5, {"after": "start"}),
        *kill(1, 10.0, 12.0),
        Fault("stop", 2, 3.0, 4.0, {}),
        Fault("wipe", 2, 5.0, 6.0, {}),
        Fault("restart", 2, 5.1, 5.9, {"after": "wipe"}),
        Fault("clock", 1, 20.0, 21.0, {"offset": 5}),
        Fault("restart", 2, 30.0, 30.5, {"after": "disk-full"}),
        Fault("restart", 2, 40.0, 41.0, {"after": "crash"}),
        Fault("kill", 1, 50.0, 50.0, {}),  # never restarted
        Fault("partition", 0, 1.0, 2.0, {}),
    ]
    down = down_intervals(faults, captures=[8.0, 35.0])
    assert down[1] == [(10.0, 12.0), (20.0, 21.0), (50.0, float("inf"))]
    assert down[2] == [(3.0, 4.0), (5.0, 6.0), (30.0, 30.5), (35.0, 41.0)]
    downtime = Downtime(down)
    assert downtime.up_throughout(7.0, 9.0) == [1, 2]
    assert downtime.up_throughout(10.5, 11.0) == [2]
    assert downtime.up_throughout(35.5, 36.0) == [1]


# -- gaps -----------------------------------------------------------------------------------


def test_the_longest_gap_is_between_answers_per_client_and_round() -> None:
    calls = Calls()
    calls.call(1.0, 1.01)
    calls.call(1.01, 2.05, attempts=((1, 1.01, 2.02, "unknown"),))  # answered at 2.05
    calls.call(2.05, 2.06)
    calls.call(3.0, 3.01, client="f1")
    calls.call(3.01, 3.5, "unknown", client="f1")  # f1's round ends unanswered
    calls.call(10.0, 10.01)  # round 1 (after the capture at 5.0)
    calls.call(10.01, 10.02, "error", error={"type": "NamingError", "message": "x"})
    gaps = longest_gaps(failover_calls(calls.ops), [], [5.0])
    assert gaps == {
        ("f0", 0): pytest.approx(1.04),
        ("f1", 0): pytest.approx(0.49),
        ("f0", 1): pytest.approx(0.01),
    }


def test_a_pause_is_not_a_gap() -> None:
    calls = Calls()
    calls.call(1.0, 1.01)
    calls.call(1.01, 1.5)  # in flight when the pause was sent: before it
    calls.call(7.0, 7.01)  # after a 5 s fence
    calls.call(7.01, 7.03)
    pauses = [Pause(1.2, 6.9, "fence")]
    gaps = longest_gaps(failover_calls(calls.ops), pauses, [])
    assert gaps == {("f0", 0): pytest.approx(0.49)}
    assert longest_gaps(failover_calls(calls.ops), [], [])[("f0", 0)] == pytest.approx(5.51)
    report = check(calls.ops, [], [], [], pauses=pauses)
    assert report.longest_gaps == pytest.approx((0.49,))


def test_a_call_is_built_from_its_attempts() -> None:
    calls = Calls()
    calls.call(1.5, 2.0, attempts=((1, 1.0, 1.4, "unknown"),))
    (call,) = failover_calls(calls.ops)
    assert isinstance(call, FailoverCall)
    assert (call.start, call.end, call.answered_at, call.unavailable) == (1.0, 2.0, 2.0, False)
    assert [a.attempt for a in call.attempts] == [1, 2]


def test_failover_records_round_trip(tmp_path: Any) -> None:
    calls = Calls()
    calls.call(1.0, 1.1)
    calls.call(2.0, 2.1, failover=False, client="c0")
    path = tmp_path / "ops.jsonl"
    write_jsonl(path, [*calls.ops, Pause(3.0, 4.0, "checkpoint")])
    lines = path.read_text().splitlines()
    assert '"failover":true' in lines[0] and "failover" not in lines[1]  # plain: as before
    assert list(read_jsonl(path)) == [*calls.ops, Pause(3.0, 4.0, "checkpoint")]
