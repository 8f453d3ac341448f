"""Rule 4 and the gap figures: the failover clients, judged against when nodes were down.

Pure logic over :mod:`pairns.chaos.history` values; :func:`pairns.chaos.checker.check`
calls it. A *failover client* makes its calls through a failover name-server proxy and
records the proxy's attempts (``Op.failover``); one ``op_id`` is one call.

**When a node is down** (:func:`down_intervals`, from the runner's faults):

- ``kill``: from the kill until the node's next ``restart`` ended (it listened again);
- ``restart``: its whole span (from when the node went down for it - a clean stop
  before a fresh disk-full restart - or the restart began, until it listened); after
  a crash (``"after": "crash"``, noticed only at the round's end) from the last
  checkpoint capture before it;
- ``stop``: SIGSTOP to SIGCONT;
- ``wipe``, ``restore-old-copy``, ``clock``: their span (the node is killed or stopped
  and restarted inside it);
- ``netns-partition``: both nodes, for its span. A client in one namespace cannot
  reach the other namespace's node, and the records do not say which side a client
  is on, so no call is judged while one is in force.

``partition``, ``delay`` and ``cut`` act on the peer link only; a full disk makes a
node answer writes with ``StorageError``, which is an answer; a clock offset changes
stamps, not reachability. None of them make a node down for clients.

**An unavailable call** (:attr:`FailoverCall.unavailable`): no attempt was answered
(none ``ok``, none ``error``) and the error the call raised is one the proxy raises
when it gives up (:data:`UNAVAILABLE_ERRORS`): both nodes refused or dropped the call
in one round, or the call timeout passed while they were slow.

**Rule 4** (:func:`failover_failures`): an unavailable call ``[start, end]`` is a
violation when some node had no down interval within ``[start - margin, end +
margin]``: that node was up for the whole call, and the proxy should have reached it.
Transitions inside the call need no window (the node is then not up throughout);
the *margin* (:data:`FAILOVER_MARGIN`) only absorbs the runner's timestamps, taken
just before or after its signals and starts.

**Gaps** (:func:`longest_gaps`): per failover client and round, the longest time
between two successive answers (``ok``, or an ``error`` the node answered) while the
client was making calls: the clients' pauses (:class:`~pairns.chaos.history.Pause`,
for checkpoints and fences) split a round into stretches, and a stretch runs from its
first call's start to its last call's end.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Final

import attrs

from pairns.chaos.history import Fault, Op, Pause

__all__ = [
    "FAILOVER_MARGIN",
    "UNAVAILABLE_ERRORS",
    "Downtime",
    "FailoverCall",
    "down_intervals",
    "failover_calls",
    "failover_failures",
    "longest_gaps",
]

#: Seconds around a failed call within which a node must not have gone down or come up
#: for the call to count as made while that node was up (timestamps' slack only).
FAILOVER_MARGIN: Final = 0.25
#: What a failover proxy raises when it gives up (see :mod:`pairns.naming.failover`).
UNAVAILABLE_ERRORS: Final = frozenset({"ConnectionClosedError", "CallTimeoutError"})

_INF = math.inf
#: Faults whose whole span a node is down for.
_SPAN_DOWN = frozenset({"stop", "wipe", "restore-old-copy", "clock"})


@attrs.frozen
class FailoverCall:
    """One call of a failover client: its attempts (the proxy's), when it ran, when it
    was answered (None: never) and whether the proxy gave up on it."""

    client: str
    op_id: str
    start: float
    end: float
    answered_at: float | None
    unavailable: bool
    attempts: tuple[Op, ...]

    @classmethod
    def from_attempts(cls, attempts: Sequence[Op]) -> FailoverCall:
        """The call made of *attempts* (one ``op_id``, any order)."""
        ordered = tuple(sorted(attempts, key=lambda a: (a.attempt, a.start)))
        answers = [a.end for a in ordered if a.status != "unknown"]
        last = ordered[-1]
        error_type = (last.error or {}).get("type")
        return cls(
            client=last.client,
            op_id=last.op_id,
            start=min(a.start for a in ordered),
            end=max(a.end for a in ordered),
            answered_at=min(answers) if answers else None,
            unavailable=not answers and error_type in UNAVAILABLE_ERRORS,
            attempts=ordered,
        )


def failover_calls(ops: Iterable[Op]) -> list[FailoverCall]:
    """The failover clients' calls among *ops*, in start order."""
    by_id: dict[tuple[str, str], list[Op]] = defaultdict(list)
    for op in ops:
        if op.failover:
            by_id[(op.client, op.op_id)].append(op)
    calls = [FailoverCall.from_attempts(attempts) for attempts in by_id.values()]
    calls.sort(key=lambda c: (c.start, c.client))
    return calls


def down_intervals(
    faults: Iterable[Fault], captures: Sequence[float] = ()
) -> dict[int, list[tuple[float, float]]]:
    """When each node (1, 2) was down for clients, as sorted, merged intervals (see the
    module's docstring). *captures* are the checkpoint captures, sorted."""
    spans: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    killed: dict[int, float] = {}
    for fault in sorted(faults, key=lambda f: (f.start, f.end)):
        n = fault.node
        if fault.kind == "netns-partition":
            for m in spans:
                spans[m].append((fault.start, fault.end))
        elif n not in spans:
            continue
        elif fault.kind == "kill":
            killed.setdefault(n, fault.start)
        elif fault.kind == "restart":
            if fault.detail.get("after") == "start" and n not in killed:
                continue
            since = killed.pop(n, fault.start)
            if fault.detail.get("after") == "crash":
                i = bisect_right(captures, fault.start)
                since = min(since, captures[i - 1] if i else -_INF)
            spans[n].append((since, fault.end))
        elif fault.kind in _SPAN_DOWN:
            spans[n].append((fault.start, fault.end))
    for n, since in killed.items():
        spans[n].append((since, _INF))  # never restarted
    return {n: _merged(intervals) for n, intervals in spans.items()}


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@attrs.frozen
class Downtime:
    """Each node's down intervals, for questions about a time window."""

    intervals: dict[int, list[tuple[float, float]]]

    def down_within(self, node: int, lo: float, hi: float) -> list[tuple[float, float]]:
        """*node*'s down intervals that meet [*lo*, *hi*]."""
        spans = self.intervals.get(node, [])
        starts = [s for s, _ in spans]
        stop = bisect_right(starts, hi)
        return [(s, e) for s, e in spans[:stop] if e >= lo]

    def up_throughout(self, lo: float, hi: float) -> list[int]:
        """The nodes with no down interval meeting [*lo*, *hi*]."""
        return [n for n in sorted(self.intervals) if not self.down_within(n, lo, hi)]


def failover_failures(
    calls: Iterable[FailoverCall], downtime: Downtime, margin: float = FAILOVER_MARGIN
) -> list[tuple[FailoverCall, list[int]]]:
    """Rule 4: the unavailable calls made while a node was up throughout (with the
    *margin* on both sides), each with the nodes that were."""
    found = []
    for call in calls:
        if not call.unavailable:
            continue
        up = downtime.up_throughout(call.start - margin, call.end + margin)
        if up:
            found.append((call, up))
    return found


def longest_gaps(
    calls: Iterable[FailoverCall], pauses: Iterable[Pause], captures: Sequence[float]
) -> dict[tuple[str, int], float]:
    """Per (failover client, round) the longest time between two successive answers
    while the client was making calls (see the module's docstring). A round is the
    number of checkpoint *captures* (sorted) before a call started."""
    pause_starts = sorted(p.start for p in pauses)
    stretches: dict[tuple[str, int, int], list[FailoverCall]] = defaultdict(list)
    for call in calls:
        rnd = bisect_right(captures, call.start)
        # A call in flight when the pause was sent belongs to the stretch before it.
        stretch = bisect_right(pause_starts, call.start)
        stretches[(call.client, rnd, stretch)].append(call)
    gaps: dict[tuple[str, int], float] = {}
    for (client, rnd, _), mine in stretches.items():
        gap = _longest_gap(mine)
        key = (client, rnd)
        gaps[key] = max(gaps.get(key, 0.0), gap)
    return gaps


def _longest_gap(calls: list[FailoverCall]) -> float:
    """The longest interval between successive answers of one stretch of *calls*,
    counting from the first call's start and up to the last call's end."""
    points = [min(c.start for c in calls), max(c.end for c in calls)]
    points.extend(c.answered_at for c in calls if c.answered_at is not None)
    points.sort()
    return max(b - a for a, b in pairwise(points))
