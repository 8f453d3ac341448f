"""Decide from the records of a chaos run whether the pair kept its promises.

Pure logic over :mod:`pairns.chaos.history` values. :func:`check` applies these rules
and returns a :class:`Report`:

1. **divergence**: at every checkpoint both nodes converged within the bound and show
   the same namespace.
2. **lost-write**: at every checkpoint where the nodes agree, every acknowledged write
   is visible, or was superseded by a related write (same name, an ancestor or a
   descendant) that may be ordered after it, or lost a logged conflict to something a
   client wrote. **conflict-count**: a node process's conflict counter equals the
   conflict lines it logged. **double-apply**: a retry with the request id of a write
   whose first attempt took effect was applied again (its error shows the first
   attempt's effect, and nothing else could have caused it).
3. **phantom-read**: every value a read returned was written by some client, or is an
   initial value.
4. **failover**: a failover client's call never failed for want of a node (its proxy
   gave up) while a node was up for the whole call (:mod:`pairns.chaos.availability`,
   which also works out the failover clients' longest gaps between answers).

Each rule fires only on what the records prove under the documented merge rules, so a
correct pair passes. Time is the runner's monotonic clock; an attempt that got no
answer (``unknown``) may take effect at any time after it started until the next
checkpoint's capture (every fault is healed by then, see ``_settled``), and a failed
one (``error``) only while it ran.
"""

from __future__ import annotations

import functools
import json
import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from pairns.chaos.availability import (
    FAILOVER_MARGIN,
    Downtime,
    FailoverCall,
    down_intervals,
    failover_calls,
    failover_failures,
    longest_gaps,
)
from pairns.chaos.history import Checkpoint, ConflictRecord, Fault, Op, Pause
from pairns.errors import URIError
from pairns.uri import URI

__all__ = ["INITIAL_GROUPS", "Report", "Violation", "check"]

#: Groups every node creates at start, with no metadata (clients never create them).
INITIAL_GROUPS = frozenset({":Pyro", ":Default"})

_ROOT = ":"
_INF = math.inf
_REMOVALS = frozenset({"unregister", "deleteGroup"})
#: Faults after which a node may, for a while, not show names it showed before.
_FORGETFUL_FAULTS = frozenset({"wipe", "restore-old-copy"})


@attrs.frozen
class Violation:
    """One broken promise: ``kind`` is ``divergence``, ``lost-write``, ``double-apply``,
    ``phantom-read``, ``conflict-count`` or ``failover``; ``name`` the name concerned (None for a
    whole-state problem); ``checkpoint`` the round of the checkpoint it was seen at;
    ``ops`` the smallest slice of history that shows it, in start order, and ``faults``
    the faults active during that slice."""

    kind: str
    name: str | None
    message: str
    checkpoint: int | None
    ops: tuple[Op, ...]
    faults: tuple[Fault, ...] = ()


