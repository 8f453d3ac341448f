"""Bounded growth under churn: RSS and database size while unique names come and go.

Prints figures, never fails on them::

    .venv/bin/python benchmarks/churn.py [--names 1000000] [--every 100000]
        [--tasks 16] [--time-limit 1500] [--dir DIR]

Starts one persistent ``pairns`` node on 127.0.0.1 (``-d DIR``, a new database), then
registers and unregisters ``--names`` unique names (``:Default.c<i>``; each name is
registered, then unregistered, by one of ``--tasks`` tasks sharing one async proxy),
and after every ``--every`` names prints the node's RSS (``/proc/<pid>/status``), the
database's size (the file plus its write-ahead log) and the tombstones the node holds
and has collected (``status()``). A node with no twin collects a deletion once it is
durable, so every figure should stay flat. At the end the node is stopped and started
again on the same database: its RSS and database size then, too.

Stops early (and says so) after ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Server, machine_line, start_pairns

from pairns.naming.proxy import AsyncNameServerProxy
from pairns.storage.sqlite import DB_NAME


def rss_mib(server: Server) -> float:
    """The node's resident memory (MiB), from /proc (no psutil needed)."""
    with open(f"/proc/{server.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def db_mib(directory: str) -> float:
    """The database file plus its write-ahead log (MiB)."""
    total = 0
    for suffix in ("", "-wal"):
        path = os.path.join(directory, DB_NAME + suffix)
        if os.path.exists(path):
            total += os.path.getsize(path)
    return total / 2**20


async def churn(
    port: int, names: int, every: int, tasks: int, deadline: float, report: Any
) -> int:
    """Register and unregister *names* unique names; call *report(done, status)* every
    *every* names. Returns how many were done (fewer if the deadline passed)."""
    done = 0
    next_report = every
    async with AsyncNameServerProxy("127.0.0.1", port, timeout=30.0) as ns:
        counter = iter(range(names))

        async def worker() -> None:
            nonlocal done, next_report
            for i in counter:
                if time.monotonic() > deadline:
                    return
                name = f":Default.c{i}"
                await ns.register(name, f"PYRO://127.0.0.1:9999/{i:032x}")
                await ns.unregister(name)
                done += 1
                if done >= next_report:
                    next_report += every
                    report(done, await ns.status())

        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(worker)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=1500.0)
    parser.add_argument("--dir", help="database directory (default: a new temporary one)")
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="pairns-churn-")
    print(machine_line())
    print(f"database: {directory}")
    server = start_pairns("pairns persistent", database=directory)
    started = time.monotonic()
    rows: list[tuple[str, ...]] = []

    def line(label: str, status: dict[str, Any] | None) -> None:
        tombs = "-" if status is None else str(status.get("tombstones"))
        collected = "-" if status is None else str(status.get("collected_tombstones"))
        row = (
            label,
            f"{rss_mib(server):.1f}",
            f"{db_mib(directory):.2f}",
            tombs,
            collected,
            f"{time.monotonic() - started:.0f}",
        )
        rows.append(row)
        print("  ".join(row), flush=True)

    print("names churned  RSS MiB  database MiB  tombstones  collected  seconds")
    try:
        time.sleep(1.0)  # the node settles (its collector pauses, gc freeze)
        line("0 (start)", None)
        deadline = started + args.time_limit
        done = trio.run(
            churn,
            server.port,
            args.names,
            args.every,
            args.tasks,
            deadline,
            lambda n, status: line(f"{n:,}", status),
        )
        if done < args.names:
            print(f"time limit reached after {done:,} names")
    finally:
        server.stop()
    server = start_pairns("pairns persistent, restarted", database=directory)
    try:
        time.sleep(1.0)
        line("restarted", None)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
