"""The metric families built from a node's status, its daemon's counters and its calls."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pairns.metrics.calls import CallStats, MethodStats
from pairns.metrics.collector import LINK_STATES, NodeCollector, registry_for
from pairns.rpc.daemon import DaemonStatistics

PAIRED: dict[str, Any] = {
    "node_id": "abc",
    "role": 1,
    "uri": "PYRO://127.0.0.1:9090/Pyro.NameServer",
    "persistent": True,
    "uptime": 12.5,
    "entries": 42,
    "request_ids": 3,
    "conflicts": 2,
    "storage_transactions": 17,
    "storage_failed_transactions": 1,
    "storage_queued_writes": 0,
    "link_state": "syncing",
    "unacked_changes": 5,
    "oldest_unacked_seconds": 0.25,
    "last_contact_seconds": 0.1,
    "full_resyncs": 1,
    "incremental_resyncs": 4,
    "link_drops": 3,
    "entries_sent": 100,
    "entries_received": 90,
    "degraded_acks": 0,
    "refused_peer_calls": 0,
    "skew_refusals": 0,
    "discovery": "*:9090/udp",
    "discovery_answered": 7,
    "discovery_rate_limited": 1,
    "discovery_shutdown": 1,
    "discovery_oversized": 0,
    "discovery_garbage": 2,
}
DAEMON = DaemonStatistics(
    connections=2,
    total_connections=10,
    refused_connections=4,
    denied_connections=1,
    requests=99,
    objects=2,
)


def samples(status: dict[str, Any], calls: CallStats | None = None) -> dict[Any, float]:
    collector = NodeCollector(lambda: status, lambda: DAEMON, calls or CallStats())
    text = generate_latest(registry_for(collector)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_status_of_a_paired_node_becomes_metrics() -> None:
    calls = CallStats()
    resolve = calls.methods["resolve"] = MethodStats()
    resolve.record("ok", 5_000)
    resolve.record("NamingError", 20_000)
    got = samples(PAIRED, calls)
    assert got[("pairns_calls_total", (("method", "resolve"), ("outcome", "ok")))] == 1
    assert got[("pairns_calls_total", (("method", "resolve"), ("outcome", "NamingError")))] == 1
    assert got[("pairns_call_duration_seconds_count", (("method", "resolve"),))] == 2
    assert got[("pairns_call_duration_seconds_sum", (("method", "resolve"),))] == 25e-6
    assert got[("pairns_entries", ())] == 42
    assert got[("pairns_conflicts_total", ())] == 2
    for state in LINK_STATES:
        assert got[("pairns_link_state", (("state", state),))] == (state == "syncing")
    assert got[("pairns_unacked_changes", ())] == 5
    assert got[("pairns_oldest_unacked_seconds", ())] == 0.25
    assert got[("pairns_resyncs_total", (("kind", "full"),))] == 1
    assert got[("pairns_resyncs_total", (("kind", "incremental"),))] == 4
    assert got[("pairns_link_drops_total", ())] == 3
    assert got[("pairns_storage_transactions_total", (("outcome", "ok"),))] == 17
    assert got[("pairns_storage_transactions_total", (("outcome", "failed"),))] == 1
    assert got[("pairns_connections_refused_total", (("reason", "limit"),))] == 4
    assert got[("pairns_connections_refused_total", (("reason", "identification"),))] == 1
    assert got[("pairns_connections", ())] == 2
    assert got[("pairns_discovery_datagrams_total", (("verdict", "garbage"),))] == 2
    info = [k for k in got if k[0] == "pairns_node_info"]
    assert info == [
        (
            "pairns_node_info",
            (
                ("node_id", "abc"),
                ("persistent", "true"),
                ("role", "1"),
                ("uri", "PYRO://127.0.0.1:9090/Pyro.NameServer"),
            ),
        )
    ]


def test_a_single_node_in_memory_has_no_link_storage_or_discovery_series() -> None:
    single = {
        "node_id": "abc",
        "role": "single",
        "uri": "PYRO://127.0.0.1:9090/Pyro.NameServer",
        "persistent": False,
        "uptime": 1.0,
        "entries": 2,
        "request_ids": 0,
        "conflicts": 0,
        "link": "unpaired",
        "discovery": None,
        "oldest_unacked_seconds": None,
    }
    names = {name for name, _ in samples(single)}
    absent = ("pairns_link", "pairns_resyncs", "pairns_discovery")
    assert not any(n.startswith(absent) for n in names)
    assert "pairns_storage_transactions_total" not in names
    assert "pairns_entries" in names