@attrs.frozen
class Report:
    """What :func:`check` found: the violations, and counts that say how much the run
    exercised (``operations`` counts logical calls, ``attempts`` every try of them).

    ``failover_calls`` counts the failover clients' calls, ``failover_unavailable``
    those their proxy gave up on, ``failover_failures`` those of them made while a node
    was up (rule 4's violations); ``longest_gaps`` holds, per failover client and
    round, the longest time between two answers."""

    seed: int | None
    violations: tuple[Violation, ...]
    operations: int
    attempts: int
    acknowledged_writes: int
    lost: int
    double_applied: int
    phantom_reads: int
    divergences: int
    checkpoints: int
    converged: int
    convergence_seconds: tuple[float, ...]
    failover_calls: int = 0
    failover_unavailable: int = 0
    failover_failures: int = 0
    longest_gaps: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no rule was broken."""
        return not self.violations

    def format(self, *, max_ops: int = 40) -> str:
        """The report as text: a summary, then each violation with its slice of history
        (at most *max_ops* attempts each) and how to replay the run."""
        seed = "unknown" if self.seed is None else str(self.seed)
        replay = "" if self.seed is None else f" (replay with --seed {self.seed})"
        verdict = "ok" if self.ok else f"FAILED, {len(self.violations)} violation(s)"
        times = self.convergence_seconds
        converged = f"{self.converged} converged"
        if times:
            converged += f", slowest {max(times):.2f} s"
        lines = [
            f"chaos check: {verdict}; seed {seed}{replay}",
            f"  {self.operations} operations ({self.attempts} attempts), "
            f"{self.acknowledged_writes} acknowledged writes",
            f"  {self.checkpoints} checkpoints ({converged})",
            f"  lost writes {self.lost}, double applies {self.double_applied}, "
            f"phantom reads {self.phantom_reads}, divergences {self.divergences}",
        ]
        if self.failover_calls:
            gaps = self.longest_gaps
            lines.append(
                f"  failover clients: {self.failover_calls} calls, "
                f"{self.failover_unavailable} given up by the proxy, "
                f"{self.failover_failures} of them while a node was up; longest gap "
                f"max {max(gaps, default=0.0):.3f} s"
            )
        for v in self.violations:
            where = "" if v.checkpoint is None else f" at checkpoint {v.checkpoint}"
            lines.append("")
            lines.append(f"[{v.kind}] {v.name or '(whole namespace)'}{where}: {v.message}")
            for fault in v.faults:
                lines.append(f"    fault {_format_fault(fault)}")
            for op in v.ops[:max_ops]:
                lines.append(f"    {_format_op(op)}")
            if len(v.ops) > max_ops:
                lines.append(f"    ... {len(v.ops) - max_ops} more")
        if not self.ok:
            lines.append("")
            lines.append(f"seed {seed}{replay}")
        return "\n".join(lines)


def check(
    ops: Iterable[Op],
    checkpoints: Iterable[Checkpoint],
    conflicts: Iterable[ConflictRecord],
    faults: Iterable[Fault] = (),
    *,
    pauses: Iterable[Pause] = (),
    seed: int | None = None,
    bound: float = 5.0,
    failover_margin: float = FAILOVER_MARGIN,
    ignore: frozenset[str] = frozenset({":Pyro.NameServer"}),
) -> Report:
    """Check a run's records: client attempts *ops*, the runner's *checkpoints*, the
    *conflicts* the nodes logged, the *faults* injected and the clients' *pauses*. Names
    in *ignore* and their descendants are left out of every rule; *bound* is the
    convergence bound (seconds), *failover_margin* rule 4's slack around a failed call.

    A checkpoint's states hold what was written by calls that started before the
    capture (``time + convergence_seconds``: the runner heals, pauses the clients, then
    waits), and the conflicts whose lines the runner saw before the next round began.
    """
    cps = sorted(checkpoints, key=lambda c: (c.time, c.round))
    captures = sorted(_cutoff(cp) for cp in cps if cp.states)
    history = _History(list(ops), list(conflicts), list(faults), ignore, captures)
    found: list[Violation] = []
    seconds: list[float] = []
    agreed: list[tuple[Checkpoint, float]] = []
    lost_checker = _LostWrites(history)
    previous = -_INF
    for i, cp in enumerate(cps):
        cutoff = _cutoff(cp)
        divergence = _divergence(history, cp, bound, previous, cutoff)
        if divergence is not None:
            found.append(divergence)
        else:
            if cp.convergence_seconds is not None:
                seconds.append(cp.convergence_seconds)
            if cp.states:
                agreed.append((cp, cutoff))
                logged_by = _logged_by(history, cps, i)
                found.extend(lost_checker.at(cp, cutoff, logged_by))
                found.extend(_conflict_counts(history, cp, cutoff, logged_by))
        previous = cutoff
    found.extend(_double_applies(history, agreed))
    found.extend(_phantom_reads(history))
    calls = failover_calls(history.ops)
    downtime = Downtime(down_intervals(history.faults, captures))
    found.extend(_failover_violations(history, calls, downtime, failover_margin))
    gaps = longest_gaps(calls, pauses, captures)
    counts: defaultdict[str, int] = defaultdict(int)
    for v in found:
        counts[v.kind] += 1
    return Report(
        seed=seed,
        violations=tuple(found),
        operations=len(history.logicals),
        attempts=len(history.ops),
        acknowledged_writes=sum(1 for w in history.logicals if w.is_write and w.acked),
        lost=counts["lost-write"],
        double_applied=counts["double-apply"],
        phantom_reads=counts["phantom-read"],
        divergences=counts["divergence"],
        checkpoints=len(cps),
        converged=len(seconds),
        convergence_seconds=tuple(seconds),
        failover_calls=len(calls),
        failover_unavailable=sum(1 for c in calls if c.unavailable),
        failover_failures=counts["failover"],
        longest_gaps=tuple(gaps[key] for key in sorted(gaps)),
    )


# -- names and values ---------------------------------------------------------------------


def _ancestors(name: str) -> tuple[str, ...]:
    """Proper ancestors of *name*, nearest first, the root left out."""
    result = []
    i = name.rfind(".")
    while i > 0:
        name = name[:i]
        result.append(name)
        i = name.rfind(".")
    return tuple(result)


def _child(group: str, base: str) -> str:
    return _ROOT + base if group == _ROOT else f"{group}.{base}"


def _canonical_uri(uri: Any) -> Any:
    """*uri* in the form a node stores it (unchanged if it does not parse)."""
    return _canonical_text(uri) if isinstance(uri, str) else uri


@functools.lru_cache(maxsize=1 << 16)
def _canonical_text(uri: str) -> str:
    try:
        return str(URI.from_string(uri))
    except URIError:
        return uri


def _value_key(value: Any) -> str:
    """A hashable form of a JSON value, equal for equal values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _show(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "absent"
    if entry.get("deleted"):
        return "deleted"
    text = "group" if entry.get("kind") == "group" else f"object {entry.get('uri')}"
    if entry.get("meta") is not None:
        text += f" with meta {_value_key(entry['meta'])}"
    return text


def _call(op: Op) -> str:
    return f"{op.op}({', '.join(_short(a) for a in op.args)})"


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else _value_key(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_op(op: Op) -> str:
    outcome: str = op.status
    if op.status == "ok" and op.op not in ("register", "unregister", "createGroup"):
        outcome += f" -> {_short(op.result)}"
    elif op.error:
        outcome += f" ({op.error.get('type', '?')}: {op.error.get('message', '')})"
    retry = f" attempt {op.attempt}" if op.attempt != 1 else ""
    return (
        f"{op.start:.3f}..{op.end:.3f} {op.client} node {op.node} "
        f"{op.op_id}{retry}: {_call(op)} {outcome}"
    )


def _format_fault(fault: Fault) -> str:
    where = "link" if fault.node == 0 else f"node {fault.node}"
    detail = f" {_value_key(fault.detail)}" if fault.detail else ""
    return f"{fault.start:.3f}..{fault.end:.3f} {fault.kind} on {where}{detail}"


def _cutoff(cp: Checkpoint) -> float:
    """When the checkpoint's states were captured: the end of the wait after the heal.
    Ops that started after it cannot be in the states; ops that started between the
    heal and the capture may be (the runner pauses the clients after healing)."""
    return cp.time + (cp.convergence_seconds or 0.0)


def _logged_by(history: _History, cps: Sequence[Checkpoint], i: int) -> float:
    """The time before which the runner saw every conflict line of checkpoint *i*'s
    round: the first client call or fault after the capture (or the next checkpoint).
    Nothing merges between the capture and then, and the runner reads the logs right
    after capturing the states, so the lines of the last merges carry a time a little
    after the capture."""
    cutoff = _cutoff(cps[i])
    ends = [_INF if i + 1 == len(cps) else cps[i + 1].time]
    j = bisect_right(history.op_starts, cutoff)
    if j < len(history.op_starts):
        ends.append(history.op_starts[j])
    k = bisect_right(history.fault_starts, cutoff)
    if k < len(history.fault_starts):
        ends.append(history.fault_starts[k])
    return min(ends)


# -- the history, indexed -----------------------------------------------------------------


class _Logical:
    """One logical call: every attempt of an ``op_id``."""

    __slots__ = (
        "acked",
        "acked_at",
        "args",
        "attempts",
        "end",
        "is_write",
        "name",
        "op",
        "op_id",
        "start",
        "valid",
        "value",
    )

    def __init__(self, attempts: list[Op], settled: Sequence[float] = ()) -> None:
        attempts.sort(key=lambda a: (a.attempt, a.start))
        first = attempts[0]
        self.op_id = first.op_id
        self.op = first.op
        self.args = first.args
        self.attempts = attempts
        self.is_write = first.is_write
        head = first.args[0] if first.args else None
        self.name: str | None = head if isinstance(head, str) else None
        self.start = min(a.start for a in attempts)
        ok = [a for a in attempts if a.status == "ok"]
        unknown = any(a.status == "unknown" for a in attempts)
        self.acked: Op | None = min(ok, key=lambda a: a.end) if ok else None
        self.acked_at = self.acked.end if self.acked is not None else _INF
        #: it may have taken effect (an "error" attempt had no lasting effect)
        self.valid = bool(ok) or unknown
        #: the latest it may have taken effect: an unanswered attempt may still take
        #: effect later (a request stuck in a frozen node's socket), but no later than
        #: the capture of the next checkpoint, when every fault is healed and every
        #: node has run again (see _settled)
        self.end = max((a.end for a in ok), default=-_INF)
        if unknown:
            last = max(a.end for a in attempts if a.status == "unknown")
            self.end = max(self.end, _settled(settled, last))
        self.value: Any = None
        if self.op == "register" and len(self.args) > 1:
            self.value = _canonical_uri(self.args[1])
        elif self.op == "setMeta" and len(self.args) > 1:
            self.value = _value_key(self.args[1])


def _settled(captures: Sequence[float], t: float) -> float:
    """When a call left unanswered at *t* has taken effect, if it ever does: the first
    checkpoint capture after *t* (sorted *captures*), or never known (inf).

    The runner heals every fault before a checkpoint (stopped nodes continue, killed
    ones restart) and pauses the clients, and captures the states only once both nodes
    agree: a request that was still in a node's socket has been served by then, and
    one that died with its node is gone for good.
    """
    i = bisect_right(captures, t)
    return captures[i] if i < len(captures) else _INF


class _Timeline:
    """The writes that may have taken effect on some names, sorted by start."""

    __slots__ = ("ends", "items", "max_end", "starts")

    def __init__(self, items: list[_Logical]) -> None:
        items.sort(key=lambda w: w.start)
        self.items = items
        self.starts = [w.start for w in items]
        self.ends = [w.end for w in items]
        self.max_end: list[float] = []
        top = -_INF
        for end in self.ends:
            top = max(top, end)
            self.max_end.append(top)

    def justifier_start(self, w: _Logical) -> float:
        """The earliest start of a write other than *w* that ends after *w* starts (so
        may be ordered after it); -inf if one started before *w*, inf if none."""
        t = w.start
        i = bisect_left(self.starts, t)
        if i and self.max_end[i - 1] > t:
            return -_INF
        for j in range(i, len(self.items)):
            if self.items[j] is not w and self.ends[j] > t:
                return self.starts[j]
        return _INF

    def before(self, t: float) -> list[_Logical]:
        """The writes that started before *t*."""
        return self.items[: bisect_left(self.starts, t)]


class _Readable:
    """When a value became readable: the first start of an attempt that may have taken
    effect, and the intervals of error attempts (visible only while they ran)."""

    __slots__ = ("errors", "first")

    def __init__(self) -> None:
        self.first = _INF
        self.errors: list[tuple[float, float]] = []

    def add(self, attempt: Op) -> None:
        if attempt.status == "error":
            self.errors.append((attempt.start, attempt.end))
        else:
            self.first = min(self.first, attempt.start)

    def could_show(self, read: Op) -> bool:
        if self.first < read.end:
            return True
        return any(s < read.end and e > read.start for s, e in self.errors)


_NEVER = _Readable()


class _History:
    """The records of a run, indexed by name."""

    def __init__(
        self,
        ops: list[Op],
        conflicts: list[ConflictRecord],
        faults: list[Fault],
        ignore: frozenset[str],
        captures: Sequence[float] = (),
    ) -> None:
        self.ops = ops
        self.conflicts = conflicts
        self.faults = sorted(faults, key=lambda f: f.start)
        self._ignore = ignore
        self._ignored: dict[str, bool] = {}
        by_id: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            by_id[op.op_id].append(op)
        self.logicals = [_Logical(attempts, captures) for attempts in by_id.values()]
        self.op_starts = sorted(op.start for op in ops)
        self.fault_starts = [f.start for f in self.faults]

        own: dict[str, list[_Logical]] = defaultdict(list)
        subtree: dict[str, list[_Logical]] = defaultdict(list)
        self.values: dict[tuple[str, str, Any], _Readable] = defaultdict(_Readable)
        self.made: dict[tuple[str, str], _Readable] = defaultdict(_Readable)
        self.under: dict[str, _Readable] = defaultdict(_Readable)
        self.created_names: set[str] = set()
        self.written_uris: set[Any] = set()
        self.written_metas: set[str] = set()
        attempts_by_name: dict[str, list[Op]] = defaultdict(list)
        for w in self.logicals:
            n = w.name
            if n is None:
                continue
            for a in w.attempts:
                attempts_by_name[n].append(a)
            if not w.is_write or self.ignored(n):
                continue
            if w.op == "register":
                self.written_uris.add(w.value)
            elif w.op == "setMeta":
                self.written_metas.add(w.value)
            if w.op in ("register", "createGroup"):
                self.created_names.add(n)
                self.created_names.update(_ancestors(n))
            for a in w.attempts:
                if w.value is not None:
                    self.values[(w.op, n, w.value)].add(a)
                self.made[(w.op, n)].add(a)
                for parent in _ancestors(n):
                    self.under[parent].add(a)
            if w.valid:
                own[n].append(w)
                if n != _ROOT:
                    subtree[n].append(w)
                    for parent in _ancestors(n):
                        subtree[parent].append(w)
        self.own = {n: _Timeline(ws) for n, ws in own.items()}
        self.subtree = {n: _Timeline(ws) for n, ws in subtree.items()}
        for attempts in attempts_by_name.values():
            attempts.sort(key=lambda a: a.start)
        self.attempts_by_name = attempts_by_name
        self.attempt_starts = {n: [a.start for a in ats] for n, ats in attempts_by_name.items()}

        self.restarts: dict[int, list[Fault]] = defaultdict(list)
        for fault in self.faults:
            if fault.kind == "restart" and "incarnation" in fault.detail:
                self.restarts[fault.node].append(fault)
        self.conflict_times: dict[tuple[int, Any], list[float]] = defaultdict(list)
        self.conflicts_on: dict[str, list[ConflictRecord]] = defaultdict(list)
        for record in conflicts:
            t = -_INF if record.time is None else record.time
            self.conflict_times[(record.node, record.incarnation)].append(t)
            lost_name = record.lost.get("name", record.name)
            self.conflicts_on[lost_name].append(record)
            if record.name != lost_name:
                self.conflicts_on[record.name].append(record)
        for times in self.conflict_times.values():
            times.sort()

    def incarnation_at(self, node: int, t: float) -> Any:
        """The incarnation of *node*'s last restart before *t* (None if unknown)."""
        last = None
        for fault in self.restarts.get(node, ()):
            if fault.end <= t:
                last = fault.detail["incarnation"]
        return last

    def ignored(self, name: str) -> bool:
        """Whether *name* is left out of the rules (it or an ancestor is ignored)."""
        known = self._ignored.get(name)
        if known is None:
            known = name in self._ignore or any(a in self._ignore for a in _ancestors(name))
            self._ignored[name] = known
        return known

    def related_timelines(self, name: str) -> list[_Timeline]:
        """The timelines of writes related to *name*: on it, its descendants and its
        ancestors (the root relates to itself only)."""
        if name == _ROOT:
            line = self.own.get(_ROOT)
            return [line] if line else []
        lines = [self.subtree.get(name)]
        lines.extend(self.own.get(a) for a in _ancestors(name))
        return [line for line in lines if line is not None]

    def client_made(self, entry: dict[str, Any]) -> bool:
        """Whether some client op could have produced *entry* (a conflict's winner)."""
        if entry.get("deleted"):
            return True
        uri = entry.get("uri")
        if uri is not None and _canonical_uri(uri) not in self.written_uris:
            return False
        meta = entry.get("meta")
        if meta is None and "meta_bytes" in entry:
            return True  # metadata too large to log: only a client writes such values
        if meta is not None:
            return _value_key(meta) in self.written_metas
        return uri is not None or entry.get("name") in self.created_names

    def slice(
        self, name: str | None, lo: float, hi: float, extra: Sequence[Op] = ()
    ) -> tuple[Op, ...]:
        """The attempts on *name*, its ancestors and descendants that started in
        [*lo*, *hi*], with *extra*, in start order."""
        chosen: dict[int, Op] = {id(op): op for op in extra}
        if name is not None:
            names = [name]
            if name != _ROOT:
                names.extend(_ancestors(name))
                prefix = name + "."
                names.extend(n for n in self.attempts_by_name if n.startswith(prefix))
            for n in names:
                attempts = self.attempts_by_name.get(n)
                if not attempts:
                    continue
                starts = self.attempt_starts[n]
                for op in attempts[bisect_left(starts, lo) : bisect_right(starts, hi)]:
                    chosen[id(op)] = op
        return tuple(sorted(chosen.values(), key=lambda op: (op.start, op.client, op.attempt)))

    def last_writes(
        self, names: Sequence[str], lo: float, hi: float, per_name: int = 5
    ) -> tuple[Op, ...]:
        """The last *per_name* write attempts on each of *names* or its ancestors that
        started in [*lo*, *hi*], in start order: what decided the names' final values."""
        chosen: dict[int, Op] = {}
        for name in names:
            mine: list[Op] = []
            for n in (name, *_ancestors(name)) if name != _ROOT else (name,):
                attempts = self.attempts_by_name.get(n)
                if attempts:
                    starts = self.attempt_starts[n]
                    window = attempts[bisect_left(starts, lo) : bisect_right(starts, hi)]
                    mine.extend(op for op in window if op.is_write and op.status != "error")
            mine.sort(key=lambda op: op.start)
            chosen.update((id(op), op) for op in mine[-per_name:])
        return tuple(sorted(chosen.values(), key=lambda op: (op.start, op.client, op.attempt)))

    def faults_during(self, lo: float, hi: float) -> tuple[Fault, ...]:
        """The faults active at some time in [*lo*, *hi*]."""
        stop = bisect_right(self.fault_starts, hi)
        return tuple(f for f in self.faults[:stop] if f.end >= lo)

    def violation(
        self,
        kind: str,
        name: str | None,
        message: str,
        checkpoint: int | None,
        lo: float,
        hi: float,
        extra: Sequence[Op] = (),
    ) -> Violation:
        """A violation with its slice: the attempts on *name* in [*lo*, *hi*], *extra*,
        and the faults of that window."""
        chosen = self.slice(name, lo, hi, extra)
        if chosen:
            lo = min(lo, chosen[0].start)
        return Violation(kind, name, message, checkpoint, chosen, self.faults_during(lo, hi))


# -- rule 1: divergence -------------------------------------------------------------------


def _divergence(
    history: _History, cp: Checkpoint, bound: float, previous: float, cutoff: float
) -> Violation | None:
    problems: list[str] = []
    seconds = cp.convergence_seconds
    states = cp.states
    if not cp.converged:
        digests = " and ".join(f"{s.digest} on node {s.node}" for s in states)
        problems.append(
            f"the nodes did not converge within the {bound:g} s bound"
            + (f" (digests {digests})" if digests else "")
        )
    elif seconds is None or seconds > bound:
        took = "an unknown time" if seconds is None else f"{seconds:.2f} s"
        problems.append(f"the nodes took {took} to converge, more than the {bound:g} s bound")
    differing: list[str] = []
    first = states[0] if states else None
    for other in states[1:]:
        assert first is not None
        a, b = first.entries, other.entries
        if a == b:
            continue
        names = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
        names = [n for n in names if not history.ignored(n)]
        if names:
            shown = "; ".join(
                f"{n} (node {first.node}: {_show(a.get(n))}, node {other.node}: {_show(b.get(n))})"
                for n in names[:10]
            )
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            problems.append(
                f"node {first.node} and node {other.node} show different values for "
                f"{len(names)} name(s): {shown}{more}"
            )
            differing.extend(n for n in names if n not in differing)
    if not problems:
        return None
    name = differing[0] if len(differing) == 1 else None
    ops = history.last_writes(differing[:10], previous, cutoff)
    return Violation(
        "divergence",
        name,
        "; ".join(problems),
        cp.round,
        ops,
        history.faults_during(previous, cutoff),
    )


# -- rule 2: lost writes ------------------------------------------------------------------


def _effect_holds(w: _Logical, state: dict[str, dict[str, Any]]) -> bool:
    """Whether *state* shows what acknowledged write *w* did to its name."""
    assert w.name is not None
    entry = state.get(w.name)
    if w.op == "register":
        return (
            entry is not None
            and entry.get("kind") == "object"
            and _canonical_uri(entry.get("uri")) == w.value
        )
    if w.op in _REMOVALS:
        return entry is None
    if w.op == "createGroup":
        return entry is not None and entry.get("kind") == "group"
    if w.op == "setMeta":
        return entry is not None and _value_key(entry.get("meta")) == w.value
    return True


def _lost_version(w: _Logical, lost: dict[str, Any]) -> bool:
    """Whether the losing entry of a conflict is the version *w* wrote."""
    deleted = bool(lost.get("deleted"))
    if w.op in _REMOVALS:
        return deleted
    if deleted:
        return False
    if w.op == "register":
        return bool(_canonical_uri(lost.get("uri")) == w.value)
    if w.op == "setMeta":
        if lost.get("meta") is None and "meta_bytes" in lost:
            return bool(lost["meta_bytes"] == _meta_bytes(w.args[1]))
        return bool(_value_key(lost.get("meta")) == w.value)
    return bool(lost.get("kind") == "group")


def _meta_bytes(meta: Any) -> int:
    """The size a node gives for metadata too large to log (``meta_bytes``)."""
    return len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode())


class _LostWrites:
    """Rule 2, checkpoint after checkpoint.

    A write is judged from the first checkpoint after its acknowledgement. Once a
    related write that may be ordered after it has started, or a conflict it lost was
    logged, it is justified for good; until then it stays open and is looked at again at
    each checkpoint, so the work per checkpoint is about one lookup per name.
    """

    def __init__(self, history: _History) -> None:
        self.history = history
        self.pending = sorted(
            (
                w
                for w in history.logicals
                if w.is_write
                and w.acked is not None
                and w.name is not None
                and w.name != _ROOT  # the dump leaves the root out: nothing to compare
                and not history.ignored(w.name)
                and (w.value is not None or w.op not in ("register", "setMeta"))
            ),
            key=lambda w: w.acked_at,
        )
        self.next = 0
        self.open: list[tuple[_Logical, float]] = []
        self._conflict_time: dict[str, float] = {}

    def at(self, cp: Checkpoint, cutoff: float, logged_by: float) -> list[Violation]:
        """The writes first seen lost at checkpoint *cp* (states captured at *cutoff*,
        conflict lines of its round seen before *logged_by*)."""
        while self.next < len(self.pending) and self.pending[self.next].acked_at <= cutoff:
            w = self.pending[self.next]
            self.next += 1
            assert w.name is not None
            lines = self.history.related_timelines(w.name)
            justified = min((line.justifier_start(w) for line in lines), default=_INF)
            self.open.append((w, justified))
        state = cp.states[0].entries
        still_open: list[tuple[_Logical, float]] = []
        found: list[Violation] = []
        for w, justified in self.open:
            if justified < cutoff:
                continue
            if _effect_holds(w, state):
                still_open.append((w, justified))
            elif self._conflict_justified(w) >= logged_by:
                found.append(self._violation(w, cp, cutoff, state))
        self.open = still_open
        return found

    def _conflict_justified(self, w: _Logical) -> float:
        """When the first logged conflict that *w* lost to a client's write was seen."""
        cached = self._conflict_time.get(w.op_id)
        if cached is not None:
            return cached
        history = self.history
        first = _INF
        assert w.name is not None
        for record in history.conflicts_on.get(w.name, ()):
            same_name = record.lost.get("name", record.name) == w.name or (
                record.kind == "hidden" and record.name == w.name
            )
            if not same_name:
                continue
            if not _lost_version(w, record.lost) or not history.client_made(record.kept):
                continue
            first = min(first, -_INF if record.time is None else record.time)
        self._conflict_time[w.op_id] = first
        return first

    def _violation(
        self, w: _Logical, cp: Checkpoint, cutoff: float, state: dict[str, dict[str, Any]]
    ) -> Violation:
        assert w.acked is not None and w.name is not None
        ack = w.acked
        message = (
            f"acknowledged {_call(ack)} on node {ack.node} at t={ack.end:.3f} is not in the "
            f"namespace at checkpoint {cp.round} ({w.name} is {_show(state.get(w.name))}), "
            "and no later write or logged conflict explains it"
        )
        return self.history.violation(
            "lost-write", w.name, message, cp.round, w.start, cutoff, w.attempts
        )


def _conflict_counts(
    history: _History, cp: Checkpoint, cutoff: float, logged_by: float
) -> list[Violation]:
    """Rule 2b: at a checkpoint where the nodes agree, each node process's conflict
    counter equals the number of conflict lines it logged by then.

    The process is the one the node's last ``restart`` fault started (its detail says
    the runner's incarnation number, which the conflict records carry; the node's own
    ``status["incarnation"]`` is a run id of the peer link, not that number); without
    one, or without ``status["conflicts"]``, there is nothing to compare.
    """
    found: list[Violation] = []
    for state in cp.states:
        counted = state.status.get("conflicts")
        incarnation = history.incarnation_at(state.node, cutoff)
        if not isinstance(counted, int) or incarnation is None:
            continue
        times = history.conflict_times.get((state.node, incarnation), [])
        seen = bisect_left(times, logged_by)
        if seen != counted:
            found.append(
                Violation(
                    "conflict-count",
                    None,
                    f"node {state.node} (incarnation {incarnation}) counted {counted} "
                    f"conflicts but logged {seen} by checkpoint {cp.round}",
                    cp.round,
                    (),
                    history.faults_during(cutoff, cutoff),
                )
            )
    return found


# -- rule 2c: double applies ---------------------------------------------------------------


def _message_is(op: Op, phrase: str) -> bool:
    error = op.error or {}
    if "NamingError" not in error.get("type", "NamingError"):
        return False
    return str(error.get("message", "")).startswith(phrase)


_DOUBLE_SIGNS = {
    "register": "name already exists",
    "unregister": "name not found",
    "createGroup": "group already exists",
    "deleteGroup": "group not found",
}


def _double_applies(history: _History, agreed: list[tuple[Checkpoint, float]]) -> list[Violation]:
    found: list[Violation] = []
    cutoffs = [cutoff for _, cutoff in agreed]
    for w in history.logicals:
        phrase = _DOUBLE_SIGNS.get(w.op)
        if phrase is None or w.name is None or history.ignored(w.name):
            continue
        for retry in w.attempts:
            if retry.attempt < 2 or retry.status != "error" or not _message_is(retry, phrase):
                continue
            if w.op in _REMOVALS:
                # The name must provably have been there when the call started: shown
                # at a checkpoint before it, and nothing else could have removed it.
                i = bisect_right(cutoffs, w.start)
                if i == 0:
                    continue
                cp, cutoff = agreed[i - 1]
                if not _removal_explained_only_by_itself(history, w, retry, cp, cutoff):
                    continue
            elif not _creation_explained_only_by_itself(history, w, retry):
                continue
            found.append(
                history.violation(
                    "double-apply",
                    w.name,
                    f"retry {retry.attempt} of {_call(retry)} (request id {w.attempts[0].rid}) "
                    f"on node {retry.node} at t={retry.end:.3f} failed with "
                    f"{retry.error.get('message') if retry.error else phrase!r}: the first "
                    "attempt had taken effect and the retry was applied again instead of "
                    "being answered with the first result",
                    None,
                    w.start,
                    retry.end,
                    w.attempts,
                )
            )
            break
    return found


def _creation_explained_only_by_itself(history: _History, w: _Logical, retry: Op) -> bool:
    """For a register/createGroup retry refused because the name exists: whether only
    the call's own first attempt could have created it (no other call created the name
    or wrote under it before the retry ended; a failed one counts while it ran)."""
    assert w.name is not None
    if w.name in INITIAL_GROUPS:
        return False
    prefix = w.name + "."
    names = [w.name, *(n for n in history.attempts_by_name if n.startswith(prefix))]
    for name in names:
        for other in _attempts_before(history, name, retry.end):
            if other.op_id == w.op_id or not other.is_write:
                continue
            if name == w.name and other.op not in ("register", "createGroup"):
                continue
            if other.status != "error" or other.end > retry.start:
                return False
    return True


def _removal_explained_only_by_itself(
    history: _History, w: _Logical, retry: Op, cp: Checkpoint, cutoff: float
) -> bool:
    """For an unregister/deleteGroup retry refused because the name is missing: whether
    checkpoint *cp* (before the call) showed the name, no fault since may have made a
    node forget it, and no other call may have removed it since (a failed one counts
    while it ran)."""
    assert w.name is not None
    entry = cp.states[0].entries.get(w.name)
    wanted = "object" if w.op == "unregister" else "group"
    if entry is None or entry.get("kind") != wanted:
        return False
    for fault in history.faults_during(cutoff, retry.end):
        if fault.kind in _FORGETFUL_FAULTS:
            return False
    for name in (w.name, *_ancestors(w.name)):
        for other in _attempts_before(history, name, retry.end):
            if other.op_id == w.op_id:
                continue
            if other.op != "deleteGroup" and (other.op != w.op or name != w.name):
                continue
            if other.status == "unknown" or (other.status == "ok" and other.end > cutoff):
                return False
            if other.status == "error" and other.end > retry.start:
                return False
    return True


def _attempts_before(history: _History, name: str, t: float) -> list[Op]:
    """The attempts on *name* that started before *t*."""
    attempts = history.attempts_by_name.get(name, [])
    return attempts[: bisect_left(history.attempt_starts[name], t)] if attempts else []


# -- rule 3: phantom reads ----------------------------------------------------------------


def _phantom_reads(history: _History) -> list[Violation]:
    found: list[Violation] = []
    for r in history.logicals:
        if r.op not in ("resolve", "getMeta", "list", "flatlist"):
            continue
        for read in r.attempts:
            if read.status != "ok":
                continue
            bad = _phantoms(history, read)
            if bad:
                found.append(_phantom_violation(history, read, bad))
    return found


def _phantoms(history: _History, read: Op) -> list[tuple[str, str]]:
    """The (name, what was shown) pairs of *read*'s result that no client wrote."""
    result = read.result
    name = read.args[0] if read.args and isinstance(read.args[0], str) else None
    if read.op == "flatlist":
        if not isinstance(result, list):
            return [("(flatlist)", f"result {_short(result)}")]
        bad = []
        for item in result:
            if not isinstance(item, list | tuple) or len(item) != 2:
                bad.append(("(flatlist)", f"item {_short(item)}"))
            elif not _resolvable(history, str(item[0]), item[1], read):
                bad.append((str(item[0]), f"uri {_short(item[1])}"))
        return bad
    if name is None or history.ignored(name):
        return []
    if read.op == "resolve":
        return [] if _resolvable(history, name, result, read) else [(name, f"uri {result!r}")]
    if read.op == "getMeta":
        if result is None:
            return []
        made = history.values.get(("setMeta", name, _value_key(result)), _NEVER)
        return [] if made.could_show(read) else [(name, f"meta {_value_key(result)}")]
    if read.op == "list":
        if not isinstance(result, list):
            return [(name, f"listing {_short(result)}")]
        bad = []
        for item in result:
            if not isinstance(item, list | tuple) or len(item) != 2:
                bad.append((name, f"item {_short(item)}"))
                continue
            child = _child(name, str(item[0]))
            if not history.ignored(child) and not _listable(history, child, item[1], read):
                kind = "group" if item[1] == 0 else "object"
                bad.append((child, f"a child {kind}"))
        return bad
    return []


def _resolvable(history: _History, name: str, uri: Any, read: Op) -> bool:
    if history.ignored(name):
        return True
    made = history.values.get(("register", name, _canonical_uri(uri)), _NEVER)
    return made.could_show(read)


def _listable(history: _History, child: str, kind: Any, read: Op) -> bool:
    if kind == 1:
        return history.made.get(("register", child), _NEVER).could_show(read)
    if kind != 0:
        return False
    return (
        child in INITIAL_GROUPS
        or history.made.get(("createGroup", child), _NEVER).could_show(read)
        or history.under.get(child, _NEVER).could_show(read)
    )


def _phantom_violation(history: _History, read: Op, bad: list[tuple[str, str]]) -> Violation:
    name = bad[0][0]
    shown = "; ".join(f"{n}: {what}" for n, what in bad[:10])
    message = (
        f"{_call(read)} on node {read.node} at t={read.start:.3f}..{read.end:.3f} returned "
        f"what no client wrote ({shown})"
    )
    lo = read.start
    line = history.own.get(name)
    if line is not None:
        # from the last write acknowledged before the read: what it should have shown
        for j in range(bisect_left(line.starts, read.start) - 1, -1, -1):
            if line.items[j].acked_at <= read.start:
                lo = line.starts[j]
                break
    target = None if name.startswith("(") else name
    return history.violation("phantom-read", target, message, None, lo, read.end, (read,))


# -- rule 4: failover clients --------------------------------------------------------------


def _failover_violations(
    history: _History, calls: Sequence[FailoverCall], downtime: Downtime, margin: float
) -> list[Violation]:
    found = []
    for call, up in failover_failures(calls, downtime, margin):
        last = call.attempts[-1]
        error = last.error or {}
        lo, hi = call.start - margin, call.end + margin
        nodes = " and ".join(f"node {n}" for n in up)
        spans = [
            (n, s, e)
            for n in sorted(downtime.intervals)
            if n not in up
            for s, e in downtime.down_within(n, lo, hi)
        ]
        down = "".join(f"; node {n} was down t={s:.3f}..{e:.3f}" for n, s, e in spans)
        # the faults that took the other node down, too
        since = min([lo, *(s for _, s, _ in spans if math.isfinite(s))])
        message = (
            f"{call.client}'s {_call(last)} failed at t={call.end:.3f} after "
            f"{call.end - call.start:.3f} s and {len(call.attempts)} attempt(s) "
            f"({error.get('type', '?')}: {error.get('message', '')}), but {nodes} "
            f"was up from t={lo:.3f} to t={hi:.3f} (the call and {margin:g} s either side){down}"
        )
        name = last.args[0] if last.args and isinstance(last.args[0], str) else None
        found.append(
            Violation(
                "failover", name, message, None, call.attempts, history.faults_during(since, hi)
            )
        )
    return found
