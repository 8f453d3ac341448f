"""The link state machine, positions and backoff (no IO)."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from pairns.errors import ConnectionClosedError, LocalProtocolError
from pairns.namespace import HybridClock, Namespace
from pairns.replication import LinkFailed, Replicator
from pairns.replication.dialer import Dialer
from pairns.replication.session import Link
from pairns.replication.state import (
    MAX_BACKOFF,
    TRANSITIONS,
    Backoff,
    LinkEvent,
    LinkMachine,
    LinkState,
    Positions,
)
from pairns.storage import MemoryStorage


def test_happy_path_and_failure() -> None:
    m = LinkMachine()
    assert m.state is LinkState.DOWN
    m.handle(LinkEvent.DIAL, now=1.0)
    m.handle(LinkEvent.CONNECTED, now=2.0)
    m.handle(LinkEvent.HELLO, now=3.0)
    status = m.handle(LinkEvent.CAUGHT_UP, now=4.0)
    assert status.text == "paired" and status.since == 4.0
    status = m.handle(LinkEvent.FAILED, now=5.0, reason="the twin was silent for 2.1 s")
    assert status.state is LinkState.DOWN
    assert status.text == "down: the twin was silent for 2.1 s"


def test_refusal_keeps_its_reason_and_allows_retry() -> None:
    m = LinkMachine()
    m.handle(LinkEvent.DIAL, now=0)
    assert m.handle(LinkEvent.REFUSED, now=1, reason="identification mismatch").text == (
        "refused: identification mismatch"
    )
    assert m.handle(LinkEvent.DIAL, now=2).state is LinkState.CONNECTING


def test_every_missing_transition_raises() -> None:
    for state, moves in TRANSITIONS.items():
        for event in LinkEvent:
            m = LinkMachine()
            m.status = type(m.status)(state)
            if event in moves:
                assert m.handle(event, now=0).state is moves[event]
            else:
                with pytest.raises(LocalProtocolError):
                    m.handle(event, now=0)
    # One can never be paired without the hellos.
    assert LinkEvent.CAUGHT_UP not in TRANSITIONS[LinkState.CONNECTING]


def test_positions_acks_are_cumulative_and_bounded_by_what_was_sent() -> None:
    p = Positions()
    p.restart(acked=10, applied=4)
    assert (p.sent, p.received) == (10, 4)
    p.on_sent(20)
    assert not p.on_ack(25)  # beyond what was sent: ignored
    assert p.on_ack(15) and p.acked == 15
    assert not p.on_ack(12)  # going back: ignored
    with pytest.raises(LocalProtocolError):
        p.on_sent(19)
    p.check_batch(4)
    with pytest.raises(LocalProtocolError):
        p.check_batch(5)  # a gap: resync
    p.on_received(9)
    assert p.on_durable(9) and not p.on_durable(9)


def test_backoff_doubles_and_never_exceeds_five_seconds() -> None:
    b = Backoff(initial=0.1)
    delays = [b.next() for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(delays) == MAX_BACKOFF
    b.reset()
    assert b.next() == 0.1
    with pytest.raises(ValueError):
        Backoff(initial=0.1, maximum=6.0)


async def test_dial_loop_retries_at_least_every_five_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The -2 node's dial loop, against a twin that never answers (virtual time)."""
    storage = MemoryStorage()
    async with storage.running():
        await storage.open()
        ns = Namespace("me", HybridClock("me"))
        rep = Replicator(
            namespace=ns,
            storage=storage,
            node_id="me",
            role=2,
            twin=("127.0.0.1", 9),
            identification=None,
            durable=False,
        )
        attempts: list[float] = []

        async def no_twin() -> None:
            attempts.append(trio.current_time())
            await trio.sleep(0.01)
            raise ConnectionClosedError("cannot connect to 127.0.0.1:9")

        dialer = Dialer(rep.pairing, identification=None, pair_key=None, max_frame_size=None)
        dialer.connect_and_run = no_twin  # type: ignore[method-assign]
        with trio.move_on_after(60):
            await dialer.run()
        assert rep.status()["link"] == "down: cannot connect to 127.0.0.1:9"
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= MAX_BACKOFF + 0.011
    # 0.1+0.2+...+3.2 = 6.3 s of ramp, then one try per 5 s: about 17 tries in 60 s.
    assert 15 <= len(attempts) <= 20


async def test_watchdog_drops_a_twin_silent_for_the_peer_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    storage = MemoryStorage()
    async with storage.running():
        await storage.open()
        rep = Replicator(
            namespace=Namespace("me", HybridClock("me")),
            storage=storage,
            node_id="me",
            role=1,
            twin=("127.0.0.1", 9),
            identification=None,
            durable=False,
            peer_timeout=2.0,
        )
        link = Link(rep.pairing, "twin", number=1, acked=0, applied=0, full=False)
        start = trio.current_time()

        async def heartbeats_for_one_second() -> None:
            for _ in range(10):
                await trio.sleep(0.1)
                link.contact()

        with pytest.raises(ExceptionGroup) as info:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heartbeats_for_one_second)
                await link.watchdog()
        assert info.group_contains(LinkFailed, match="silent")
        assert 2.9 <= trio.current_time() - start <= 3.1
