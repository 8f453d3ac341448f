"""Issue 19: a client that never reads its replies can neither bloat nor stall the node.

It pipelines 900 ``flatlist()`` requests over 2,000 names in one send and reads
nothing. Before the reply cap, the node built every reply of that read before writing
any: its memory grew by gigabytes and other clients waited for seconds.
"""

from __future__ import annotations

import time
from typing import Any

from _support import HOST
from test_ns_robustness import _handshaken

import pairns
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.wire.frames import MessageType, encode_frame, encode_json

NAMES = 2000
PIPELINED = 900


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def test_a_client_that_never_reads_costs_bounded_memory_and_no_latency(start_node: Any) -> None:
    node = start_node()
    port = node.port
    with pairns.NameServerLocator().getNS(HOST, port, timeout=30) as ns:
        ns.createGroup(":Load")
        for i in range(NAMES):
            ns.register(
                f":Load.an-object-with-a-fairly-long-name-{i:05d}",
                f"PYRO://{HOST}:{7000 + i % 1000}/{i:032x}",
            )
        assert len(ns.flatlist()) >= NAMES
    rss_before = _rss_bytes(node.pid)

    hostile = _handshaken(port)
    body = encode_json([NAMESERVER_OBJECT_ID, "flatlist", [], None, None])
    requests = b"".join(
        encode_frame(MessageType.REQUEST, corr_id, body) for corr_id in range(1, PIPELINED + 1)
    )
    hostile.settimeout(30)
    try:
        hostile.sendall(requests)  # and never read a byte
        latencies = []
        peak = rss_before
        with pairns.NameServerLocator().getNS(HOST, port, timeout=30) as ns:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                started = time.monotonic()
                ns.resolve(":Load.an-object-with-a-fairly-long-name-00042")
                latencies.append(time.monotonic() - started)
                peak = max(peak, _rss_bytes(node.pid))
                time.sleep(0.01)
        growth = peak - rss_before
        print(
            f"next to a client that never reads: {len(latencies)} resolves, slowest "
            f"{max(latencies) * 1000:.1f} ms; node RSS +{growth / 1e6:.1f} MB"
        )
        assert max(latencies) < 1.0
        assert growth < 200e6
    finally:
        hostile.close()
    assert node.running
    with pairns.NameServerLocator().getNS(HOST, port, timeout=10) as ns:
        assert ns.ping() is True
