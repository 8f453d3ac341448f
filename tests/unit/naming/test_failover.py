"""Failover between the two nodes of a pair: the policy alone (no IO), then both name
server proxies against two in-process nodes, the preferred one behind a fault proxy
(refusing connections stands for a dead node, a partition for a frozen one).

Every wait is bounded (``trio.fail_after``, bounded loops).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.config import Config
from pairns.errors import CallTimeoutError, ConnectionClosedError, NamingError
from pairns.naming import methods
from pairns.naming.failover import (
    PROBE_BACKOFF_MAX,
    PROBE_BACKOFF_START,
    Address,
    Failover,
    healthy_status,
)
from pairns.naming.proxy import (
    AsyncNameServerProxy,
    NameServerProxy,
    failover_timeout_setting,
)
from pairns.node import Node, open_node
from pairns.testing.faultproxy import FaultProxy, open_fault_proxy

HOST = "127.0.0.1"
A = Address("127.0.0.1", 9090)
B = Address("127.0.0.1", 9091)

# -- the policy ------------------------------------------------------------------------


def test_a_refused_node_moves_the_call_to_the_twin_and_both_refused_gives_up() -> None:
    f = Failover(A, failover_timeout=1.0, call_timeout=10.0)
    f.learnt_twin(B)
    plan = f.plan("resolve", now=0.0)
    first = plan.next(0.0)
    assert first is not None and first.node == 0 and first.timeout == 1.0
    plan.failed(first, "cannot connect to 127.0.0.1:9090: Connection refused", slow=False)
    second = plan.next(0.01)
    assert second is not None and second.node == 1 and second.timeout == 1.0
    plan.failed(second, "127.0.0.1:9091 closed the connection", slow=False)
    assert plan.next(0.02) is None  # both unreachable: no third attempt
    error = plan.error()
    assert type(error) is ConnectionClosedError
    assert "127.0.0.1:9090: cannot connect" in str(error)
    assert "127.0.0.1:9091: 127.0.0.1:9091 closed the connection" in str(error)
    assert str(error).startswith("resolve(): no node of the pair answered")


def test_slow_nodes_get_longer_attempts_until_the_call_timeout() -> None:
    f = Failover(A, failover_timeout=1.0, call_timeout=5.0)
    f.learnt_twin(B)
    plan = f.plan("dump", now=0.0)
    now, seen = 0.0, []
    for _ in range(10):  # bounded: the call timeout ends it well before
        attempt = plan.next(now)
        if attempt is None:
            break
        seen.append(attempt)
        assert attempt.timeout is not None
        now += attempt.timeout
        plan.failed(attempt, "no reply", slow=True)
    assert [(a.node, a.timeout) for a in seen] == [(0, 1.0), (1, 1.0), (0, 2.0), (1, 1.0)]
    assert type(plan.error()) is CallTimeoutError  # every node was only slow


def test_one_slow_and_one_refused_node_keeps_trying_the_slow_one() -> None:
    f = Failover(A, failover_timeout=1.0, call_timeout=None)
    f.learnt_twin(B)
    f.succeeded(1, now=0.0)  # the twin serves now
    plan = f.plan("register", now=0.0)
    a1 = plan.next(0.0)
    assert a1 is not None and a1.node == 1
    plan.failed(a1, "no reply within 1 s", slow=True)
    a2 = plan.next(1.0)
    assert a2 is not None and a2.node == 0
    plan.failed(a2, "refused", slow=False)
    a3 = plan.next(1.0)
    assert a3 is not None and a3.node == 1 and a3.timeout == 2.0
    assert type(plan.error()) is ConnectionClosedError  # one of them refused


def test_without_a_twin_there_is_one_attempt_bounded_by_the_call_timeout() -> None:
    f = Failover(A, failover_timeout=1.0, call_timeout=3.0)
    f.learnt_twin(None)
    plan = f.plan("resolve", now=0.0)
    attempt = plan.next(0.0)
    assert attempt is not None and attempt.node == 0 and attempt.timeout == 3.0
    plan.failed(attempt, "refused", slow=False)
    assert plan.next(0.0) is None
    assert f.first_timeout == 1.0 and Failover(A, 2.0, 0.5).first_timeout == 0.5


def test_the_preferred_node_is_probed_between_calls_with_backoff() -> None:
    f = Failover(A, failover_timeout=1.0)
    f.learnt_twin(B)
    assert not f.probe_due(100.0)  # on the preferred node: nothing to probe
    f.succeeded(1, now=0.0)
    assert f.current == 1
    assert not f.probe_due(PROBE_BACKOFF_START - 0.01)
    assert f.probe_due(PROBE_BACKOFF_START)
    assert not f.probe_due(PROBE_BACKOFF_START)  # one probe at a time
    now = PROBE_BACKOFF_START
    backoffs = []
    for _ in range(8):  # bounded: the backoff stops growing at its maximum
        f.probed(False, now)
        step = f._next_probe - now
        backoffs.append(step)
        now += step
        assert f.probe_due(now)
    assert backoffs[0] == 2 * PROBE_BACKOFF_START and backoffs[-1] == PROBE_BACKOFF_MAX
    f.probed(True, now)
    assert f.current == 0 and not f.probe_due(now + 100)


def test_health_is_a_paired_link() -> None:
    assert healthy_status({"link_state": "paired"})
    assert not healthy_status({"link_state": "syncing"})
    assert not healthy_status(None) and not healthy_status("paired")


def test_the_failover_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYRO_NS_FAILOVER_TIMEOUT", raising=False)
    assert failover_timeout_setting() == 1.0
    assert failover_timeout_setting(0.25) == 0.25
    monkeypatch.setenv("PYRO_NS_FAILOVER_TIMEOUT", "0.5")
    assert failover_timeout_setting() == 0.5
    assert NameServerProxy(HOST, 1).failover_timeout == 0.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv("PYRO_NS_FAILOVER_TIMEOUT", bad)
        pattern = r"PYRO_NS_FAILOVER_TIMEOUT .*\(from the environment\)"
        with pytest.raises(ValueError, match=pattern):
            failover_timeout_setting()
    with pytest.raises(ValueError, match="from the argument"):
        failover_timeout_setting(0.0)


# -- the proxies against a real pair ---------------------------------------------------

PEER_TIMEOUT = 0.4
FAILOVER = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def node_config(tmp: Path, name: str, port: int, role: int, twin: int, **kw: Any) -> Config:
    return Config(
        host=HOST,
        port=port,
        role=role,
        twin=f"{HOST}:{twin}",
        uri_file=str(tmp / f"{name}.uri"),
        peer_timeout=PEER_TIMEOUT,
        **kw,
    )


async def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not check():
            await trio.sleep(0.02)


def paired(*nodes: Node) -> bool:
    return all(
        n.replicator is not None and n.replicator.machine.state.value == "paired" for n in nodes
    )


@asynccontextmanager
async def pair_behind_proxy(tmp: Path, **kw: Any) -> AsyncIterator[tuple[Node, Node, FaultProxy]]:
    """A pair; node 1 is also reachable through a fault proxy (the clients' way in)."""
    p1, p2 = free_port(), free_port()
    async with (
        open_node(node_config(tmp, "n1", p1, 1, p2, **kw)) as n1,
        open_node(node_config(tmp, "n2", p2, 2, p1, **kw)) as n2,
        open_fault_proxy((HOST, p1)) as proxy,
    ):
        await wait_for(lambda: paired(n1, n2))
        yield n1, n2, proxy


def aclient(proxy: FaultProxy, **kw: Any) -> AsyncNameServerProxy:
    """A client of node 1 through the fault proxy; it learns node 2's address from
    node 1 (``twin()``)."""
    return AsyncNameServerProxy(
        HOST, proxy.address[1], timeout=5.0, failover_timeout=FAILOVER, **kw
    )


async def test_async_calls_move_to_the_twin_and_come_back(tmp_path: Path) -> None:
    async with pair_behind_proxy(tmp_path) as (n1, n2, fp), aclient(fp) as ns:
        await ns.createGroup(":f")
        assert [u.port for u in ns.nodes] == [fp.address[1], n2.address[1]]
        assert ns.serving.port == fp.address[1]
        fp.refuse(True)  # "killed": new connections are closed at once
        fp.cut(reset=True)
        for i in range(20):
            await ns.register(f":f.n{i}", f"PYRO://{HOST}:1/n{i}")
            assert (await ns.resolve(f":f.n{i}")).path == f"n{i}"
        assert ns.serving.port == n2.address[1]
        with pytest.raises(ConnectionClosedError):  # node calls never move
            await ns.status()
        fp.refuse(False)
        with trio.fail_after(10):
            while ns.serving.port != fp.address[1]:
                await ns.resolve(":f.n0")
                await trio.sleep(0.05)
        await wait_for(lambda: all(n1.namespace.exists(f":f.n{i}") for i in range(20)))
        assert not any(n.namespace.conflict_count for n in (n1, n2))


async def test_a_frozen_node_is_left_after_the_failover_timeout(tmp_path: Path) -> None:
    async with pair_behind_proxy(tmp_path) as (_n1, n2, fp), aclient(fp) as ns:
        await ns.createGroup(":z")
        fp.partition()  # bytes vanish both ways: the node seems frozen
        started = trio.current_time()
        await ns.register(":z.a", f"PYRO://{HOST}:1/a")
        took = trio.current_time() - started
        assert FAILOVER * 0.9 <= took < FAILOVER + 2.0
        assert ns.serving.port == n2.address[1]
        await ns.resolve(":z.a")  # straight on the twin now
        fp.heal()


async def test_an_error_the_twin_answered_makes_it_serve_the_next_calls(tmp_path: Path) -> None:
    """Regression (found by the chaos suite's failover clients): a call that moved to
    the twin and got an error answer (``name not found``) left the frozen node current,
    so every such call waited the whole failover timeout on it again."""
    async with pair_behind_proxy(tmp_path) as (_n1, n2, fp), aclient(fp) as ns:
        await ns.createGroup(":e")
        fp.partition()  # node 1 seems frozen
        with pytest.raises(NamingError, match="name not found"):
            await ns.resolve(":e.missing")
        assert ns.serving.port == n2.address[1]
        started = trio.current_time()
        with pytest.raises(NamingError, match="name not found"):
            await ns.resolve(":e.missing")
        assert trio.current_time() - started < FAILOVER / 2  # straight on the twin
        fp.heal()


async def test_the_blocking_proxy_stays_on_a_twin_that_answered_an_error(
    tmp_path: Path,
) -> None:
    async with pair_behind_proxy(tmp_path) as (_n1, n2, fp):
        ns = NameServerProxy(HOST, fp.address[1], timeout=5.0, failover_timeout=FAILOVER)
        try:
            await trio.to_thread.run_sync(ns.createGroup, ":eb")
            fp.partition()

            def two_misses() -> float:
                with pytest.raises(NamingError, match="name not found"):
                    ns.resolve(":eb.missing")
                started = time.monotonic()
                with pytest.raises(NamingError, match="name not found"):
                    ns.resolve(":eb.missing")
                return time.monotonic() - started

            assert await trio.to_thread.run_sync(two_misses) < FAILOVER / 2
            assert ns.serving.port == n2.address[1]
            fp.heal()
        finally:
            ns.close()


async def test_a_retried_write_is_answered_not_applied_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write was applied on node 1, whose reply was lost: the proxy sends it again,
    with the same request id, to node 2, which answers it as applied."""
    async with pair_behind_proxy(tmp_path) as (n1, n2, fp), aclient(fp) as ns:
        await ns.createGroup(":w")
        monkeypatch.setattr(methods, "new_request_id", lambda: "rid-fixed")
        await ns.register(":w.once", f"PYRO://{HOST}:1/once")
        await wait_for(lambda: n2.namespace.exists(":w.once"))
        fp.refuse(True)
        fp.cut(reset=True)
        await ns.register(":w.once", f"PYRO://{HOST}:1/once")  # the retry: answered
        assert ns.serving.port == n2.address[1]
        monkeypatch.setattr(methods, "new_request_id", lambda: "rid-other")
        with pytest.raises(NamingError, match="already exists"):  # a new write
            await ns.register(":w.once", f"PYRO://{HOST}:1/once")
        assert not n1.namespace.conflict_count and not n2.namespace.conflict_count


async def test_both_nodes_gone_names_both(tmp_path: Path) -> None:
    async with pair_behind_proxy(tmp_path) as (_n1, n2, fp):
        ns = AsyncNameServerProxy(HOST, fp.address[1], timeout=5.0, failover_timeout=FAILOVER)
        await ns.ping()
        await ns.resolve(":Pyro.NameServer")  # learns the twin
        n2_port = n2.address[1]
    # Both nodes stopped, the fault proxy closed: everything refuses.
    with pytest.raises(ConnectionClosedError) as info:
        await ns.resolve(":Pyro.NameServer")
    text = str(info.value)
    assert f"{HOST}:{fp.address[1]}:" in text and f"{HOST}:{n2_port}:" in text
    assert "no node of the pair answered" in text
    await ns.aclose()


async def test_identification_is_kept_across_the_switch(tmp_path: Path) -> None:
    async with (
        pair_behind_proxy(tmp_path, identification="s3cret") as (_n1, n2, fp),
        aclient(fp, identification="s3cret") as ns,
    ):
        await ns.createGroup(":i")
        fp.refuse(True)
        fp.cut(reset=True)
        await ns.register(":i.x", f"PYRO://{HOST}:1/x")
        assert ns.serving.port == n2.address[1]


async def test_the_blocking_proxy_fails_over_and_comes_back(tmp_path: Path) -> None:
    async with pair_behind_proxy(tmp_path) as (n1, n2, fp):

        def before() -> NameServerProxy:
            ns = NameServerProxy(HOST, fp.address[1], timeout=5.0, failover_timeout=FAILOVER)
            ns.createGroup(":b")
            return ns

        ns = await trio.to_thread.run_sync(before)
        try:
            fp.refuse(True)
            fp.cut(reset=True)

            def during() -> None:
                for i in range(10):
                    ns.register(f":b.n{i}", f"PYRO://{HOST}:1/n{i}")
                    ns.resolve(f":b.n{i}")

            await trio.to_thread.run_sync(during)
            assert ns.serving.port == n2.address[1]
            fp.refuse(False)

            def back() -> int:
                deadline = 100  # bounded: ~5 s of calls
                while ns.serving.port != fp.address[1] and deadline:
                    ns.resolve(":b.n0")
                    deadline -= 1
                    time.sleep(0.05)
                return ns.serving.port

            assert await trio.to_thread.run_sync(back) == fp.address[1]
        finally:
            ns.close()
        await wait_for(lambda: n1.namespace.exists(":b.n9"))


# -- the policy under any sequence of failures -----------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    failures=st.lists(st.tuples(st.booleans(), st.floats(0.0, 3.0)), max_size=40),
    call_timeout=st.one_of(st.none(), st.floats(0.1, 20.0)),
    start_on_twin=st.booleans(),
)
def test_any_plan_alternates_stays_within_its_deadline_and_ends(
    failures: list[tuple[bool, float]], call_timeout: float | None, start_on_twin: bool
) -> None:
    f = Failover(A, failover_timeout=1.0, call_timeout=call_timeout)
    f.learnt_twin(B)
    if start_on_twin:
        f.succeeded(1, now=0.0)
    plan = f.plan("resolve", now=0.0)
    deadline = float("inf") if call_timeout is None else call_timeout
    now, previous, round_slow, in_round = 0.0, None, False, 0
    for slow, took in failures:
        attempt = plan.next(now)
        if attempt is None:
            # It gives up only past the deadline, or after a round with no slow node.
            assert now >= deadline or (in_round == 2 and not round_slow)
            return
        if in_round == 2:
            in_round, round_slow = 0, False
        assert attempt.node == (f.current if previous is None else 1 - previous)
        assert attempt.timeout is None or 0 < attempt.timeout <= deadline - now
        bound = attempt.timeout if attempt.timeout is not None else 1.0
        now += min(took, bound) if not slow else bound
        plan.failed(attempt, "x", slow=slow)
        previous, in_round, round_slow = attempt.node, in_round + 1, round_slow or slow
    error = plan.error()
    assert "127.0.0.1:9090" in str(error) and "127.0.0.1:9091" in str(error)
