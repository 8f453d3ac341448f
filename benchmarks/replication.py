"""Paired-mode figures: replication lag, full resync and incremental resync (issue 12).

Run: ``.venv/bin/python benchmarks/replication.py`` (add ``--quick`` for a short run).

* **Lag** - a client writes to one node at a paced 1,000 writes/s; the other node runs
  inside this process with its namespace wrapped, so the moment each change becomes
  visible there is read from the same clock as the moment the writer got its ack. The
  writing node is a real ``pairns`` process; both directions are measured (-1 -> -2
  travels in poll replies, -2 -> -1 in pushes).
* **Full resync** - a node holding N names (memory mode) is joined by an empty twin;
  the time from the twin's hello to ``paired`` with equal digests.
* **Incremental resync** - a paired twin is cut off (fault proxy partition), 1,000
  changes are made, the partition heals; the time from the new hello to ``paired``.

Loopback only; every loop is bounded in count and time; the one child process is ended
by its pid. Figures are printed, never judged: timing never fails this script.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import trio

from pairns.config import Config
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.node import Node, open_node
from pairns.replication import LinkState
from pairns.testing.faultproxy import open_fault_proxy

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watched:
    """Delegates to a Namespace and notes when each merged name became visible."""

    def __init__(self, ns: Any) -> None:
        self._ns = ns
        self.seen: dict[str, float] = {}

    def merge_all(self, items: Iterable[Any]) -> Any:
        items = list(items)
        changes = self._ns.merge_all(items)
        now = time.perf_counter()
        for entry in changes.entries:
            self.seen.setdefault(entry.name, now)
        return changes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ns, name)


def start_child(port: int, role: int, twin: int, storage: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRO_")}
    env["PYRO_STORAGE"] = storage
    env["PYTHONPATH"] = str(REPO)
    args = ["-n", HOST, "-p", str(port), f"-{role}", f"{HOST}:{twin}"]
    return subprocess.Popen(
        [sys.executable, "-m", "pairns.cli.server", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def config(tmp: str, name: str, port: int, role: int, twin: int) -> Config:
    return Config(
        host=HOST, port=port, role=role, twin=f"{HOST}:{twin}", uri_file=f"{tmp}/{name}.uri"
    )


async def wait_state(node: Node, state: LinkState, seconds: float) -> None:
    assert node.replicator is not None
    with trio.fail_after(seconds):
        while node.replicator.machine.state is not state:
            await trio.sleep(0.001)


async def measure_lag(tmp: str, observer_role: int, rate: int, seconds: float) -> list[float]:
    """Lag (ms) from the writer's ack to visibility on the observer, at *rate* writes/s."""
    p_obs, p_writer = free_port(), free_port()
    writer_role = 2 if observer_role == 1 else 1
    child = start_child(p_writer, writer_role, p_obs, tmp)
    try:
        cfg = config(tmp, f"obs{observer_role}", p_obs, observer_role, p_writer)
        async with open_node(cfg) as obs:
            assert obs.replicator is not None
            watched = Watched(obs.replicator.namespace)
            obs.replicator.namespace = watched  # type: ignore[assignment]
            await wait_state(obs, LinkState.PAIRED, 20)
            acks: dict[str, float] = {}
            async with AsyncNameServerProxy(HOST, p_writer, timeout=5) as client:
                await client.createGroup(":lag")
                count = int(rate * seconds)
                start = trio.current_time()
                with trio.move_on_after(seconds * 3 + 5):
                    for i in range(count):
                        await trio.sleep_until(start + i / rate)
                        name = f":lag.n{i}"
                        await client.register(name, f"PYRO://{HOST}:1/{i}")
                        acks[name] = time.perf_counter()
                with trio.move_on_after(5):
                    while not all(n in watched.seen for n in acks):
                        await trio.sleep(0.01)
            return [(watched.seen[n] - t) * 1000 for n, t in acks.items() if n in watched.seen]
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


