"""Failover clients against a real pair (issue 20): steady streams of resolves and
registers, blocking and async, while the node they use is SIGKILLed (and restarted)
or SIGSTOPped (then SIGCONTed).

What must hold: no call fails, every register is answered once (a retry on the twin
of a register the first node applied is answered as applied, never "name already
exists"), the stream moves to the twin and comes back to its preferred node once that
is paired again, and both nodes end with the same namespace holding exactly what the
stream registered. Every wait and every loop is bounded; only the processes started
here are signalled, by pid.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import trio
from _support import HOST, NodeProcess, wait_until
from test_pair import PAIR_TIMEOUT, Pair, status, wait_converged, wait_link

from pairns.errors import NamingError
from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy
from pairns.naming.service import NAMESERVER_OBJECT_ID
from pairns.rpc import Proxy

FAILOVER = 0.5
#: Bounds of one stream: calls and seconds (the stream normally ends long before).
MAX_ROUNDS = 20_000
MAX_SECONDS = 90.0
BASE = 10


@attrs.define
class StreamLog:
    """What one client stream saw."""

    registered: list[str] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)
    #: The port of the node that served each round.
    serving: list[int] = attrs.field(factory=list)
    longest_gap: float = 0.0
    rounds: int = 0

    def record(self, port: int, gap: float) -> None:
        self.serving.append(port)
        self.longest_gap = max(self.longest_gap, gap)
        self.rounds += 1

    @property
    def current(self) -> int:
        return self.serving[-1] if self.serving else 0


def blocking_stream(port: int, stop: threading.Event, log: StreamLog) -> None:
    with NameServerProxy(HOST, port, timeout=10.0, failover_timeout=FAILOVER) as ns:
        last = time.monotonic()
        end = last + MAX_SECONDS
        for i in range(MAX_ROUNDS):
            if stop.is_set() or time.monotonic() > end:
                return
            name = f":s.c{i}"
            try:
                ns.resolve(f":s.base{i % BASE}")
                ns.register(name, f"PYRO://{HOST}:1/c{i}")
            except Exception as exc:
                log.errors.append(f"{name}: {exc!r}")
            else:
                log.registered.append(name)
            now = time.monotonic()
            log.record(ns.serving.port, now - last)
            last = now
            time.sleep(0.005)


def async_stream(port: int, stop: threading.Event, log: StreamLog) -> None:
    async def main() -> None:
        async with AsyncNameServerProxy(HOST, port, timeout=10.0, failover_timeout=FAILOVER) as ns:
            last = trio.current_time()
            end = last + MAX_SECONDS
            for i in range(MAX_ROUNDS):
                if stop.is_set() or trio.current_time() > end:
                    return
                name = f":s.c{i}"
                try:
                    # A resolve and a register in flight together on one connection.
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(ns.resolve, f":s.base{i % BASE}")
                        nursery.start_soon(ns.register, name, f"PYRO://{HOST}:1/c{i}")
                except Exception as exc:
                    log.errors.append(f"{name}: {exc!r}")
                else:
                    log.registered.append(name)
                now = trio.current_time()
                log.record(ns.serving.port, now - last)
                last = now
                await trio.sleep(0.005)

    trio.run(main)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    yield p
    p.kill_all()


STREAMS: dict[str, Callable[[int, threading.Event, StreamLog], None]] = {
    "blocking": blocking_stream,
    "async": async_stream,
}


def start_persistent_pair(pair: Pair) -> tuple[NodeProcess, NodeProcess]:
    n1, n2 = pair.start_pair("-d")
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    with NameServerProxy(HOST, n1.port, timeout=5.0) as ns:
        ns.createGroup(":s")
        for b in range(BASE):
            ns.register(f":s.base{b}", f"PYRO://{HOST}:1/base{b}")
    return n1, n2


def until(log: StreamLog, port: int, what: str, timeout: float = PAIR_TIMEOUT) -> None:
    assert wait_until(lambda: log.current == port, timeout, 0.01), (
        f"the stream did not {what} (serving {log.current}, errors {log.errors[:3]})"
    )


def check_end(pair: Pair, n1: NodeProcess, n2: NodeProcess, log: StreamLog) -> None:
    assert not log.errors, f"{len(log.errors)} calls failed: {log.errors[:5]}"
    assert log.rounds > 50, "the stream hardly ran"
    assert n2.port in log.serving and log.current == n1.port
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    wait_converged(n1, n2)
    for node in (n1, n2):
        with NameServerProxy(HOST, node.port, timeout=10.0) as ns:
            names = {name: str(uri) for name, uri in ns.flatlist() if name.startswith(":s.c")}
        assert set(names) == set(log.registered), node.args
        for name, uri in names.items():
            assert uri == f"PYRO://{HOST}:1/{name.removeprefix(':s.')}"
    print(  # the figures, for whoever runs the test with -s
        f"rounds {log.rounds}, longest gap {log.longest_gap * 1000:.0f} ms, "
        f"conflicts {status(n1)['conflicts']}/{status(n2)['conflicts']}"
    )


def run_stream(kind: str, port: int) -> tuple[threading.Thread, threading.Event, StreamLog]:
    stop, log = threading.Event(), StreamLog()
    thread = threading.Thread(target=STREAMS[kind], args=(port, stop, log), daemon=True)
    thread.start()
    assert wait_until(lambda: log.rounds >= 20 or not thread.is_alive(), 20.0)
    return thread, stop, log


def finish(thread: threading.Thread, stop: threading.Event) -> None:
    stop.set()
    thread.join(timeout=30.0)
    assert not thread.is_alive(), "the stream did not stop"


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_a_stream_survives_a_sigkill_and_comes_back_after_the_restart(
    pair: Pair, kind: str
) -> None:
    n1, n2 = start_persistent_pair(pair)
    thread, stop, log = run_stream(kind, n1.port)
    try:
        assert log.current == n1.port
        n1.kill()  # SIGKILL, reaped
        until(log, n2.port, "move to the twin")
        rounds = log.rounds
        assert wait_until(lambda: log.rounds > rounds + 20, 20.0)
        again = pair.start("n1", n1.port, ["-1", f"{HOST}:{n2.port}"], "-d")
        until(log, again.port, "come back to the restarted node")
        rounds = log.rounds
        assert wait_until(lambda: log.rounds > rounds + 20, 20.0)
    finally:
        finish(thread, stop)
    check_end(pair, again, n2, log)


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_a_stream_survives_a_sigstop_and_comes_back_after_sigcont(pair: Pair, kind: str) -> None:
    n1, n2 = start_persistent_pair(pair)
    thread, stop, log = run_stream(kind, n1.port)
    try:
        os.kill(n1.pid, signal.SIGSTOP)
        try:
            until(log, n2.port, "move to the twin")
            rounds = log.rounds
            assert wait_until(lambda: log.rounds > rounds + 20, 20.0)
        finally:
            os.kill(n1.pid, signal.SIGCONT)
        until(log, n1.port, "come back after SIGCONT")
        rounds = log.rounds
        assert wait_until(lambda: log.rounds > rounds + 20, 20.0)
    finally:
        finish(thread, stop)
    check_end(pair, n1, n2, log)


def test_a_twin_killed_and_restarted_alone_still_answers_a_retry(pair: Pair) -> None:
    """Exactly once across a failover and a crash: a write applied on node 1 reaches
    node 2 with its request id; node 2 is SIGKILLed and restarted on its data while
    node 1 is gone, and the client's retry of that write on node 2 is answered as
    applied (not "name already exists"); a new write of the same name is refused."""
    n1, n2 = start_persistent_pair(pair)
    args = (":s.once", f"PYRO://{HOST}:1/once")
    with Proxy.for_address(HOST, n1.port, NAMESERVER_OBJECT_ID, timeout=5.0) as p1:
        assert p1.call("register", *args, request_id="rid-crash") is None
    wait_converged(n1, n2)
    # Acknowledged by node 2, so durable there (acks never pass what is on its disk).
    assert wait_until(lambda: status(n1)["unacked_changes"] == 0, PAIR_TIMEOUT, 0.05)
    n2.kill()
    n1.kill()
    again = pair.start("n2", n2.port, ["-2", f"{HOST}:{n1.port}"], "-d")
    with Proxy.for_address(HOST, again.port, NAMESERVER_OBJECT_ID, timeout=5.0) as p2:
        assert p2.call("register", *args, request_id="rid-crash") is None
        with pytest.raises(NamingError, match="already exists"):
            p2.call("register", *args, request_id="rid-new")
