"""The node owns the collector policy: start-up paused, then what is alive frozen and
the collector resumed; the pause mechanisms leave a collector that was off alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pairns import _collector as collector
from pairns.config import Config
from pairns.namespace import ChangeSet, Namespace
from pairns.node import open_node


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:  # pragma: no cover - pytest runs with the collector on
        gc.disable()


def test_a_pause_lasts_until_its_end() -> None:
    pause = collector.Pause()
    assert pause.active and not gc.isenabled()
    with collector.paused():  # nested: leaves the outer pause in force
        assert not gc.isenabled()
    assert not gc.isenabled()
    pause.end()
    assert not pause.active and gc.isenabled()
    pause.end()  # once only
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off_and_unfrozen() -> None:
    gc.disable()
    frozen = gc.get_freeze_count()
    pause = collector.Pause()
    assert not pause.active
    pause.end(freeze=True)
    with collector.paused():
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_ending_with_freeze_freezes_what_is_alive() -> None:
    gc.unfreeze()
    pause = collector.Pause()
    alive = [object() for _ in range(10)]
    pause.end(freeze=True)
    assert gc.isenabled()
    assert gc.get_freeze_count() > len(alive)


def _config(tmp_path: Path) -> Config:
    return Config(host="127.0.0.1", port=0, storage=str(tmp_path))


async def test_a_node_starts_up_paused_then_freezes_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    during: list[bool] = []
    original = Namespace.bootstrap

    def bootstrap(self: Namespace) -> ChangeSet:
        during.append(gc.isenabled())
        return original(self)

    monkeypatch.setattr(Namespace, "bootstrap", bootstrap)
    gc.unfreeze()
    async with open_node(_config(tmp_path)):
        assert during == [False]
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()


async def test_a_node_leaves_a_collector_its_program_turned_off_alone(tmp_path: Path) -> None:
    gc.unfreeze()
    gc.disable()
    async with open_node(_config(tmp_path)):
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()


async def test_a_node_that_fails_to_start_resumes_the_collector(tmp_path: Path) -> None:
    async with open_node(_config(tmp_path)) as first:
        port = first.address[1]
        refused = False
        try:
            async with open_node(Config(host="127.0.0.1", port=port, storage=str(tmp_path))):
                pass  # pragma: no cover - the port is taken
        except* OSError:
            refused = True
        assert refused
        assert gc.isenabled()
