"""Version stamps and the hybrid logical clock that makes them.

A :class:`Stamp` orders every change a pair ever made: first by its hybrid logical
clock value, then by the id of the node that made it, so two different changes never
compare equal and every node picks the same winner.

The hybrid logical clock packs wall-clock milliseconds into the high 48 bits and a
logical counter into the low 16 bits, so a value fits a signed 64-bit integer (SQLite,
other JSON readers) until the year 10889. It never goes backwards, even when the wall clock
does, and :meth:`HybridClock.observe` moves it past any stamp seen from the twin, so a
change made after seeing another change always carries a higher stamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from pairns.namespace._slots import column_builder

#: Bits of the HLC value that hold the logical counter (65,536 changes per millisecond).
COUNTER_BITS = 16


@attrs.frozen(order=False, slots=True)
class Stamp:
    """A change's version: ``(hlc, node)``, compared in that order."""

    hlc: int
    node: str

    # Hand-written ordering: merges and visibility checks compare stamps in tight loops,
    # and attrs' generated methods build two tuples per comparison.
    def __lt__(self, other: Stamp) -> bool:
        if other.__class__ is not Stamp:
            return NotImplemented
        return self.hlc < other.hlc or (self.hlc == other.hlc and self.node < other.node)

    def __le__(self, other: Stamp) -> bool:
        if other.__class__ is not Stamp:
            return NotImplemented
        return self.hlc < other.hlc or (self.hlc == other.hlc and self.node <= other.node)

    def __gt__(self, other: Stamp) -> bool:
        if other.__class__ is not Stamp:
            return NotImplemented
        return self.hlc > other.hlc or (self.hlc == other.hlc and self.node > other.node)

    def __ge__(self, other: Stamp) -> bool:
        if other.__class__ is not Stamp:
            return NotImplemented
        return self.hlc > other.hlc or (self.hlc == other.hlc and self.node >= other.node)

    @property
    def wall_time(self) -> float:
        """The wall-clock time (seconds since the epoch) this stamp was made at."""
        return (self.hlc >> COUNTER_BITS) / 1_000


#: Sorts below every real stamp.
ZERO_STAMP = Stamp(0, "")

#: The HLC value of bootstrap entries (the root, ``:Pyro``, the default group made at
#: start): the lowest a real entry can have, so that they never supersede anything a
#: twin holds for those names (metadata set on them, say), whatever the clocks say.
BOOTSTRAP_HLC = 1


def max_skew_hlc(seconds: float) -> int:
    """*seconds* of wall-clock time as an HLC distance (for the maximum clock skew)."""
    return int(seconds * 1_000) << COUNTER_BITS

#: ``make_stamps(hlcs, nodes) -> list[Stamp]``: many stamps at once (see
#: :mod:`pairns.namespace._slots`).
make_stamps = column_builder(Stamp, [[1, 2], ["n1", "n2"]])


@attrs.define(eq=False)
class HybridClock:
    """A hybrid logical clock for one node; ``now`` is injected so tests control time."""

    node: str
    now: Callable[[], float] = time.time
    _last: int = 0

    def physical(self) -> int:
        """The wall clock now, as an HLC value with a zero counter."""
        return int(self.now() * 1_000) << COUNTER_BITS

    def tick(self) -> Stamp:
        """A new stamp, higher than every stamp this clock made or observed."""
        physical = self.physical()
        self._last = physical if physical > self._last else self._last + 1
        return Stamp(self._last, self.node)

    def tick_above(self, stamp: Stamp) -> Stamp:
        """A new stamp, higher than :meth:`tick`'s and than *stamp* (a local write
        replacing an entry must beat it, whatever the wall clock says)."""
        if stamp.hlc > self._last:
            self._last = stamp.hlc
        return self.tick()

    def observe(self, stamp: Stamp) -> None:
        """Move past *stamp* (seen from another node) so later ticks are higher."""
        if stamp.hlc > self._last:
            self._last = stamp.hlc

    @property
    def last(self) -> int:
        """The highest HLC value made or observed so far."""
        return self._last
