"""The peer link pauses the cyclic collector while the twin streams a backlog, and only
then: it resumes when the twin caught up, when the link ends, or after a bound."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio

from pairns.replication import session as session_module
from pairns.replication.session import Link


@pytest.fixture(autouse=True)
def _gc_enabled() -> Iterator[None]:
    gc.enable()
    frozen = gc.get_freeze_count()
    yield
    gc.enable()
    if not frozen:
        gc.unfreeze()


def bare_link() -> Link:
    link = Link.__new__(Link)
    link.closed = False
    link._gc_held_since = None
    link._gc_hold = None
    link._gc_hold_used = False
    return link


async def test_held_while_the_twin_has_more_then_resumed_once_caught_up() -> None:
    link = bare_link()
    link.hold_gc(True)
    assert not gc.isenabled()
    link.hold_gc(True)
    assert not gc.isenabled()
    gc.unfreeze()
    keep = [[] for _ in range(10)]  # alive, tracked: frozen when the hold ends
    link.hold_gc(False)
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(keep)
    link.hold_gc(True)  # once per link
    assert gc.isenabled()


async def test_a_caught_up_link_never_holds() -> None:
    link = bare_link()
    link.hold_gc(False)
    assert gc.isenabled()


async def test_released_when_the_link_ends() -> None:
    gc.unfreeze()
    link = bare_link()
    link.hold_gc(True)
    link.release_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # a broken stream is not frozen
    link.release_gc()  # idempotent
    assert gc.isenabled()
    closed = bare_link()
    closed.closed = True
    closed.hold_gc(True)
    assert gc.isenabled()


async def test_released_after_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "GC_HOLD_MAX", 0.01)
    link = bare_link()
    link.hold_gc(True)
    await trio.sleep(0.05)
    link.hold_gc(True)
    assert gc.isenabled()


async def test_a_collector_paused_by_someone_else_is_left_alone() -> None:
    gc.disable()
    link = bare_link()
    link.hold_gc(True)
    link.hold_gc(False)
    link.release_gc()
    assert not gc.isenabled()
