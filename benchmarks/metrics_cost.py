"""What collecting metrics costs: resolve throughput with and without ``--metrics``.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/metrics_cost.py [--rounds 6] [--duration 2]

Starts two ``pairns`` nodes on 127.0.0.1 (in memory, 1,000 names each): one plain, one
with ``--metrics`` (every call counted and timed, and a scraper reading
``/metrics`` once a second, as Prometheus would). Each round runs ``resolve`` with 1,
4 and 16 blocking client processes against both, alternating which goes first, then
``resolve`` through async proxies with 16 calls in flight. Reports the medians and the
ratios metrics/plain of ops/s and of the server's CPU time per call (issue 21's bound:
metrics may cost resolve throughput at most 5%).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    ClientPool,
    Collector,
    Phase,
    Server,
    machine_line,
    preload,
    print_table,
    ratio,
    start_pairns,
)

CONCURRENCY = (1, 4, 16)
INFLIGHT = 16


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_forever(port: int, stop: threading.Event, scrapes: list[int]) -> None:
    """Read /metrics once a second until *stop* (bounded by the benchmark's length)."""
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            answer.read()
        scrapes[0] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per phase")
    args = ap.parse_args()
    args.rounds = max(1, min(args.rounds, 30))
    args.duration = max(0.2, min(args.duration, 30.0))
    print(machine_line())
    servers: list[Server] = []
    stop = threading.Event()
    scrapes = [0]
    try:
        servers.append(start_pairns("plain"))
        port = free_port()
        servers.append(start_pairns("metrics", extra=["--metrics", f"127.0.0.1:{port}"]))
        for s in servers:
            preload(s)
        scraper = threading.Thread(
            target=scrape_forever, args=(port, stop, scrapes), daemon=True
        )
        scraper.start()
        col = Collector()
        with ClientPool(max(CONCURRENCY)) as pool:
            for rnd in range(args.rounds):
                order = servers if rnd % 2 == 0 else list(reversed(servers))
                print(f"round {rnd + 1}/{args.rounds} ...", flush=True)
                phases = [(n, "blocking") for n in CONCURRENCY] + [(1, "async"), (4, "async")]
                for n, mode in phases:
                    for s in order:
                        extra = {"mode": "async", "inflight": INFLIGHT} if mode == "async" else {}
                        ph = Phase(
                            s.kind, s.port, "resolve", duration=args.duration,
                            tag=f"{rnd}{mode[0]}{n}", **extra,
                        )
                        r = pool.run(n, ph, s)
                        col.add((s.label, mode, n), r)
                        print(
                            f"  {s.label:7} {mode:8} x{n:<2} {r.ops_per_s:9,.0f} ops/s  "
                            f"server {r.server_cpu_us:6.1f} us/op",
                            flush=True,
                        )
        rows = []
        for n, mode in [(n, "blocking") for n in CONCURRENCY] + [(1, "async"), (4, "async")]:
            plain = col.med(("plain", mode, n), "ops_per_s")
            with_metrics = col.med(("metrics", mode, n), "ops_per_s")
            cpu_plain = col.med(("plain", mode, n), "server_cpu_us")
            cpu_metrics = col.med(("metrics", mode, n), "server_cpu_us")
            rows.append(
                [
                    f"resolve, {mode} x{n}",
                    f"{plain:,.0f}",
                    f"{with_metrics:,.0f}",
                    f"{ratio(with_metrics, plain):.3f}",
                    f"{cpu_plain:.1f} / {cpu_metrics:.1f}",
                    f"{ratio(cpu_metrics, cpu_plain):.3f}",
                ]
            )
        print()
        print(f"medians of {args.rounds} rounds; the metrics node was scraped {scrapes[0]} times")
        print_table(
            ["phase", "plain ops/s", "metrics ops/s", "ratio", "server us/op", "cpu ratio"], rows
        )
    finally:
        stop.set()
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
