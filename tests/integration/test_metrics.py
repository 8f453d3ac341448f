"""``--metrics``: a real pair scraped over HTTP on 127.0.0.1; the values move as the pair
is used, loses its twin and resyncs (issue 21)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _support import HOST, NodeProcess, free_ports, run_server_to_exit, wait_until
from prometheus_client.parser import text_string_to_metric_families

from pairns.errors import ConnectionDeniedError
from pairns.metrics.calls import SAMPLE_EVERY
from pairns.naming.proxy import NameServerProxy

IDENT = "metrics-secret"
METRICS_RE = re.compile(r"^metrics: http://127\.0\.0\.1:(\d+)/metrics$", re.M)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: NodeProcess) -> Samples:
    """Every sample the node serves, by name and labels."""
    match = METRICS_RE.search(node.banner)
    assert match, node.banner
    url = f"http://{HOST}:{match.group(1)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def start(tmp: Path, name: str, port: int, *args: str) -> NodeProcess:
    node = NodeProcess(
        ["-n", HOST, "-p", str(port), "-i", IDENT, "-d", "--metrics", "127.0.0.1:0", *args],
        workdir=tmp / "logs",
        storage=tmp / name,
        env={"PYRO_NS_PEER_TIMEOUT": "1.0"},
        name=name,
    )
    return node.wait_started()


def proxy(node: NodeProcess) -> NameServerProxy:
    return NameServerProxy(HOST, node.port, identification=IDENT, timeout=10)


def test_the_metrics_of_a_pair_move_with_what_happens(tmp_path: Path) -> None:
    p1, p2 = free_ports(2)
    nodes = []
    try:
        n1 = start(tmp_path, "n1", p1, "-1", f"{HOST}:{p2}")
        nodes.append(n1)
        n2 = start(tmp_path, "n2", p2, "-2", f"{HOST}:{p1}")
        nodes.append(n2)

        def paired(node: NodeProcess) -> bool:
            return value(scrape(node), "pairns_link_state", state="paired") == 1.0

        assert wait_until(lambda: paired(n1) and paired(n2), 15, 0.1)
        before = scrape(n1)
        assert value(before, "pairns_link_state", state="down") == 0.0
        info = [k for k in before if k[0] == "pairns_node_info"]
        assert len(info) == 1 and ("role", "1") in info[0][1]

        with proxy(n1) as ns:
            for i in range(5):
                ns.register(f":Default.m{i}", f"PYRO://{HOST}:1/m{i}")
            for _ in range(7):
                ns.resolve(":Default.m0")
            with pytest.raises(Exception, match="not found"):
                ns.resolve(":Default.nothing")
        after = scrape(n1)
        assert value(after, "pairns_calls_total", method="register", outcome="ok") == 5
        assert value(after, "pairns_calls_total", method="resolve", outcome="ok") == 7
        assert value(after, "pairns_calls_total", method="resolve", outcome="NamingError") == 1
        # One plain call in SAMPLE_EVERY is timed: of these 8 resolves, the 8th.
        assert (
            value(after, "pairns_call_duration_seconds_count", method="resolve")
            == value(after, "pairns_call_duration_seconds_bucket", method="resolve", le="+Inf")
            == 8 // SAMPLE_EVERY
        )
        assert value(after, "pairns_entries") == value(before, "pairns_entries") + 5
        ok = "pairns_storage_transactions_total"
        assert value(after, ok, outcome="ok") > value(before, ok, outcome="ok")
        assert value(after, "pairns_requests_total") > value(before, "pairns_requests_total")
        # The twin gets the names too.
        assert wait_until(
            lambda: value(scrape(n2), "pairns_entries") == value(after, "pairns_entries"), 10
        )

        # A client with the wrong identification is refused and counted.
        with pytest.raises(ConnectionDeniedError):
            NameServerProxy(HOST, n1.port, identification="wrong", timeout=5).ping()
        refused = "pairns_connections_refused_total"
        assert value(scrape(n1), refused, reason="identification") == 1

        # The twin dies: the link leaves "paired", and what n1 writes waits unacknowledged.
        n2.kill()
        assert wait_until(lambda: not paired(n1), 10, 0.1)
        with proxy(n1) as ns:
            ns.register(":Default.alone", f"PYRO://{HOST}:1/alone")
        alone = scrape(n1)
        assert value(alone, "pairns_unacked_changes") >= 1
        assert value(alone, "pairns_oldest_unacked_seconds") > 0
        assert value(alone, "pairns_link_drops_total") >= 1

        def resyncs(samples: Samples) -> float:
            return sum(
                value(samples, "pairns_resyncs_total", kind=kind)
                for kind in ("full", "incremental")
            )

        before_resync = resyncs(alone)

        # It comes back: a resync, then nothing left unacknowledged.
        n2 = start(tmp_path, "n2", p2, "-2", f"{HOST}:{p1}")
        nodes.append(n2)

        def caught_up() -> bool:
            now = scrape(n1)
            return (
                value(now, "pairns_link_state", state="paired") == 1.0
                and value(now, "pairns_unacked_changes") == 0
            )

        assert wait_until(caught_up, 20, 0.1)
        resynced = scrape(n1)
        assert resyncs(resynced) > before_resync
        assert value(resynced, "pairns_oldest_unacked_seconds") == 0
    finally:
        for node in nodes:
            node.kill()


def test_a_metrics_address_in_use_or_malformed_stops_the_start(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    result = run_server_to_exit(["-n", HOST, "-p", "0", "--metrics", "nonsense"], storage=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "pairns: configuration error: --metrics must be an address to listen on: PORT, "
        "HOST:PORT or [IPV6]:PORT (port 0: any free port), not 'nonsense' (from the command line)"
    )
    node = NodeProcess(
        ["-n", HOST, "-p", "0", "--metrics", f"127.0.0.1:{port}"],
        workdir=tmp_path / "logs",
        storage=tmp_path / "a",
    ).wait_started()
    try:
        (tmp_path / "b").mkdir()
        clash = run_server_to_exit(
            ["-n", HOST, "-p", "0", "--metrics", f"127.0.0.1:{port}"], storage=tmp_path / "b"
        )
        assert clash.returncode == 1
        assert f"cannot serve metrics on 127.0.0.1:{port}" in clash.stderr
    finally:
        node.kill()


def test_without_the_flag_nothing_is_served(tmp_path: Path) -> None:
    node = NodeProcess(
        ["-n", HOST, "-p", "0"], workdir=tmp_path / "logs", storage=tmp_path / "a"
    ).wait_started()
    try:
        assert "metrics: off (--metrics HOST:PORT serves them)\n" in node.banner
    finally:
        node.kill()


def test_only_get_of_metrics_is_answered(tmp_path: Path) -> None:
    node = NodeProcess(
        ["-n", HOST, "-p", "0", "--metrics", "0"], workdir=tmp_path / "logs", storage=tmp_path
    ).wait_started()
    try:
        match = METRICS_RE.search(node.banner)
        assert match
        base = f"http://{HOST}:{match.group(1)}"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/", timeout=10)
        assert missing.value.code == 404
        post = urllib.request.Request(f"{base}/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(post, timeout=10)
        assert refused.value.code == 405
    finally:
        node.kill()
