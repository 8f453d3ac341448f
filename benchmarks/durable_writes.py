"""Durable register throughput: pairns persistent vs in memory vs Pyro5's SQL name server.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/durable_writes.py [--quick] [--rounds 3] [--duration 3]
        [--dir DIR] [--no-pyro5]

Starts, on 127.0.0.1, a ``pairns`` node in memory, a ``pairns`` node in persistent mode
(``-d DIR``: SQLite WAL, every register acknowledged only once durable, group commit)
and, when Pyro5 is installed, ``python -m Pyro5.nameserver -s sql:FILE`` (Pyro5's
SQLite storage). Then, for each round and for 1, 4 and 16 client processes (one
blocking proxy each), every server in turn (the order rotates per round) takes
``register`` calls of unique names for ``--duration`` seconds. Reports ops/s, p50/p99
latency, the server's CPU per register and the clients' CPU per call (medians over
rounds) and the ratios the persistent-mode issue names.

The database files live in a fresh temporary directory (``--dir`` to measure another
disk), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    ClientPool,
    Collector,
    Phase,
    Server,
    fmt,
    machine_line,
    print_table,
    pyro5_available,
    ratio,
    start_pairns,
    start_pyro5,
    verdict,
)

CONCURRENCY = (1, 4, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 1 s phases")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    ap.add_argument("--dir", default=None, help="where the databases go (default: a temp dir)")
    ap.add_argument("--no-pyro5", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1.0
    args.rounds = max(1, min(args.rounds, 20))
    args.duration = max(0.2, min(args.duration, 60.0))
    use_pyro5 = pyro5_available() and not args.no_pyro5

    root = tempfile.mkdtemp(prefix="durable-bench-", dir=args.dir)
    print(machine_line())
    print(f"databases in {root}; Pyro5 {'in this run' if use_pyro5 else 'absent'}")
    servers: list[Server] = []
    pool = None
    col = Collector()
    try:
        servers.append(start_pairns("pairns-mem"))
        servers.append(start_pairns("pairns-disk", database=os.path.join(root, "pairns-db")))
        if use_pyro5:
            servers.append(
                start_pyro5("Pyro5-sql", storage="sql:" + os.path.join(root, "pyro5.sqlite"))
            )
        for s in servers:
            print(f"{s.label}: pid {s.pid}, port {s.port}", flush=True)
        pool = ClientPool(max(CONCURRENCY))
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds} ...", flush=True)
            for n in CONCURRENCY:
                k = (rnd + n) % len(servers)
                order = servers[k:] + servers[:k]
                for s in order:
                    ph = Phase(s.kind, s.port, "register", duration=args.duration, tag=f"{rnd}c{n}")
                    r = pool.run(n, ph, s)
                    col.add((s.label, n), r)
                    print(
                        f"  {s.label:11} x{n:<2} {r.ops_per_s:9,.0f} reg/s  "
                        f"p50 {r.p50_us:8,.0f} us  p99 {r.p99_us:8,.0f} us  "
                        f"server {r.server_cpu_us:6.1f} us/op",
                        flush=True,
                    )
        pool.close()
        pool = None
    finally:
        if pool is not None:
            pool.close()
        for s in servers:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)

    labels = [s.label for s in servers]
    print()
    print(f"register (unique names), medians of {args.rounds} round(s), {args.duration:g} s each")
    rows = [col.row((lab, n), f"{lab} x{n}") for n in CONCURRENCY for lab in labels]
    col.print_table("server x client processes", "reg/s", rows)
    print()
    print("Ratios (of medians)")
    rrows = []
    for n in CONCURRENCY:
        v = ratio(col.med(("pairns-disk", n), "ops_per_s"), col.med(("pairns-mem", n), "ops_per_s"))
        tgt = n == 16
        rrows.append(
            [
                f"pairns persistent / in-memory x{n}",
                fmt(v, 2),
                ">= 0.67" if tgt else "",
                verdict(v, 2 / 3, True) if tgt else "",
            ]
        )
    if use_pyro5:
        for n in CONCURRENCY:
            v = ratio(
                col.med(("pairns-disk", n), "ops_per_s"), col.med(("Pyro5-sql", n), "ops_per_s")
            )
            tgt = n == 16
            rrows.append(
                [
                    f"pairns persistent / Pyro5-sql x{n}",
                    fmt(v, 2),
                    ">= 3" if tgt else "",
                    verdict(v, 3.0, True) if tgt else "",
                ]
            )
    print_table(["ratio", "value", "target", ""], rrows)


if __name__ == "__main__":
    main()
