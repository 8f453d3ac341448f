"""Paired-mode figures: replication lag, full resync and incremental resync (issue 12).

Run: ``.venv/bin/python benchmarks/replication.py`` (add ``--quick`` for a short run,
``--only resync`` for the 100,000-name full resync alone, ``--only lag`` or
``--only incremental`` for the other parts).

* **Lag** - a client writes to one node at a paced 1,000 writes/s; the other node runs
  inside this process with its namespace wrapped, so the moment each change becomes
  visible there is read from the same clock as the moment the writer got its ack. The
  writing node is a real ``pairns`` process; both directions are measured (-1 -> -2
  travels in poll replies, -2 -> -1 in pushes).
* **Full resync** - a ``pairns`` process holding N names (memory mode) is joined by an
  empty twin running here: the time from the twin's hello to ``paired`` (digests are
  then checked equal, untimed).
* **Incremental resync** - the same, with a twin that was paired, then cut off by a
  fault-proxy partition while 1,000 changes were made; time from the new hello to
  ``paired``.

The writer of the lag test is a child process too (``--writer``), so the writing
client, the writing node and the observing node each have their own process.

Loopback only; every loop is bounded in count and time; the one child process is ended
by its pid. Figures are printed, never judged: timing never fails this script.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
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
from pairns.errors import NamingError
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
        return self._note(self._ns.merge_all(list(items)))

    def merge_pairs(self, pairs: list[Any]) -> Any:
        return self._note(self._ns.merge_pairs(pairs))

    def _note(self, changes: Any) -> Any:
        now = time.perf_counter()
        for entry in changes.entries:
            self.seen.setdefault(entry.name, now)
        return changes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ns, name)


def child_env(storage: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRO_")}
    if storage is not None:
        env["PYRO_STORAGE"] = storage
    env["PYTHONPATH"] = str(REPO)
    return env


def start_child(port: int, role: int, twin: int, storage: str) -> subprocess.Popen[bytes]:
    env = child_env(storage)
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


async def wait_state(node: Node, state: LinkState, seconds: float, poll: float = 0.001) -> None:
    assert node.replicator is not None
    with trio.fail_after(seconds):
        while node.replicator.machine.state is not state:
            await trio.sleep(poll)


async def time_to_paired(node: Node, seconds: float) -> float:
    """Seconds from the link's move to ``syncing`` (after the hellos) to ``paired``.

    Both ends are the link's own transition timestamps (``status.since``, the Trio
    clock), so how often this script looks adds nothing to the figure; while syncing it
    looks every 10 ms so that it does not take CPU from the node it measures (which
    runs in this process).
    """
    assert node.replicator is not None
    machine = node.replicator.machine
    await wait_state(node, LinkState.SYNCING, 30)
    start = machine.status.since
    await wait_state(node, LinkState.PAIRED, seconds, poll=0.01)
    return machine.status.since - start


async def writer(port: int, rate: int, count: int, prefix: str) -> None:
    """Child mode: write *count* names at *rate*/s; print each ack's perf_counter (JSON)."""
    acks: dict[str, float] = {}
    async with AsyncNameServerProxy(HOST, port, timeout=5) as client:
        with contextlib.suppress(NamingError):
            await client.createGroup(f":{prefix}")
        start = trio.current_time()
        with trio.move_on_after(count / rate * 3 + 5):
            for i in range(count):
                await trio.sleep_until(start + i / rate)
                name = f":{prefix}.n{i}"
                await client.register(name, f"PYRO://{HOST}:1/{i}")
                acks[name] = time.perf_counter()
    print(json.dumps(acks), flush=True)


async def run_writer(port: int, rate: int, count: int, prefix: str) -> dict[str, float]:
    """Run :func:`writer` in a child process (its own core); its ack times.

    ``time.perf_counter`` is CLOCK_MONOTONIC on Linux: one clock for every process.
    """
    args = [sys.executable, __file__, "--writer", str(port), str(rate), str(count), prefix]
    with trio.fail_after(count / rate * 3 + 30):
        done = await trio.run_process(args, capture_stdout=True, env=child_env(None))
    result: dict[str, float] = json.loads(done.stdout)
    return result


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
            gc.collect()
            gc.freeze()  # as the pairns command does once its node is up
            acks = await run_writer(p_writer, rate, int(rate * seconds), f"lag{observer_role}")
            with trio.move_on_after(5):
                while not all(n in watched.seen for n in acks):
                    await trio.sleep(0.01)
            return [(watched.seen[n] - t) * 1000 for n, t in acks.items() if n in watched.seen]
    finally:
        stop_child(child)


def stop_child(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)


