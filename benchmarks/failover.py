"""Failover figures (issue 20): the longest gap a client sees between two successful
calls when the node it uses is SIGKILLed, or frozen with SIGSTOP.

Run: ``.venv/bin/python benchmarks/failover.py`` (``--runs N`` per fault, default 5;
``--failover-timeout S``, default 1.0; ``--async`` for the async proxy).

A persistent pair of ``pairns`` processes (``-1``/``-2``) on free loopback ports; one
client thread (a blocking ``NameServerProxy``, or an ``AsyncNameServerProxy`` in its own
Trio run) calls ``resolve`` and ``register`` in turn, about one call per millisecond,
and timestamps every success. Each run faults the node the client uses:

* ``SIGKILL`` - the node dies (the kernel resets its connections); after the gap is
  measured it is restarted on its data and port, and the run ends once the client is
  back on it (it goes back between calls once the node is paired again).
* ``SIGSTOP`` - the node freezes for 2 s (connections stay open; the client notices
  only by the failover timeout), then ``SIGCONT``; the run ends once the client is back.

The gap of a run is the longest interval between two successful calls from just before
the signal to 3 s after it. Figures are printed (median and worst per fault), never
judged: timing never fails this script. Loopback only; every loop is bounded in count
and time; only the processes started here are signalled, by pid.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy

HOST = "127.0.0.1"
LISTEN_RE = re.compile(r"listening on \S+:(\d+)")
START_TIMEOUT = 30.0
BACK_TIMEOUT = 30.0
FREEZE = 2.0
WINDOW = 3.0


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    """One ``pairns`` process (its output goes to files in *workdir*)."""

    def __init__(self, workdir: Path, name: str, port: int, role: int, twin: int) -> None:
        self.workdir, self.name, self.port = workdir, name, port
        self.args = ["-n", HOST, "-p", str(port), f"-{role}", f"{HOST}:{twin}", "-d"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        out = self.workdir / f"{self.name}-{self.runs}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYRO_")}
        env.update(PYRO_STORAGE=str(self.workdir / self.name), PYRO_NS_PEER_TIMEOUT="1.0")
        (self.workdir / self.name).mkdir(exist_ok=True)
        with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pairns.cli.server", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not LISTEN_RE.search(out.read_text(errors="replace")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not start: see {out}")
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def paired(port: int) -> bool:
    try:
        with NameServerProxy(HOST, port, timeout=2.0) as ns:
            return bool(ns.status().get("link_state") == "paired")
    except Exception:
        return False


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting: {what}")
        time.sleep(0.02)


class Stream:
    """The client: calls in turn, timestamps each success, remembers the node used."""

    def __init__(self, port: int, failover_timeout: float, use_async: bool) -> None:
        self.port, self.failover_timeout, self.use_async = port, failover_timeout, use_async
        self.ok: list[float] = []
        self.errors: list[str] = []
        self.serving = port
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.use_async:
            trio.run(self._run_async)
            return
        with NameServerProxy(
            HOST, self.port, timeout=10.0, failover_timeout=self.failover_timeout
        ) as ns:
            for i in range(10_000_000):  # bounded; stop ends it long before
                if self.stop.is_set():
                    return
                try:
                    if i % 2:
                        ns.register(f":bench.c{i}", f"PYRO://{HOST}:1/c{i}")
                    else:
                        ns.resolve(":bench.base")
                except Exception as exc:
                    self.errors.append(repr(exc))
                else:
                    self.ok.append(time.monotonic())
                self.serving = ns.serving.port
                time.sleep(0.001)

    async def _run_async(self) -> None:
        async with AsyncNameServerProxy(
            HOST, self.port, timeout=10.0, failover_timeout=self.failover_timeout
        ) as ns:
            for i in range(10_000_000):
                if self.stop.is_set():
                    return
                try:
                    if i % 2:
                        await ns.register(f":bench.c{i}", f"PYRO://{HOST}:1/c{i}")
                    else:
                        await ns.resolve(":bench.base")
                except Exception as exc:
                    self.errors.append(repr(exc))
                else:
                    self.ok.append(time.monotonic())  # the same clock as the signals
                self.serving = ns.serving.port
                await trio.sleep(0.001)

    def gap(self, start: float, end: float) -> float:
        times = [t for t in self.ok if start <= t <= end]
        return max((b - a for a, b in itertools.pairwise(times)), default=end - start)


def one_run(kind: str, n1: Node, n2: Node, stream: Stream) -> float:
    time.sleep(0.5)
    before = time.monotonic() - 0.2
    if kind == "SIGKILL":
        n1.signal(signal.SIGKILL)
        wait(lambda: stream.serving == n2.port, BACK_TIMEOUT, "the client on the twin")
        time.sleep(WINDOW)
        n1.start()
    else:
        n1.signal(signal.SIGSTOP)
        time.sleep(FREEZE)
        n1.signal(signal.SIGCONT)
        time.sleep(max(0.0, WINDOW - FREEZE))
    gap = stream.gap(before, before + 0.2 + WINDOW)
    wait(lambda: stream.serving == n1.port, BACK_TIMEOUT, "the client back on its node")
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--failover-timeout", type=float, default=1.0)
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 50))
    with tempfile.TemporaryDirectory(prefix="pairns-failover-") as tmp:
        p1, p2 = free_ports(2)
        n1, n2 = Node(Path(tmp), "n1", p1, 1, p2), Node(Path(tmp), "n2", p2, 2, p1)
        try:
            n1.start()
            n2.start()
            wait(lambda: paired(p1) and paired(p2), 30.0, "the pair")
            with NameServerProxy(HOST, p1, timeout=5.0) as ns:
                ns.createGroup(":bench")
                ns.register(":bench.base", f"PYRO://{HOST}:1/base")
            stream = Stream(p1, args.failover_timeout, args.use_async)
            stream.thread.start()
            figures: dict[str, list[float]] = {"SIGKILL": [], "SIGSTOP": []}
            for kind in figures:
                for _ in range(runs):
                    figures[kind].append(one_run(kind, n1, n2, stream))
            stream.stop.set()
            stream.thread.join(timeout=30)
        finally:
            n1.stop()
            n2.stop()
    client = "async" if args.use_async else "blocking"
    print(f"failover, {client} proxy, failover timeout {args.failover_timeout:g} s, {runs} runs")
    print(f"{'fault':<8} {'median gap':>11} {'worst gap':>10}  runs (ms)")
    for kind, gaps in figures.items():
        ms = [g * 1000 for g in gaps]
        listed = " ".join(f"{v:.0f}" for v in ms)
        print(f"{kind:<8} {statistics.median(ms):>8.0f} ms {max(ms):>7.0f} ms  {listed}")
    print(f"calls that failed: {len(stream.errors)} {stream.errors[:3]}")


if __name__ == "__main__":
    main()
