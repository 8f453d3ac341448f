"""Calls by method and outcome, and a latency histogram per method, counted cheaply.

The daemon's hot path answers a resolve in a few microseconds of Python; a
``prometheus_client`` counter and histogram (locks, label lookups) would cost about as
much again. Instead :meth:`CallStats.wrap` wraps each served method once, when the
daemon first looks it up, and the wrapper only adds to plain integers. Every call is
counted; one plain call in :data:`SAMPLE_EVERY` (and every ``async`` one) is also
timed: one clock read (in nanoseconds) before and after, and the latency's bucket is
its bit length - the buckets are powers of two of nanoseconds (4.1 µs, 8.2 µs, ...
8.6 s), found without a search. The counters are turned into metric families at
scrape time. A method that returns a
:class:`~pairns.rpc.Deferred` (a durable write waiting for its commit) is timed until
the deferred is finished.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from time import perf_counter_ns
from typing import Any, Final

import attrs
import outcome

from pairns.rpc.deferred import Deferred

#: Latency buckets: a call of *n* ns lands in ``buckets[n.bit_length()]``, i.e. below
#: ``2**i`` ns. Buckets below :data:`LOWEST` are reported folded into it, those above
#: :data:`HIGHEST` only in ``+Inf``.
LOWEST: Final = 12  # 2**12 ns = 4.1 µs: a resolve answered inline
HIGHEST: Final = 33  # 2**33 ns = 8.6 s: past any timeout a caller waits for
#: Bit lengths a latency can have (a 64-bit count of nanoseconds).
_SLOTS: Final = 65

#: The reported upper bounds, in seconds.
BUCKETS: Final = tuple(2**i / 1e9 for i in range(LOWEST, HIGHEST + 1))

#: One plain call in this many is timed (a power of two); every call is counted. Timing
#: costs two clock reads and the bucket arithmetic (about 0.25 µs here), a few percent
#: of a pipelined resolve's server time; a sample of the latencies shows the same shape.
SAMPLE_EVERY: Final = 8

#: The outcome of a call that returned a value.
OK: Final = "ok"


def outcome_of(error: BaseException) -> str:
    """The outcome label of a call that raised *error*: its type's name (a bounded set:
    the name server raises its own few error types)."""
    return type(error).__name__


@attrs.define(eq=False)
class MethodStats:
    """One method's calls: count by outcome, latency buckets, sum of latencies.

    Calls that returned a value are counted in ``totals[0]`` (with the sum of all
    latencies in ns in ``totals[1]``) rather than in :attr:`outcomes`: a list cell is
    the cheapest thing the wrapper can add to.
    """

    #: Calls that raised, by the outcome label.
    outcomes: dict[str, int] = attrs.field(factory=dict)
    #: ``buckets[i]``: calls of ``2**(i-1)`` to ``2**i - 1`` ns (not cumulative).
    buckets: list[int] = attrs.field(factory=lambda: [0] * _SLOTS)
    #: ``[calls that returned a value, sum of the timed calls' nanoseconds]``.
    totals: list[int] = attrs.field(factory=lambda: [0, 0])
    #: ``[calls made]``: which call is the next one timed.
    ticks: list[int] = attrs.field(factory=lambda: [0])

    def record(self, result: str, nanoseconds: int) -> None:
        """Count one call that ended with *result*, timed at *nanoseconds*."""
        if result == OK:
            self.totals[0] += 1
        else:
            self.count_error(result)
        self.buckets[max(nanoseconds, 0).bit_length()] += 1
        self.totals[1] += nanoseconds

    def count_error(self, result: str) -> None:
        """Count one call that ended with the error *result* (not timed)."""
        self.outcomes[result] = self.outcomes.get(result, 0) + 1

    def count_outcome(self, done: outcome.Outcome[Any]) -> None:
        """Count one finished deferred call by its outcome (not timed)."""
        error = getattr(done, "error", None)
        if error is None:
            self.totals[0] += 1
        else:
            self.count_error(outcome_of(error))

    @property
    def seconds(self) -> float:
        """The sum of the latencies."""
        return self.totals[1] / 1e9

    @property
    def count(self) -> int:
        """Calls timed (the histogram's count)."""
        return sum(self.buckets)

    def by_outcome(self) -> dict[str, int]:
        """Calls by outcome label (``ok`` included when there were any)."""
        counts = dict(self.outcomes)
        if self.totals[0]:
            counts[OK] = self.totals[0]
        return counts

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, calls below le seconds)`` for every bound of :data:`BUCKETS` and
        ``+Inf``."""
        out = []
        running = sum(self.buckets[:LOWEST])
        for i, bound in zip(range(LOWEST, HIGHEST + 1), BUCKETS, strict=True):
            running += self.buckets[i]
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out


@attrs.define(eq=False)
class CallStats:
    """The calls a daemon served, by method (see the module docs)."""

    methods: dict[str, MethodStats] = attrs.field(factory=dict)

    def _stats(self, method: str) -> MethodStats:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def wrap(self, method: str, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """*fn* (the bound method served as *method*), counting each call."""
        record = self._stats(method).record
        if is_async:

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter_ns()
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    record(outcome_of(exc), perf_counter_ns() - start)
                    raise
                record(OK, perf_counter_ns() - start)
                return result

            return timed_async

        stats = self._stats(method)
        buckets, totals, ticks = stats.buckets, stats.totals, stats.ticks
        deferred, clock = Deferred, perf_counter_ns
        mask = SAMPLE_EVERY - 1

        # The hot path: a resolve answered inline. Everything it touches is a local; a
        # call that is not timed costs one addition and one test.
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            seen = ticks[0] = ticks[0] + 1
            if seen & mask:
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    stats.count_error(outcome_of(exc))
                    raise
                if type(result) is deferred:
                    result.add_done_callback(stats.count_outcome)
                else:
                    totals[0] += 1
                return result
            start = clock()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                record(outcome_of(exc), clock() - start)
                raise
            if type(result) is deferred:

                def finished(done: outcome.Outcome[Any]) -> None:
                    error = getattr(done, "error", None)
                    record(OK if error is None else outcome_of(error), clock() - start)

                result.add_done_callback(finished)
                return result
            elapsed = clock() - start
            totals[0] += 1
            totals[1] += elapsed
            buckets[elapsed.bit_length()] += 1
            return result

        return timed

    def totals(self) -> Iterator[tuple[str, str, int]]:
        """``(method, outcome, calls)`` for every pair seen."""
        for method, stats in sorted(self.methods.items()):
            for result, n in sorted(stats.by_outcome().items()):
                yield method, result, n
