"""The chaos client: its operation mix, its retries and its stdin/stdout protocol.

No server is needed: calls go to a loopback port nobody listens on, so every attempt
ends ``unknown`` (connection refused) at once.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pairns.chaos.client import (
    BUILTINS,
    CHURN_GROUP,
    CHURN_NAMES,
    FRESH_GROUP,
    FRESH_KEEP,
    GROUPS,
    MAX_ATTEMPTS,
    OBJECTS,
    OP_WEIGHTS,
    ClientProcess,
    Worker,
    choose_op,
)
from pairns.chaos.history import READ_OPS, WRITE_OPS, Op, read_jsonl

REPO = Path(__file__).resolve().parents[3]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_names_follow_the_plan() -> None:
    assert GROUPS == (":chaos.g0", ":chaos.g1", ":chaos.g2", ":chaos.g3")
    assert len(OBJECTS) == 25
    assert ":chaos.g2.o4" in OBJECTS and ":chaos.o0" in OBJECTS
    assert BUILTINS == (":", ":Pyro", ":Default")


def test_choose_op_is_seeded() -> None:
    a, b = random.Random("1:c0"), random.Random("1:c0")
    assert [choose_op(a, f"c0-{i}") for i in range(200)] == [
        choose_op(b, f"c0-{i}") for i in range(200)
    ]


def test_choose_op_mix_and_arguments() -> None:
    rng = random.Random(3)
    draws = [choose_op(rng, f"c9-{i}") for i in range(40_000)]
    counts = Counter(op for op, _ in draws)
    total = sum(w for _, w in OP_WEIGHTS)
    weights = dict(OP_WEIGHTS)
    weights["setMeta"] += weights.pop("setMetaBuiltin")
    # Without fresh names registered yet, "fresh" registers one and "resolveFresh"
    # resolves a shared object.
    weights["register"] += weights.pop("fresh")
    weights["resolve"] += weights.pop("resolveFresh")
    # Without a churn list (the failover clients' old callers), churn resolves.
    weights["resolve"] += weights.pop("churn")
    for op, weight in weights.items():
        assert counts[op] / len(draws) == pytest.approx(weight / total, abs=0.01), op
    for i, (op, args) in enumerate(draws):
        assert op in WRITE_OPS | READ_OPS
        if op == "register":
            assert args[0] in (*OBJECTS, f"{FRESH_GROUP}.c9-{i}")
            assert args[1] == f"PYRO://127.0.0.1:1/c9-{i}"
        elif op in ("unregister", "resolve"):
            assert args[0] in OBJECTS
        elif op == "setMeta":
            assert args[0] in OBJECTS + GROUPS + BUILTINS and args[1] == {"op": f"c9-{i}"}
        elif op in ("createGroup", "deleteGroup"):
            assert args[0] in GROUPS
        elif op == "flatlist":
            assert args == ()
    builtin_sets = sum(1 for op, args in draws if op == "setMeta" and args[0] in BUILTINS)
    assert 0.005 < builtin_sets / len(draws) < 0.015


def test_fresh_names_are_unique_and_bounded() -> None:
    rng = random.Random(5)
    fresh = [f"{FRESH_GROUP}.c1-{i}" for i in range(FRESH_KEEP)]
    draws = [choose_op(rng, f"c1-{1000 + i}", fresh=fresh) for i in range(5_000)]
    # A full list: "fresh" unregisters the oldest, never registers a new one.
    assert not [a for op, a in draws if op == "register" and a[0].startswith(FRESH_GROUP)]
    assert {a[0] for op, a in draws if op == "unregister" and a[0].startswith(FRESH_GROUP)} == {
        fresh[0]
    }
    resolved = {a[0] for op, a in draws if op == "resolve" and a[0].startswith(FRESH_GROUP)}
    assert resolved and resolved <= set(fresh)


def test_builtins_can_be_held_back() -> None:
    rng = random.Random(4)
    for i in range(5_000):
        op, args = choose_op(rng, f"c0-{i}", builtins=False)
        if op == "setMeta":
            assert args[0] not in BUILTINS


def test_an_unanswered_write_is_retried_with_its_request_id(tmp_path: Path) -> None:
    port = closed_port()
    out = tmp_path / "ops.jsonl"
    worker = Worker("c0", 1, [("127.0.0.1", port), ("127.0.0.1", port)], out, timeout=0.5)
    try:
        n = 0
        while True:
            n += 1
            assert worker.run_one(n) is False
            records = [r for r in read_jsonl(out) if isinstance(r, Op)]
            if records[-1].is_write:
                break
    finally:
        worker.close()
    last = [r for r in records if r.op_id == f"c0-{n}"]
    assert [r.attempt for r in last] == list(range(1, MAX_ATTEMPTS + 1))
    assert len({r.rid for r in last}) == 1 and last[0].rid is not None
    assert all(r.status == "unknown" and r.error is not None for r in last)
    assert all(r.start <= r.end for r in last)
    assert all(r.error and r.error["type"] == "ConnectionClosedError" for r in records)


def test_a_failover_client_records_the_proxys_attempts_and_never_retries(
    tmp_path: Path,
) -> None:
    one, two = closed_port(), closed_port()
    out = tmp_path / "ops.jsonl"
    nodes = [("127.0.0.1", one), ("127.0.0.1", two)]
    worker = Worker("f1", 1, nodes, out, timeout=2.0, failover=2, failover_timeout=0.5)
    try:
        for n in range(1, 21):
            assert worker.run_one(n) is False
    finally:
        worker.close()
    records = [r for r in read_jsonl(out) if isinstance(r, Op)]
    assert all(r.failover and r.client == "f1" for r in records)
    calls: dict[str, list[Op]] = {}
    for r in records:
        calls.setdefault(r.op_id, []).append(r)
    assert list(calls) == [f"f1-{n}" for n in range(1, 21)]  # one call per operation
    for attempts in calls.values():
        # the proxy's round: the preferred node (2), then its twin; then it gave up
        assert [(a.attempt, a.node, a.status) for a in attempts] == [
            (1, 2, "unknown"),
            (2, 1, "unknown"),
        ]
        assert len({a.rid for a in attempts}) == 1
        last = attempts[-1].error
        assert last is not None and last["type"] == "ConnectionClosedError"
        assert "no node of the pair answered" in last["message"]
        assert f"127.0.0.1:{one}" in last["message"] and f"127.0.0.1:{two}" in last["message"]
    writes = [a for a in records if a.is_write]
    assert writes and all(a.rid is not None for a in writes)


def test_the_client_process_obeys_run_pause_exit(tmp_path: Path) -> None:
    port = closed_port()
    client = ClientProcess(
        "c1",
        seed=5,
        nodes=[("127.0.0.1", port), ("127.0.0.1", port)],
        out=tmp_path / "ops-c1.jsonl",
        log=tmp_path / "client-c1.log",
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=0.5,
        max_seconds=60,
    )
    client.start()
    try:
        assert client.expect("ready", time.monotonic() + 20)
        assert client.send("run")
        time.sleep(0.5)
        assert client.send("pause")
        assert client.expect("paused", time.monotonic() + 10)
        size = (tmp_path / "ops-c1.jsonl").stat().st_size
        assert size > 0
        time.sleep(0.3)
        assert (tmp_path / "ops-c1.jsonl").stat().st_size == size  # nothing while paused
        assert client.send("pause")
        assert client.expect("paused", time.monotonic() + 10)  # a paused client answers too
    finally:
        client.stop(timeout=10)
    assert client.proc is not None and client.proc.returncode == 0
    ops = [r for r in read_jsonl(tmp_path / "ops-c1.jsonl") if isinstance(r, Op)]
    assert ops and all(r.client == "c1" and r.status == "unknown" for r in ops)


def test_the_client_ends_with_its_stdin(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pairns.chaos.client",
            "--client",
            "c2",
            "--seed",
            "1",
            "--nodes",
            "127.0.0.1:1,127.0.0.1:1",
            "--out",
            str(tmp_path / "ops.jsonl"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    out, _ = proc.communicate(b"", timeout=20)
    assert proc.returncode == 0
    assert out.split() == [b"ready"]


def test_client_names_must_not_hold_the_op_id_separator(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pairns.chaos.client", "--client", "a-b", "--seed", "1"),
            *("--nodes", "127.0.0.1:1,127.0.0.1:2", "--out", str(tmp_path / "x")),
        ],
        capture_output=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=20,
    )
    assert proc.returncode == 2


def test_churn_toggles_the_clients_own_names() -> None:
    rng = random.Random(5)
    registered: set[str] = set()
    seen: set[str] = set()
    for i in range(4000):
        op, args = choose_op(rng, f"c1-{i}", churn=("c1", registered))
        if not args or not isinstance(args[0], str) or not args[0].startswith(CHURN_GROUP + "."):
            continue
        name = args[0]
        assert name.startswith(f"{CHURN_GROUP}.c1-c")
        seen.add(name)
        if op == "register":
            assert name not in registered
            registered.add(name)
        else:
            assert op == "unregister" and name in registered
            registered.discard(name)
    assert len(seen) == CHURN_NAMES
