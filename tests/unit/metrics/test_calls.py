"""Calls counted by method and outcome, with their latency, by the method wrapper."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from pairns.errors import NamingError
from pairns.metrics.calls import BUCKETS, SAMPLE_EVERY, CallStats, MethodStats
from pairns.rpc.deferred import Deferred
from pairns.rpc.dispatch import ObjectTable


class Service:
    def resolve(self, name: str) -> str:
        if name == "missing":
            raise NamingError("name not found")
        return f"PYRO://h:1/{name}"

    def register(self, later: Deferred) -> Deferred:
        return later

    async def slow(self, x: int) -> int:
        await trio.sleep(0)
        return x * 2

    def keyword(self, *, value: int = 0) -> int:
        return value


def test_plain_calls_are_counted_by_outcome_and_still_return_and_raise() -> None:
    stats = CallStats()
    resolve = stats.wrap("resolve", Service().resolve, False)
    assert resolve("a") == "PYRO://h:1/a"
    assert resolve("b") == "PYRO://h:1/b"
    with pytest.raises(NamingError, match="name not found"):
        resolve("missing")
    assert list(stats.totals()) == [("resolve", "NamingError", 1), ("resolve", "ok", 2)]
    keyword = stats.wrap("keyword", Service().keyword, False)
    assert keyword(value=3) == 3


def test_every_call_is_counted_and_one_in_sample_every_is_timed() -> None:
    stats = CallStats()
    resolve = stats.wrap("resolve", Service().resolve, False)
    calls = 4 * SAMPLE_EVERY
    for i in range(calls):
        if i % 5 == 4:
            with pytest.raises(NamingError):
                resolve("missing")
        else:
            assert resolve(f"n{i}") == f"PYRO://h:1/n{i}"
    errors = sum(1 for i in range(calls) if i % 5 == 4)
    assert list(stats.totals()) == [
        ("resolve", "NamingError", errors),
        ("resolve", "ok", calls - errors),
    ]
    method = stats.methods["resolve"]
    assert method.count == calls // SAMPLE_EVERY
    assert method.cumulative()[-1] == ("+Inf", method.count)
    assert 0 < method.seconds < 1


def test_a_deferred_result_is_counted_when_it_is_finished() -> None:
    stats = CallStats()
    register = stats.wrap("register", Service().register, False)
    pending = [Deferred() for _ in range(2 * SAMPLE_EVERY)]
    for later in pending:
        assert register(later) is later
    assert list(stats.totals()) == []  # nothing finished yet
    for i, later in enumerate(pending):
        if i % 2:
            later.fail(OSError("disk full"))
        else:
            later.resolve(True)
    assert list(stats.totals()) == [
        ("register", "OSError", SAMPLE_EVERY),
        ("register", "ok", SAMPLE_EVERY),
    ]
    assert stats.methods["register"].count == 2  # the timed ones, when they finished


def test_async_methods_stay_coroutine_functions_and_are_counted() -> None:
    stats = CallStats()
    slow = stats.wrap("slow", Service().slow, True)
    assert inspect.iscoroutinefunction(slow)
    assert trio.run(slow, 21) == 42
    assert list(stats.totals()) == [("slow", "ok", 1)]


def test_the_wrapper_keeps_the_signature_for_error_messages() -> None:
    stats = CallStats()
    resolve = stats.wrap("resolve", Service().resolve, False)
    assert inspect.signature(resolve) == inspect.signature(Service().resolve)


@given(st.lists(st.integers(min_value=0, max_value=2**40), max_size=50))
def test_buckets_are_cumulative_and_count_every_call(latencies: list[int]) -> None:
    stats = MethodStats()
    for nanoseconds in latencies:
        stats.record("ok", nanoseconds)
    cumulative = stats.cumulative()
    assert [le for le, _ in cumulative] == [*(repr(b) for b in BUCKETS), "+Inf"]
    counts = [n for _, n in cumulative]
    assert counts == sorted(counts)
    assert counts[-1] == len(latencies) == stats.count
    for bound, n in zip(BUCKETS, counts, strict=False):
        # Every call is counted in the first bucket whose bound is above it.
        assert n == sum(1 for ns in latencies if ns / 1e9 < bound)
    assert stats.seconds == sum(latencies) / 1e9


def test_the_bounds_run_from_microseconds_to_seconds() -> None:
    assert BUCKETS[0] == 4.096e-06
    assert BUCKETS[-1] == 8.589934592
    assert all(b == a * 2 for a, b in itertools.pairwise(BUCKETS))


def test_the_object_table_serves_wrapped_methods_once_looked_up() -> None:
    table = ObjectTable()
    stats = CallStats()
    calls: list[str] = []

    def wrap(method: str, fn: Any, is_async: bool) -> Any:
        calls.append(method)
        return stats.wrap(method, fn, is_async)

    table.wrap = wrap
    table.add(Service(), "svc")
    found = table.lookup("svc", "resolve")
    assert found.fn("x") == "PYRO://h:1/x"
    assert table.sync_methods[("svc", "resolve")] is found.fn  # the hot path's too
    assert table.lookup("svc", "slow").is_async
    table.lookup("svc", "resolve")
    assert calls == ["resolve", "slow"]  # wrapped once, then cached
    assert list(stats.totals()) == [("resolve", "ok", 1)]
