"""The node's metrics as Prometheus metric families, read at scrape time.

Nothing here runs on the request path: each scrape reads the node's ``status()`` (the
same figures ``pairns-ctl status`` shows), the daemon's counters and the call counters
(:mod:`pairns.metrics.calls`) and builds the families from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import attrs
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from pairns.metrics.calls import SAMPLE_EVERY, CallStats
from pairns.rpc.daemon import DaemonStatistics

#: Every name starts with this.
PREFIX: Final = "pairns"

#: The states of the twin link, one series each (1 for the current one).
LINK_STATES: Final = ("down", "connecting", "handshaking", "syncing", "paired", "refused")


def _number(value: Any) -> float:
    """A status value as a sample (None, a missing figure, is 0)."""
    if value is None or isinstance(value, bool):
        return float(bool(value))
    return float(value)


def _counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=_number(value))


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=_number(value))


@attrs.define(eq=False)
class NodeCollector(Collector):
    """Builds the families from *status* (the node's ``status()``), *daemon* (its
    counters) and *calls*."""

    status: Callable[[], Mapping[str, Any]]
    daemon: Callable[[], DaemonStatistics]
    calls: CallStats

    def collect(self) -> Iterable[Metric]:
        """Every family, from one reading of the status."""
        status = self.status()
        yield from self._calls()
        yield from self._node(status)
        yield from self._connections(self.daemon())
        yield from self._storage(status)
        if status.get("link_state") is not None:
            yield from self._link(status)
        yield from self._discovery(status)

    def _calls(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            f"{PREFIX}_calls",
            "Calls served, by method and outcome (ok, or the error's type name).",
            labels=("method", "outcome"),
        )
        for method, outcome, n in self.calls.totals():
            calls.add_metric((method, outcome), n)
        yield calls
        latency = HistogramMetricFamily(
            f"{PREFIX}_call_duration_seconds",
            f"Time from a call's dispatch to its result, by method (a durable write: "
            f"until it is committed); one plain call in {SAMPLE_EVERY} is timed.",
            labels=("method",),
        )
        for method, stats in sorted(self.calls.methods.items()):
            latency.add_metric((method,), stats.cumulative(), stats.seconds)
        yield latency

    def _node(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            f"{PREFIX}_node_info",
            "This node: its id, role and URI (always 1).",
            labels=("node_id", "role", "uri", "persistent"),
        )
        info.add_metric(
            (
                str(status.get("node_id", "")),
                str(status.get("role", "")),
                str(status.get("uri", "")),
                str(bool(status.get("persistent"))).lower(),
            ),
            1.0,
        )
        yield info
        yield _gauge("uptime_seconds", "Seconds since the node started.", status.get("uptime"))
        yield _gauge("entries", "Names and groups in the namespace.", status.get("entries"))
        yield _gauge(
            "request_ids", "Request ids remembered for retried writes.", status.get("request_ids")
        )
        yield _counter(
            "conflicts",
            "Concurrent writes to one name resolved by the conflict rule (each is logged).",
            status.get("conflicts"),
        )
        yield _counter(
            "admin_refusals",
            "Admin calls (shutdown, resync, load) refused for a missing or wrong admin "
            "identification.",
            status.get("admin_refusals"),
        )
        yield _gauge(
            "tombstones",
            "Deletions kept as tombstones (until nothing can bring the name back).",
            status.get("tombstones"),
        )
        yield _counter(
            "collected_tombstones",
            "Tombstones collected since the node started.",
            status.get("collected_tombstones"),
        )

    def _connections(self, daemon: DaemonStatistics) -> Iterator[Metric]:
        yield _gauge("connections", "Client connections open now.", daemon.connections)
        yield _counter(
            "connections_accepted", "Client connections accepted.", daemon.total_connections
        )
        refused = CounterMetricFamily(
            f"{PREFIX}_connections_refused",
            "Connections turned away: at the connection limit, failing identification, "
            "by address (--allow, the -s plugin's accept_host) or by the -s plugin after "
            "the handshake (guard).",
            labels=("reason",),
        )
        refused.add_metric(("limit",), daemon.refused_connections)
        refused.add_metric(("identification",), daemon.denied_connections)
        refused.add_metric(("address",), daemon.refused_by_address)
        refused.add_metric(("guard",), daemon.refused_by_guard)
        yield refused
        yield _counter("requests", "Requests and oneway calls dispatched.", daemon.requests)

    def _storage(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        if "storage_transactions" not in status:
            return
        transactions = CounterMetricFamily(
            f"{PREFIX}_storage_transactions",
            "Storage transactions, by outcome (a failed one is undone and reported).",
            labels=("outcome",),
        )
        transactions.add_metric(("ok",), _number(status.get("storage_transactions")))
        transactions.add_metric(("failed",), _number(status.get("storage_failed_transactions")))
        yield transactions
        yield _gauge(
            "storage_queued_writes",
            "Writes waiting for the storage committer.",
            status.get("storage_queued_writes"),
        )

    def _link(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_link_state",
            "State of the link to the twin: 1 for the current state, 0 for the others.",
            labels=("state",),
        )
        current = status.get("link_state")
        for name in LINK_STATES:
            state.add_metric((name,), 1.0 if current == name else 0.0)
        yield state
        yield _gauge(
            "unacked_changes",
            "Changes sent to the twin and not yet acknowledged by it.",
            status.get("unacked_changes"),
        )
        yield _gauge(
            "oldest_unacked_seconds",
            "Age of the oldest change the twin has not acknowledged (0: none).",
            status.get("oldest_unacked_seconds"),
        )
        yield _gauge(
            "twin_last_contact_seconds",
            "Seconds since anything was heard from the twin.",
            status.get("last_contact_seconds"),
        )
        resyncs = CounterMetricFamily(
            f"{PREFIX}_resyncs",
            "Resyncs with the twin, by kind (a full snapshot, or the missing changes).",
            labels=("kind",),
        )
        resyncs.add_metric(("full",), _number(status.get("full_resyncs")))
        resyncs.add_metric(("incremental",), _number(status.get("incremental_resyncs")))
        yield resyncs
        for key, doc in (
            ("link_drops", "Times the link to the twin was lost."),
            ("entries_sent", "Changes sent to the twin."),
            ("entries_received", "Changes received from the twin."),
            ("degraded_acks", "Writes acknowledged without the twin under --ack twin."),
            ("refused_peer_calls", "Peer-link calls refused (not the twin, or wrong secret)."),
            ("skew_refusals", "Changes from the twin refused for a clock too far ahead."),
            (
                "deletions_resent",
                "Names the twin still held whose deletion was collected here, deleted again.",
            ),
        ):
            yield _counter(key, doc, status.get(key))

    def _discovery(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        if status.get("discovery") is None:
            return
        datagrams = CounterMetricFamily(
            f"{PREFIX}_discovery_datagrams",
            "Datagrams the discovery responder received, by what it did with them.",
            labels=("verdict",),
        )
        for verdict in ("answered", "rate_limited", "shutdown", "oversized", "garbage", "refused"):
            datagrams.add_metric((verdict,), _number(status.get(f"discovery_{verdict}")))
        yield datagrams


def registry_for(collector: NodeCollector) -> CollectorRegistry:
    """A registry holding only *collector* (no process or platform collectors: the
    figures are the node's own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
