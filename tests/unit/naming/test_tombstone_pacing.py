"""The tombstone collector's pace (straight on after a full batch, else one look per
interval) and its grace period setting."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Any

import pytest
import trio
import trio.testing

from pairns.config import ConfigError
from pairns.namespace.stamps import ZERO_STAMP
from pairns.namespace.state import COLLECT_BATCH
from pairns.naming.tombstones import (
    GRACE_ENV,
    TOMBSTONE_GRACE,
    TombstoneCollector,
    grace_from_env,
)


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


def test_the_grace_period_is_for_a_pair_only_unless_set() -> None:
    assert grace_from_env(paired=True, environ={}) == TOMBSTONE_GRACE
    assert grace_from_env(paired=False, environ={}) == 0.0
    assert grace_from_env(paired=False, environ={GRACE_ENV: "5"}) == 5.0
    assert grace_from_env(paired=True, environ={GRACE_ENV: "0"}) == 0.0


@pytest.mark.parametrize("text", ["soon", "-1", "nan", "inf", ""])
def test_a_bad_grace_period_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError, match=GRACE_ENV):
        grace_from_env(paired=True, environ={GRACE_ENV: text})


def test_the_command_refuses_a_bad_grace_period_with_exit_code_2() -> None:
    env = dict(os.environ, **{GRACE_ENV: "soon"})
    out = subprocess.run(
        [sys.executable, "-m", "pairns.cli.server", "-n", "127.0.0.1", "-p", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2, out.stderr
    assert "configuration error" in out.stderr and GRACE_ENV in out.stderr
