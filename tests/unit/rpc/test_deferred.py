"""Deferred replies: a plain method that answers later, without a task per call."""

from __future__ import annotations

import random
from typing import Any

import outcome
import pytest
import trio

from pairns.errors import NamingError, RemoteCallError
from pairns.rpc import AsyncProxy, Daemon, DaemonLimits, Deferred

# -- the value type -------------------------------------------------------------------------


def test_callbacks_run_once_in_order_and_late_ones_at_once() -> None:
    later = Deferred()
    seen: list[Any] = []
    later.add_done_callback(lambda result: seen.append(("a", result.unwrap())))
    later.add_done_callback(lambda result: seen.append(("b", result.unwrap())))
    assert not later.done and seen == []
    later.resolve(7)
    assert later.done and seen == [("a", 7), ("b", 7)]
    later.add_done_callback(lambda result: seen.append(("c", result.unwrap())))
    assert seen[-1] == ("c", 7)
    with pytest.raises(RuntimeError, match="already finished"):
        later.resolve(8)
    with pytest.raises(RuntimeError, match="already finished"):
        later.fail(ValueError())


def test_failure_reaches_every_callback_and_a_raising_callback_starves_none() -> None:
    later = Deferred()
    seen: list[outcome.Outcome[Any]] = []

    def broken(_: outcome.Outcome[Any]) -> None:
        raise KeyError("callback bug")

    later.add_done_callback(broken)
    later.add_done_callback(seen.append)
    error = NamingError("name not found", ":x")
    with pytest.raises(KeyError, match="callback bug"):
        later.fail(error)
    assert len(seen) == 1
    with pytest.raises(NamingError):
        seen[0].unwrap()


# -- served by the daemon -----------------------------------------------------------------


class Later:
    """Plain methods that hand back Deferreds, finished by a task of the test."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.parked: list[Deferred] = []

    def after(self, seconds: float, value: Any) -> Deferred:
        later = Deferred()

        async def finish() -> None:
            await trio.sleep(seconds)
            later.resolve(value)

        self.nursery.start_soon(finish)
        return later

    def fail_after(self, seconds: float, name: str) -> Deferred:
        later = Deferred()

        async def finish() -> None:
            await trio.sleep(seconds)
            later.fail(NamingError("name not found", name))

        self.nursery.start_soon(finish)
        return later

    def now(self, value: Any) -> Deferred:
        later = Deferred()
        later.resolve(value)
        return later

    def park(self) -> Deferred:
        later = Deferred()
        self.parked.append(later)
        return later

    def unencodable_later(self) -> Deferred:
        later = Deferred()
        later.resolve({1, 2})
        return later

    def big_later(self, seconds: float, size: int) -> Deferred:
        return self.after(seconds, "y" * size)

    def add(self, a: int, b: int) -> int:
        return a + b


async def _serve(nursery: trio.Nursery) -> tuple[Daemon, Later, str, int]:
    daemon = Daemon()
    service = Later(nursery)
    daemon.register(service, "later")
    host, port = await nursery.start(daemon.serve)
    return daemon, service, host, port


async def test_values_errors_and_already_finished(nursery: trio.Nursery) -> None:
    _, _, host, port = await _serve(nursery)
    async with AsyncProxy.for_address(host, port, "later") as p:
        assert await p.after(0.01, {"a": [1, 2]}) == {"a": [1, 2]}
        assert await p.now("at once") == "at once"
        with pytest.raises(NamingError, match="name not found"):
            await p.fail_after(0.01, ":gone")
        with pytest.raises(RemoteCallError, match="cannot be sent"):
            await p.unencodable_later()
        with pytest.raises(RemoteCallError, match="bad arguments"):
            await p.after()
        assert await p.call("after", 0, "with id", request_id="r-1") == "with id"
        assert await p.add(2, 3) == 5  # the connection is still in step


async def test_many_interleaved_replies_arrive_whole(nursery: trio.Nursery) -> None:
    """Deferred replies (some too big for one write), task-less and sync replies share
    one connection without a frame ever being cut into by another."""
    _, _, host, port = await _serve(nursery)
    rng = random.Random(5)
    async with AsyncProxy.for_address(host, port, "later") as p:
        results: dict[int, Any] = {}

        async def call(i: int) -> None:
            delay = rng.random() * 0.02
            if i % 10 == 0:
                size = 2_000_000 + i
                value = await p.big_later(delay, size)
                assert value == "y" * size
                results[i] = size
            elif i % 3 == 0:
                results[i] = await p.add(i, 1)
            else:
                results[i] = await p.after(delay, i)

        async with trio.open_nursery() as calls:
            for i in range(60):
                calls.start_soon(call, i)
        assert len(results) == 60
        assert all(results[i] == i for i in range(60) if i % 10 and i % 3)


async def test_a_reply_finished_after_the_client_left_goes_nowhere(nursery: trio.Nursery) -> None:
    daemon, service, host, port = await _serve(nursery)
    async with AsyncProxy.for_address(host, port, "later", timeout=None) as gone:

        async def wait() -> None:
            with pytest.raises(Exception):  # noqa: B017  # the proxy is closed under it
                await gone.park()

        async with trio.open_nursery() as inner:
            inner.start_soon(wait)
            with trio.fail_after(5):
                while not service.parked:
                    await trio.sleep(0.01)
            await gone.aclose()
    with trio.fail_after(5):
        while daemon.statistics().connections:
            await trio.sleep(0.01)
    # A new connection likely reuses the old descriptor number: the late reply must
    # not be written into it.
    async with AsyncProxy.for_address(host, port, "later") as fresh:
        assert await fresh.add(1, 1) == 2
        service.parked[0].resolve("late")
        assert await fresh.after(0.01, "mine") == "mine"
        assert await fresh.add(2, 2) == 4


async def test_a_pending_deferred_call_keeps_its_connection_past_the_idle_timeout(
    nursery: trio.Nursery,
) -> None:
    daemon = Daemon(limits=DaemonLimits(idle_timeout=0.2))
    daemon.register(Later(nursery), "later")
    host, port = await nursery.start(daemon.serve)
    async with AsyncProxy.for_address(host, port, "later") as p:
        assert await p.after(0.6, "slow but answered") == "slow but answered"
        assert daemon.statistics().total_connections == 1
