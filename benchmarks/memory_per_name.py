"""Resident memory per name, and startup time of a persistent node holding many names.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/memory_per_name.py [--names 100000] [--quick]
        [--starts 3] [--dir DIR] [--no-pyro5]

For each server (started on 127.0.0.1 by this script):

- ``pairns`` in memory, ``pairns -d DIR`` (persistent), and, when Pyro5 is installed,
  ``python -m Pyro5.nameserver`` with its default in-memory storage;
- a warm-up of 1,000 registrations through the same clients, then the server's RSS
  (psutil); then ``--names`` registrations of unique names (``:Default.r…`` →
  ``PYRO://127.0.0.1:9999/<32 hex>``, the same shapes for Pyro5); RSS again.
  Bytes per name = RSS growth / names. pairns is fed by 4 client processes with an
  async proxy each (16 calls in flight); Pyro5 by 8 blocking client processes.

Then the persistent node is stopped and restarted ``--starts`` times on its database:
startup time (spawn to the "listening" line, which includes starting Python and
importing pairns; an empty database's startup is shown for comparison) and the RSS of a
node that loaded the names from disk, against a fresh empty persistent node. Each round
also starts once without the start-up snapshot (the file removed first), which is what
a start after a crash costs when no clean close wrote one. Before the
timed starts the script byte-compiles the installed ``pairns`` package (as ``pip
install`` does): with ``PYTHONDONTWRITEBYTECODE`` set, a source tree edited since its
last compile would otherwise be compiled again at every start.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    ClientPool,
    Phase,
    Server,
    fmt,
    machine_line,
    median,
    print_table,
    pyro5_available,
    start_pairns,
    start_pyro5,
)

from pairns.storage.sqlite import SNAPSHOT_NAME

WARMUP = 1000
BUDGET_S = 240.0  # per fill: the registrations stop by themselves after this


def _settle(server: Server) -> int:
    time.sleep(1.0)
    return server.rss()


def fill(pool: ClientPool, server: Server, names: int) -> tuple[int, int, int, float]:
    """Warm up, then register *names* names; (rss_before, rss_after, registered, seconds)."""
    if server.kind == "pairns":
        workers, mode, inflight = 4, "async", 16
    else:
        workers, mode, inflight = 8, "blocking", 1
    warm = Phase(
        server.kind,
        server.port,
        "register",
        mode=mode,
        inflight=inflight,
        duration=60,
        max_ops=-(-WARMUP // workers),
        tag="warm",
    )
    pool.run(workers, warm, server)
    before = _settle(server)
    ph = Phase(
        server.kind,
        server.port,
        "register",
        mode=mode,
        inflight=inflight,
        duration=BUDGET_S,
        max_ops=-(-names // workers),
        tag="m",
    )
    r = pool.run(workers, ph, server)
    if r.errors:
        print(f"  note: {r.errors} errors, first: {r.first_error}")
    after = _settle(server)
    return before, after, r.ops - r.errors, r.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 names, 2 starts")
    ap.add_argument("--starts", type=int, default=3, help="timed restarts of the persistent node")
    ap.add_argument("--dir", default=None, help="where the database goes (default: a temp dir)")
    ap.add_argument("--no-pyro5", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.names, args.starts = 10_000, 2
    args.names = max(1000, min(args.names, 1_000_000))
    args.starts = max(1, min(args.starts, 10))
    use_pyro5 = pyro5_available() and not args.no_pyro5

    root = tempfile.mkdtemp(prefix="memory-bench-", dir=args.dir)
    db = os.path.join(root, "pairns-db")
    print(machine_line())
    where = "in this run" if use_pyro5 else "absent"
    print(f"{args.names:,} names; database in {root}; Pyro5 {where}")
    rows: list[list[str]] = []
    starts_empty: list[float] = []
    starts_full: list[float] = []
    starts_cold: list[float] = []
    rss_empty: list[int] = []
    rss_loaded: list[int] = []
    pool = ClientPool(8)
    try:
        plan: list[tuple[str, str | None]] = [("pairns in memory", None), ("pairns persistent", db)]
        if use_pyro5:
            plan.append(("Pyro5 in memory", "pyro5"))
        for label, how in plan:
            s = start_pyro5(label) if how == "pyro5" else start_pairns(label, database=how)
            try:
                print(f"{label}: filling ...", flush=True)
                before, after, n, secs = fill(pool, s, args.names)
            finally:
                s.stop()
            per = (after - before) / n if n else float("nan")
            rows.append(
                [
                    label,
                    fmt(n),
                    fmt(before / 2**20, 1),
                    fmt(after / 2**20, 1),
                    fmt(per),
                    fmt(n / secs if secs else float("nan")),
                ]
            )
            print(f"  {label}: {per:,.0f} bytes/name ({n:,} names in {secs:.1f} s)", flush=True)
        # Startup of a persistent node with the names, against an empty one.
        import pairns

        compileall.compile_dir(os.path.dirname(pairns.__file__), quiet=1)
        empty_db = os.path.join(root, "empty-db")
        for i in range(args.starts):
            for which, path, times, rss in (
                ("empty", empty_db, starts_empty, rss_empty),
                ("full", db, starts_full, rss_loaded),
                ("no-snapshot", db, starts_cold, []),
            ):
                if which == "no-snapshot":
                    # As after a crash before any clean close: every row is read from
                    # the database (the clean stop below writes the snapshot again).
                    os.unlink(os.path.join(db, SNAPSHOT_NAME))
                s = start_pairns(f"restart-{which}", database=path)
                try:
                    times.append(s.startup_s)
                    rss.append(_settle(s))
                finally:
                    s.stop()
            print(
                f"  start {i + 1}: empty {starts_empty[-1]:.2f} s, "
                f"{args.names:,} names {starts_full[-1]:.2f} s, "
                f"without the snapshot {starts_cold[-1]:.2f} s",
                flush=True,
            )
    finally:
        pool.close()
        shutil.rmtree(root, ignore_errors=True)

    print()
    print("Resident memory per name (RSS growth while registering through clients)")
    print_table(["server", "names", "RSS before MiB", "RSS after MiB", "bytes/name", "reg/s"], rows)
    loaded = (median(rss_loaded) - median(rss_empty)) / args.names
    print()
    print(f"Persistent node restarted on its database ({args.starts} starts, medians)")
    print_table(
        ["database", "startup s (median)", "startup s (best)", "RSS MiB"],
        [
            [
                "empty",
                fmt(median(starts_empty), 2),
                fmt(min(starts_empty), 2),
                fmt(median(rss_empty) / 2**20, 1),
            ],
            [
                f"{args.names:,} names",
                fmt(median(starts_full), 2),
                fmt(min(starts_full), 2),
                fmt(median(rss_loaded) / 2**20, 1),
            ],
            [
                f"{args.names:,} names, no snapshot",
                fmt(median(starts_cold), 2),
                fmt(min(starts_cold), 2),
                "",
            ],
        ],
    )
    print(f"bytes/name of a node loaded from disk: {loaded:,.0f}")
    for label, times in (("", starts_full), (" without the snapshot", starts_cold)):
        target = "meets" if median(times) < 2.0 else "MISSES"
        print(
            f"startup with {args.names:,} names{label}: {median(times):.2f} s "
            f"(target < 2 s: {target})"
        )


if __name__ == "__main__":
    main()
