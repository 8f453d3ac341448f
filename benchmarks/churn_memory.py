"""Where a node's memory goes under churn: one process, the node and its client.

Prints figures, never fails on them::

    .venv/bin/python benchmarks/churn_memory.py [--names 300000] [--every 50000]
        [--tasks 16] [--trace FRAMES] [--base N] [--top 12]

Runs a persistent node (``open_node``, a new database, tombstones collected once
durable: ``PAIRNS_TOMBSTONE_GRACE=0`` unless set) and, in the same Trio run, the
churn of ``benchmarks/churn.py``. Every ``--every`` names, after a full collection:
RSS, ``sys.getallocatedblocks()``, SQLite's own memory (``sqlite3_memory_used``),
glibc's ``mallinfo2`` (heap bytes in use and free, mmapped bytes) and pymalloc's
arenas. With ``--trace``, ``tracemalloc`` runs (that many frames; pymalloc's figures
are then not available) and, from ``--base`` names on, each report also prints the
``--top`` lines whose Python memory changed most.

How to read it: a flat traced size and flat pymalloc arenas with a growing RSS is the
C side - SQLite, or free heap memory glibc holds (fragmentation).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import re
import sys
import tempfile
import time
import tracemalloc
from typing import Any

os.environ.setdefault("PAIRNS_TOMBSTONE_GRACE", "0")

import trio

from pairns.config import Config
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.node import open_node

MiB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def native() -> str:
    """SQLite's memory and glibc's heap (empty where the library is missing)."""
    out = []
    try:
        sqlite = ctypes.CDLL("libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        out.append(f"sqlite={sqlite.sqlite3_memory_used() / MiB:.1f}")
    except (OSError, AttributeError):
        pass
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return " ".join(out)
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    out.append(
        f"heap={info.arena / MiB:.1f} (used {info.uordblks / MiB:.1f}, "
        f"free {info.fordblks / MiB:.1f}) mmapped={info.hblkhd / MiB:.1f}"
    )
    return " ".join(out)


def pymalloc() -> str:
    """pymalloc's arenas and allocated bytes (``sys._debugmallocstats`` on fd 2)."""
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    text = b"".join(chunks).decode()

    def figure(label: str) -> int:
        m = re.search(re.escape(label) + r"\s*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else -1

    arenas = figure("# arenas allocated current")
    allocated = figure("# bytes in allocated blocks") / MiB
    return f"pymalloc arenas={arenas} allocated={allocated:.1f}"


async def main(args: argparse.Namespace) -> None:
    directory = tempfile.mkdtemp(prefix="pairns-churn-memory-")
    config = Config(
        host="127.0.0.1",
        port=0,
        storage=directory,
        persistent=True,
        database=directory,
        responder=False,
    )
    started = time.monotonic()
    done = 0
    snapshot: list[Any] = []

    def report() -> None:
        gc.collect()
        line = (
            f"{done:>9,} names  {time.monotonic() - started:5.0f} s  RSS={rss_mib():.1f} "
            f"blocks={sys.getallocatedblocks():,} {native()}"
        )
        if tracemalloc.is_tracing():
            line += f" traced={tracemalloc.get_traced_memory()[0] / MiB:.1f}"
        else:
            line += f" {pymalloc()}"
        print(line, flush=True)
        if tracemalloc.is_tracing() and done >= args.base:
            skip = tracemalloc.Filter(False, tracemalloc.__file__)
            now = tracemalloc.take_snapshot().filter_traces([skip])
            if snapshot:
                for stat in now.compare_to(snapshot[0], "lineno")[: args.top]:
                    print("    ", stat, flush=True)
            snapshot[:] = [now]

    async with open_node(config) as node:
        async with AsyncNameServerProxy("127.0.0.1", node.address[1], timeout=30.0) as ns:
            counter = iter(range(args.names))
            next_report = args.every

            async def worker() -> None:
                nonlocal done, next_report
                for i in counter:
                    name = f":Default.c{i}"
                    await ns.register(name, f"PYRO://127.0.0.1:9999/{i:032x}")
                    await ns.unregister(name)
                    done += 1
                    if done >= next_report:
                        next_report += args.every
                        await ns.status()
                        report()

            report()
            async with trio.open_nursery() as nursery:
                for _ in range(args.tasks):
                    nursery.start_soon(worker)
        node.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=300_000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc frames (0: off)")
    parser.add_argument("--base", type=int, default=0, help="compare snapshots from here")
    parser.add_argument("--top", type=int, default=12)
    arguments = parser.parse_args()
    if arguments.trace:
        tracemalloc.start(arguments.trace)
    trio.run(main, arguments)