async def populate_remote(port: int, count: int) -> None:
    """Register *count* names on the node at *port*, 64 calls in flight."""
    async with AsyncNameServerProxy(HOST, port, timeout=30) as client:
        await client.createGroup(":bulk")
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < count:
                i = next_i
                next_i += 1
                await client.register(f":bulk.o{i:06d}", f"PYRO://{HOST}:9999/{i:032x}")

        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                for _ in range(64):
                    nursery.start_soon(worker)


async def measure_full_resync(tmp: str, count: int) -> tuple[float, int, bool]:
    """Seconds from hello to paired for an empty twin joining a node holding *count* names,
    the entries received, and whether the digests were already equal at the first check
    after paired (computing a digest of 100,000 entries takes a while itself, so the
    check is not timed; no write happens meanwhile).

    The node holding the names is a real process; the joining twin runs here.
    """
    p1, p2 = free_port(), free_port()
    child = start_child(p1, 1, p2, tmp)
    try:
        await wait_port(p1)
        await populate_remote(p1, count)
        async with open_node(config(tmp, f"full2-{count}", p2, 2, p1)) as n2:
            assert n2.replicator is not None
            took = await time_to_paired(n2, 120)
            at_paired = n2.namespace.digest()
            async with AsyncNameServerProxy(HOST, p1, timeout=30) as c1:
                first = (await c1.status())["digest"] == at_paired
                with trio.fail_after(30):
                    while (await c1.status())["digest"] != n2.namespace.digest():
                        await trio.sleep(0.05)
            return took, n2.replicator.counters.entries_received, first
    finally:
        stop_child(child)


async def wait_port(port: int) -> None:
    with trio.fail_after(20):
        while True:
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


async def measure_incremental(tmp: str, base: int, missed: int) -> tuple[float, int]:
    """Seconds from the new hello to paired after an outage that missed *missed* changes."""
    p1, p2 = free_port(), free_port()
    child = start_child(p1, 1, p2, tmp)
    try:
        await wait_port(p1)
        await populate_remote(p1, base)
        async with (
            open_fault_proxy((HOST, p1)) as proxy,
            open_node(config(tmp, "inc2", p2, 2, proxy.address[1])) as n2,
            AsyncNameServerProxy(HOST, p1, timeout=30) as c1,
        ):
            assert n2.replicator is not None
            await wait_state(n2, LinkState.PAIRED, 60)
            proxy.partition()
            await wait_state(n2, LinkState.DOWN, 10)
            async with trio.open_nursery() as nursery:
                for w in range(16):
                    nursery.start_soon(_write_some, c1, w, missed // 16 + (w < missed % 16))
            before = n2.replicator.counters.entries_received
            proxy.heal()
            took = await time_to_paired(n2, 60)
            with trio.fail_after(30):
                while (await c1.status())["digest"] != n2.namespace.digest():
                    await trio.sleep(0.05)
            return took, n2.replicator.counters.entries_received - before
    finally:
        stop_child(child)


async def _write_some(client: AsyncNameServerProxy, worker: int, count: int) -> None:
    for i in range(count):
        await client.register(f":bulk.missed{worker:02d}x{i:05d}", f"PYRO://{HOST}:1/{i}")


async def main(quick: bool, only: str | None = None) -> None:
    with TemporaryDirectory(prefix="pairns-bench-") as tmp:
        if only == "resync":
            took, received, converged = await measure_full_resync(tmp, 100_000)
            print(
                f"full resync of 100,000 names: {took:.3f} s ({received:,} entries received;"
                f" digests equal at paired: {converged})   (target <= 3 s)"
            )
            return
        seconds = 2.0 if quick else 5.0
        if only in (None, "lag"):
            await report_lag(tmp, seconds)
        if only is None:
            sizes = (10_000,) if quick else (10_000, 100_000)
            for count in sizes:
                took, received, converged = await measure_full_resync(tmp, count)
                print(
                    f"full resync of {count:,} names: {took:.3f} s ({received:,} entries received;"
                    f" digests equal at paired: {converged})"
                    + ("   (target <= 3 s)" if count == 100_000 else "")
                )
        if only in (None, "incremental"):
            took, received = await measure_incremental(tmp, 10_000, 1000)
            print(
                f"incremental resync after missing 1,000 changes (namespace of 10,000): "
                f"{took:.3f} s ({received:,} entries received)   (target <= 0.2 s)"
            )


async def report_lag(tmp: str, seconds: float) -> None:
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, 10k resync only")
    parser.add_argument(
        "--only",
        choices=("lag", "resync", "incremental"),
        help="run one part only (resync: the 100,000-name full resync)",
    )
    parser.add_argument(
        "--writer", nargs=4, metavar=("PORT", "RATE", "COUNT", "PREFIX"), help=argparse.SUPPRESS
    )
    logging.basicConfig(level=logging.ERROR)
    options = parser.parse_args()
    if options.writer:
        port, rate, count, prefix = options.writer
        trio.run(writer, int(port), int(rate), int(count), prefix)
    else:
        trio.run(main, options.quick, options.only)