async def populate(node: Node, count: int) -> None:
    ns = node.namespace
    ns.create_group(":bulk")
    for i in range(count):
        ns.register(f":bulk.o{i:06d}", f"PYRO://{HOST}:9999/{i:032x}")
        if i % 5000 == 0:
            await trio.lowlevel.checkpoint()


async def measure_full_resync(tmp: str, count: int) -> tuple[float, int]:
    """Seconds from hello to paired (equal digests) for an empty twin joining *count* names."""
    p1, p2 = free_port(), free_port()
    async with open_node(config(tmp, f"full1-{count}", p1, 1, p2)) as n1:
        await populate(n1, count)
        n1.replicator.changed()  # type: ignore[union-attr]
        async with open_node(config(tmp, f"full2-{count}", p2, 2, p1)) as n2:
            await wait_state(n2, LinkState.SYNCING, 30)
            assert n2.replicator is not None and n1.replicator is not None
            t0 = n2.replicator.machine.status.since
            with trio.fail_after(120):
                while not (
                    n2.replicator.machine.state is LinkState.PAIRED
                    and n1.replicator.machine.state is LinkState.PAIRED
                    and n1.namespace.digest() == n2.namespace.digest()
                ):
                    await trio.sleep(0.002)
            return trio.current_time() - t0, n2.replicator.counters.entries_received


async def measure_incremental(tmp: str, base: int, missed: int) -> tuple[float, int]:
    """Seconds from the new hello to paired after an outage that missed *missed* changes."""
    p1, p2 = free_port(), free_port()
    async with open_node(config(tmp, "inc1", p1, 1, p2)) as n1:
        await populate(n1, base)
        async with (
            open_fault_proxy((HOST, p1)) as proxy,
            open_node(config(tmp, "inc2", p2, 2, proxy.address[1])) as n2,
        ):
            assert n1.replicator is not None and n2.replicator is not None
            await wait_state(n2, LinkState.PAIRED, 60)
            proxy.partition()
            await wait_state(n2, LinkState.DOWN, 10)
            for i in range(missed):
                n1.namespace.register(f":bulk.missed{i:05d}", f"PYRO://{HOST}:1/{i}")
            n1.replicator.changed()
            before = n2.replicator.counters.entries_received
            proxy.heal()
            await wait_state(n2, LinkState.SYNCING, 15)
            t0 = n2.replicator.machine.status.since
            with trio.fail_after(60):
                while not (
                    n2.replicator.machine.state is LinkState.PAIRED
                    and n1.namespace.digest() == n2.namespace.digest()
                ):
                    await trio.sleep(0.001)
            took = trio.current_time() - t0
            return took, n2.replicator.counters.entries_received - before


async def main(quick: bool) -> None:
    with TemporaryDirectory(prefix="pairns-bench-") as tmp:
        seconds = 2.0 if quick else 5.0
        print(f"replication lag at 1000 writes/s for {seconds:g} s (ack -> visible on twin):")
        for observer in (2, 1):
            lags = await measure_lag(tmp, observer, 1000, seconds)
            direction = "-1 -> -2" if observer == 2 else "-2 -> -1"
            if lags:
                print(
                    f"  {direction}: n={len(lags)} p50={statistics.median(lags):.2f} ms "
                    f"p99={pct(lags, 0.99):.2f} ms max={max(lags):.2f} ms   (target p99 <= 5 ms)"
                )
            else:
                print(f"  {direction}: no change became visible")
        sizes = (10_000,) if quick else (10_000, 100_000)
        for count in sizes:
            took, received = await measure_full_resync(tmp, count)
            print(
                f"full resync of {count:,} names: {took:.3f} s ({received:,} entries received)"
                + ("   (target <= 3 s)" if count == 100_000 else "")
            )
        took, received = await measure_incremental(tmp, 10_000, 1000)
        print(
            f"incremental resync after missing 1,000 changes (namespace of 10,000): "
            f"{took:.3f} s ({received:,} entries received)   (target <= 0.2 s)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, 10k resync only")
    logging.basicConfig(level=logging.ERROR)
    trio.run(main, parser.parse_args().quick)
