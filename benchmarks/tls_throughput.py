"""TLS resolve throughput against plain TCP, in one run, interleaved.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/tls_throughput.py [--rounds 3] [--duration 3] [--mutual]

Makes its certificates at run time with ``trustme`` (a CA and a certificate for
127.0.0.1, in a temporary directory removed at the end), starts two in-memory
``pairns`` nodes on 127.0.0.1 - one plain, one with ``--tls-cert``/``--tls-key`` (and
``--tls-ca`` with ``--mutual``: the clients then present a certificate too) - registers
the same 1,000 names in each, then for each round, alternating which node goes first:

- ``resolve`` with 1, 4 and 16 client *processes*, each with one blocking
  ``NameServerProxy``, for ``--duration`` seconds;
- ``resolve`` through one ``AsyncNameServerProxy`` in one client process with 16 calls
  in flight (pipelined on one connection).

Per phase: ops/s and the server process's CPU time per op (psutil, user+system); the
table gives medians over rounds and the TLS/plain ratios of the medians. Connections
are opened before timing starts, so the figures are the steady state (TLS record
encryption and the stream path), not handshakes.
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
    TLSFiles,
    fmt,
    machine_line,
    preload,
    print_table,
    ratio,
    start_pairns,
)

CONCURRENCY = (1, 4, 16)
INFLIGHT = 16


def make_certificates(directory: str) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import trustme

    ca = trustme.CA()
    files = {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "cert", "key")}
    files.update(client=os.path.join(directory, "client.pem"))
    files.update(client_key=os.path.join(directory, "client-key.pem"))
    ca.cert_pem.write_to_path(files["ca"])
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(files["cert"])
    server.private_key_pem.write_to_path(files["key"])
    client = ca.issue_cert("bench-client.example")
    client.cert_chain_pems[0].write_to_path(files["client"])
    client.private_key_pem.write_to_path(files["client_key"])
    return files


def run_rounds(
    args: argparse.Namespace, servers: list[tuple[Server, TLSFiles | None]], pool: ClientPool
) -> Collector:
    col = Collector()
    for rnd in range(args.rounds):
        order = servers if rnd % 2 == 0 else list(reversed(servers))
        print(f"round {rnd + 1}/{args.rounds} ...", flush=True)
        phases: list[tuple[str, int, str, int]] = [
            ("blocking", n, "blocking", 1) for n in CONCURRENCY
        ]
        phases.append(("async", 1, "async", INFLIGHT))
        for label, n, mode, inflight in phases:
            for server, tls in order:
                phase = Phase(
                    "pairns",
                    server.port,
                    "resolve",
                    mode=mode,
                    inflight=inflight,
                    duration=args.duration,
                    tag=f"{rnd}{label}{n}",
                    tls=tls,
                )
                r = pool.run(n, phase, server)
                col.add((server.label, label, n), r)
                print(
                    f"  {server.label:5} {label:8} x{n:<2}  {r.ops_per_s:9,.0f} ops/s  "
                    f"server {r.server_cpu_us:6.1f} us/op",
                    flush=True,
                )
    return col


def report(col: Collector) -> None:
    rows = []
    for label, n in [*(("blocking", n) for n in CONCURRENCY), ("async", 1)]:
        name = (
            f"{n} blocking client{'s' if n > 1 else ''}"
            if label == "blocking"
            else (f"async, {INFLIGHT} in flight")
        )
        plain_ops = col.med(("plain", label, n), "ops_per_s")
        tls_ops = col.med(("TLS", label, n), "ops_per_s")
        plain_cpu = col.med(("plain", label, n), "server_cpu_us")
        tls_cpu = col.med(("TLS", label, n), "server_cpu_us")
        rows.append(
            [
                name,
                fmt(plain_ops),
                fmt(tls_ops),
                fmt(ratio(tls_ops, plain_ops), 2),
                fmt(plain_cpu, 1),
                fmt(tls_cpu, 1),
                fmt(ratio(tls_cpu, plain_cpu), 2),
            ]
        )
    print()
    print_table(
        [
            "resolve",
            "plain ops/s",
            "TLS ops/s",
            "TLS/plain",
            "plain srv us/op",
            "TLS srv us/op",
            "TLS/plain CPU",
        ],
        rows,
    )
    for key in col.data:
        errors = col.errors(key)
        if errors:
            print(f"  note: {key}: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument(
        "--mutual", action="store_true", help="mutual TLS: the node requires client certificates"
    )
    args = parser.parse_args()
    print(machine_line())
    directory = tempfile.mkdtemp(prefix="pairns-tls-bench-")
    servers: list[tuple[Server, TLSFiles | None]] = []
    try:
        files = make_certificates(directory)
        flags = ["-x", "--tls-cert", files["cert"], "--tls-key", files["key"]]
        client: TLSFiles = (files["ca"], None, None)
        if args.mutual:
            flags += ["--tls-ca", files["ca"]]
            client = (files["ca"], files["client"], files["client_key"])
        servers.append((start_pairns("plain", extra=["-x"]), None))
        servers.append((start_pairns("TLS", extra=flags), client))
        for server, tls in servers:
            preload(server, tls=tls)
        with ClientPool(max(CONCURRENCY)) as pool:
            col = run_rounds(args, servers, pool)
        mode = "mutual TLS" if args.mutual else "TLS (server certificate only)"
        print(f"\n{mode} vs plain TCP, medians of {args.rounds} rounds of {args.duration:g} s")
        report(col)
    finally:
        for server, _ in servers:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
