"""What the link tells the operator: counters, unacknowledged changes, conflict lines.

No IO: :class:`~pairns.replication.link.Replicator` assembles ``status()`` from these.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import attrs

from pairns import structured_log
from pairns.namespace import Conflict, Entry, Kind, Namespace
from pairns.replication.feed import TwinOrigin

__all__ = ["Counters", "conflict_logger", "count_unacked", "describe_version", "version_fields"]

log = logging.getLogger("pairns.replication")

#: Metadata longer than this (as JSON) is summarised in a conflict's log line.
_LOGGED_META_CHARS: Final = 512

#: Most unacknowledged changes counted (``status()`` stays cheap with a far-behind twin).
_MAX_COUNTED: Final = 100_001


@attrs.define(eq=False)
class Counters:
    """What the link counted since the node started (shown by ``status()``)."""

    entries_sent: int = 0
    entries_received: int = 0
    batches_received: int = 0
    full_resyncs: int = 0
    incremental_resyncs: int = 0
    drops: int = 0
    degraded_acks: int = 0
    twin_acks: int = 0
    skew_refusals: int = 0
    refused_peer_calls: int = 0
    #: Live entries from a twin that had lost their (collected) deletion, buried again.
    buried: int = 0


def count_unacked(
    ns: Namespace, origin: TwinOrigin, *, acked: int, twin_id: str, scope: int | None
) -> tuple[int, float | None]:
    """How many changes above *acked* the twin still lacks, and the age of the oldest.

    The twin's own changes do not count (they do not travel back): those merged from
    *twin_id*, on connection *scope* only if given (while a full resync is owed, the
    twin's earlier changes travel back too: it may have lost them).
    """
    rows = ns.entries_since(acked, limit=_MAX_COUNTED)
    count = 0
    oldest: float | None = None
    came_from = origin.came_from
    for _, entry in rows:
        if twin_id and came_from(entry, twin_id, scope):
            continue  # the twin's own change: it will not travel back
        count += 1
        if oldest is None:
            oldest = round(max(0.0, time.time() - entry.stamp.wall_time), 3)
    return count, oldest


def conflict_logger(previous: Callable[[Conflict], None] | None) -> Callable[[Conflict], None]:
    """A ``Namespace.on_conflict`` hook that logs each conflict as one line, then calls
    *previous* (the hook it replaces), if any."""

    def on_conflict(conflict: Conflict) -> None:
        kept, lost = version_fields(conflict.winner), version_fields(conflict.loser)
        log.warning(
            "conflict (%s) on %s: kept %s, lost %s",
            conflict.kind,
            conflict.name,
            _compact(kept),
            _compact(lost),
            extra=structured_log.fields(
                conflict=conflict.kind, name=conflict.name, kept=kept, lost=lost
            ),
        )
        if previous is not None:
            previous(conflict)

    return on_conflict


def describe_version(entry: Entry) -> str:
    """One entry as the JSON object a conflict's log line shows: what a client sees of
    it (``kind``, ``deleted``, ``uri``, ``meta``), which node wrote it and when.

    One line a reader can follow and a program can parse (the chaos suite does); large
    metadata is summarised (``"meta_bytes"`` instead of ``"meta"``).
    """
    return _compact(version_fields(entry))


def version_fields(entry: Entry) -> dict[str, Any]:
    """What :func:`describe_version` shows of *entry*, as a dict (the conflict line's
    ``kept`` and ``lost`` fields in the JSON log format)."""
    stamp = entry.stamp
    data: dict[str, Any] = {
        "name": entry.name,
        "kind": "object" if entry.kind is Kind.OBJECT else "group",
        "deleted": entry.deleted,
        "uri": entry.uri,
        "node": stamp.node,
        "time": _iso(stamp.wall_time),
    }
    meta = json.dumps(entry.meta, separators=(",", ":"), ensure_ascii=False)
    if len(meta) <= _LOGGED_META_CHARS:
        data["meta"] = entry.meta
    else:
        data["meta_bytes"] = len(meta.encode())
    return data


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _iso(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
