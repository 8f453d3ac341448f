"""The tombstone collector's pace: straight on after a full batch, else one look per
interval (a pass looks at every tombstone held)."""

from __future__ import annotations

import itertools
from typing import Any

import trio
import trio.testing

from pairns.namespace.stamps import ZERO_STAMP
from pairns.namespace.state import COLLECT_BATCH
from pairns.naming.tombstones import TombstoneCollector


class _Clock:
    def physical(self) -> int:
        return 1 << 40


class _Namespace:
    """Hands out *sizes* in turn as the tombstones each pass drops, then none."""

    def __init__(self, sizes: list[int]) -> None:
        self.clock = _Clock()
        self.horizon = ZERO_STAMP
        self.sizes = sizes
        self.calls: list[float] = []

    def collect(self, upto: int, *, older_than: int | None = None) -> list[tuple[str, int]]:
        self.calls.append(trio.current_time())
        n = self.sizes.pop(0) if self.sizes else 0
        return [(f"n{i}", i + 1) for i in range(n)]


class _Storage:
    async def collect(self, dropped: Any, kv: Any) -> None:
        await trio.lowlevel.checkpoint()


async def _passes(sizes: list[int], grace: float) -> list[float]:
    namespace = _Namespace(sizes)
    collector = TombstoneCollector(
        namespace,  # type: ignore[arg-type]
        _Storage(),  # type: ignore[arg-type]
        safe_upto=lambda: 10,
        interval=0.25,
        grace=grace,
    )
    with trio.move_on_after(2.1):
        await collector.run()
    return namespace.calls


def test_a_trickle_of_tombstones_is_collected_once_an_interval() -> None:
    # Under churn with a grace period nearly every pass drops a few; looking again
    # at once made the collector run pass after pass.
    async def main() -> None:
        calls = await _passes([3] * 1000, grace=60.0)
        assert len(calls) <= 10
        assert all(b - a >= 0.25 for a, b in itertools.pairwise(calls))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_full_batches_go_straight_on_and_a_last_drop_gets_another_look() -> None:
    async def main() -> None:
        calls = await _passes([COLLECT_BATCH, COLLECT_BATCH, 5], grace=0.0)
        # Two full batches at once, the third pass too; then one more look (its
        # drops may have made a group a leaf), then none while nothing moves.
        assert calls[:3] == [0.0, 0.0, 0.0]
        assert calls[3:] == [0.25]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
