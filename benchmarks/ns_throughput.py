"""Name-server throughput: pairns vs the Pyro5 name server, in one run, interleaved.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/ns_throughput.py [--quick] [--rounds 3] [--duration 3]
        [--max-conns 6000] [--pyro5-max-conns 200] [--no-pyro5] [--no-conns]

Starts its own servers on 127.0.0.1 (a ``pairns`` node in memory and, when Pyro5 is
installed, ``python -m Pyro5.nameserver`` with its default in-memory storage), registers
the same 1,000 names in each, then for each round, alternating which server goes first:

- ``resolve`` and ``register`` (unique names) with 1, 4 and 16 client *processes*, each
  with one blocking proxy (pairns ``NameServerProxy`` / Pyro5 ``Proxy``), for
  ``--duration`` seconds;
- pairns only: ``resolve`` through one ``AsyncNameServerProxy`` per client process with
  16 calls in flight, with 1 and 4 processes (Pyro5's proxies do one call at a time).

Per phase: ops/s, p50/p99 latency of one call, the server process's CPU time per op
(psutil, user+system, before/after: meaningful even when the clients saturate the
cores) and the clients' CPU time per call (``os.times`` in every worker). Medians over
rounds; ratios are ratios of medians. Finally, how many concurrent idle client
connections each server accepts (blocking proxies that ping once and stay open).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    ClientPool,
    Collector,
    Phase,
    Server,
    fmt,
    machine_line,
    preload,
    print_table,
    pyro5_available,
    pyro5_proxy,
    raise_nofile,
    ratio,
    start_pairns,
    start_pyro5,
    verdict,
)

CONCURRENCY = (1, 4, 16)
ASYNC_PROCS = (1, 4)
INFLIGHT = 16


def run_rounds(args: argparse.Namespace, servers: list[Server], pool: ClientPool) -> Collector:
    col = Collector()
    for rnd in range(args.rounds):
        order = servers if rnd % 2 == 0 else list(reversed(servers))
        print(f"round {rnd + 1}/{args.rounds} ...", flush=True)
        for n in CONCURRENCY:
            for op in ("resolve", "register"):
                for s in order:
                    ph = Phase(s.kind, s.port, op, duration=args.duration, tag=f"{rnd}c{n}")
                    r = pool.run(n, ph, s)
                    col.add((s.label, op, n), r)
                    print(
                        f"  {s.label:7} {op:8} x{n:<2}  {r.ops_per_s:9,.0f} ops/s  "
                        f"server {r.server_cpu_us:6.1f} us/op  client {r.client_cpu_us:6.1f} us",
                        flush=True,
                    )
        pn = servers[0]
        for n in ASYNC_PROCS:
            ph = Phase(
                pn.kind,
                pn.port,
                "resolve",
                mode="async",
                inflight=INFLIGHT,
                duration=args.duration,
                tag=f"{rnd}a{n}",
            )
            r = pool.run(n, ph, pn)
            col.add((pn.label, "async-resolve", n), r)
            print(
                f"  {pn.label:7} async x{n} ({INFLIGHT} in flight)  {r.ops_per_s:9,.0f} ops/s  "
                f"server {r.server_cpu_us:6.1f} us/op  client {r.client_cpu_us:6.1f} us",
                flush=True,
            )
    return col


def count_connections(server: Server, limit: int, budget_s: float) -> tuple[int, str, bool]:
    """Open blocking proxies that ping once and stay open, up to *limit* or *budget_s*.

    Returns (accepted, why it stopped, whether the server still answers a new client).
    """
    held: list[Any] = []
    why = f"reached the benchmark's limit of {limit}"
    deadline = time.monotonic() + budget_s
    try:
        for _ in range(limit):
            if time.monotonic() > deadline:
                why = f"time budget of {budget_s:.0f}s used up"
                break
            p: Any = None
            try:
                if server.kind == "pairns":
                    import pairns

                    p = pairns.NameServerLocator().getNS("127.0.0.1", server.port, timeout=5)
                else:
                    p = pyro5_proxy(server.port, timeout=5)
                    p._pyroBind()
                    p.ping()
                held.append(p)
            except Exception as exc:
                why = f"connection {len(held) + 1} refused: {type(exc).__name__}: {exc}"
                if p is not None and server.kind != "pairns":
                    with contextlib.suppress(Exception):
                        p._pyroRelease()
                break
        accepted = len(held)
        # Does it still serve (the held ones and a fresh one)?
        still = True
        try:
            if held:
                held[0].ping()
        except Exception:
            still = False
    finally:
        for p in held:
            with contextlib.suppress(Exception):
                p.close() if server.kind == "pairns" else p._pyroRelease()
    # After releasing them a fresh client must work.
    time.sleep(0.5)
    try:
        if server.kind == "pairns":
            import pairns

            with pairns.NameServerLocator().getNS("127.0.0.1", server.port, timeout=5) as ns:
                ns.ping()
        else:
            with pyro5_proxy(server.port, timeout=5) as ns:
                ns.ping()
    except Exception:
        still = False
    return accepted, why, still


def report(args: argparse.Namespace, col: Collector, labels: list[str]) -> dict[str, float]:
    print()
    print(f"Medians of {args.rounds} round(s), {args.duration:g} s per phase")
    rows = [
        col.row((lab, op, n), f"{lab} {op} x{n}")
        for op in ("resolve", "register")
        for n in CONCURRENCY
        for lab in labels
        if (lab, op, n) in col.data
    ]
    rows += [
        col.row(
            (labels[0], "async-resolve", n),
            f"{labels[0]} async resolve x{n} ({INFLIGHT} in flight/conn)",
        )
        for n in ASYNC_PROCS
    ]
    col.print_table("phase (clients = processes)", "ops/s", rows)
    out: dict[str, float] = {}
    if len(labels) < 2:
        return out
    pn, py = labels
    print()
    print("Ratios (pairns / Pyro5, ratios of medians)")
    rrows = []
    for n in CONCURRENCY:
        v = ratio(
            col.med((pn, "resolve", n), "server_cpu_us"),
            col.med((py, "resolve", n), "server_cpu_us"),
        )
        rrows.append([f"server CPU per resolve x{n}", fmt(v, 2), "<= 0.5", verdict(v, 0.5, False)])
    for n in CONCURRENCY:
        v = ratio(
            col.med((pn, "resolve", n), "client_cpu_us"),
            col.med((py, "resolve", n), "client_cpu_us"),
        )
        rrows.append([f"client CPU per call x{n}", fmt(v, 2), "<= 1.0", verdict(v, 1.0, False)])
    for n in CONCURRENCY:
        v = ratio(
            col.med((pn, "resolve", n), "ops_per_s"), col.med((py, "resolve", n), "ops_per_s")
        )
        tgt = n in (4, 16)
        rrows.append(
            [
                f"resolve throughput x{n}",
                fmt(v, 2),
                ">= 1.5" if tgt else "",
                verdict(v, 1.5, True) if tgt else "",
            ]
        )
    for n in CONCURRENCY:
        v = ratio(
            col.med((pn, "register", n), "ops_per_s"), col.med((py, "register", n), "ops_per_s")
        )
        rrows.append([f"register throughput x{n}", fmt(v, 2), "", ""])
    for n in CONCURRENCY:
        v = ratio(
            col.med((pn, "register", n), "server_cpu_us"),
            col.med((py, "register", n), "server_cpu_us"),
        )
        rrows.append([f"server CPU per register x{n}", fmt(v, 2), "", ""])
    py_best = max(col.med((py, "resolve", n), "ops_per_s") for n in CONCURRENCY)
    pn_async = max(col.med((pn, "async-resolve", n), "ops_per_s") for n in ASYNC_PROCS)
    v = ratio(pn_async, py_best)
    rrows.append(
        [
            f"async pipelined resolve (best) / Pyro5 best ({fmt(py_best)}/s)",
            fmt(v, 2),
            ">= 3",
            verdict(v, 3.0, True),
        ]
    )
    print_table(["ratio", "value", "target", ""], rrows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 1 s phases, fewer connections")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    ap.add_argument("--max-conns", type=int, default=6000)
    ap.add_argument("--pyro5-max-conns", type=int, default=200)
    ap.add_argument("--no-pyro5", action="store_true")
    ap.add_argument("--no-conns", action="store_true", help="skip the connection count")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1.0
        args.max_conns = min(args.max_conns, 2000)
    args.rounds = max(1, min(args.rounds, 20))
    args.duration = max(0.2, min(args.duration, 60.0))
    nofile = raise_nofile(args.max_conns + 1000)  # inherited by the servers it starts

    use_pyro5 = pyro5_available() and not args.no_pyro5
    print(machine_line())
    print(f"RLIMIT_NOFILE soft limit: {nofile}; Pyro5 {'in this run' if use_pyro5 else 'absent'}")
    servers: list[Server] = []
    pool = None
    try:
        servers.append(start_pairns("pairns"))
        if use_pyro5:
            servers.append(start_pyro5("Pyro5"))
        for s in servers:
            preload(s)
            print(f"{s.label}: pid {s.pid}, port {s.port}, {1000} names registered", flush=True)
        pool = ClientPool(max(CONCURRENCY))
        col = run_rounds(args, servers, pool)
        pool.close()
        pool = None
        report(args, col, [s.label for s in servers])
        if not args.no_conns:
            print()
            print("Concurrent idle client connections (blocking proxies, one ping each, held open)")
            rows = []
            accepted: dict[str, int] = {}
            for s in servers:
                limit = args.max_conns if s.kind == "pairns" else args.pyro5_max_conns
                t0 = time.monotonic()
                acc, why, still = count_connections(s, limit, budget_s=120)
                secs = time.monotonic() - t0
                accepted[s.label] = acc
                why = why if len(why) < 110 else why[:107] + "..."
                rows.append([s.label, fmt(acc), f"{secs:.1f}", why, "yes" if still else "NO"])
            print_table(["server", "accepted", "s", "stopped because", "serves after"], rows)
            pn_acc = accepted[servers[0].label]
            if args.max_conns >= 5000 or pn_acc < args.max_conns:
                note = verdict(pn_acc, 5000, True)
            else:
                note = f"not measured: --max-conns {args.max_conns} is below it"
            print(f"pairns connections: {pn_acc:,} (target >= 5,000: {note})")
    finally:
        if pool is not None:
            pool.close()
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
