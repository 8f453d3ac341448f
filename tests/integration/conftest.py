"""Fixtures that start real ``pairns`` processes on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _support import HOST, NodeProcess, check_banner


@pytest.fixture(autouse=True)
def _no_pyro_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process clients must not pick up PYRO_* settings from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("PYRO_"):
            monkeypatch.delenv(key)


StartNode = Callable[..., NodeProcess]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[StartNode]:
    """``start_node(*extra_args, env=None, storage=None, port=0, wait=True)``.

    Starts ``pairns -n 127.0.0.1 -p PORT *extra_args`` with ``PYRO_STORAGE`` in
    *tmp_path* (or *storage*) and waits for its start banner. Every node started here
    is killed (by its pid) at teardown if the test left it running.
    """
    started: list[NodeProcess] = []

    def start(
        *extra: str,
        env: dict[str, str] | None = None,
        storage: Path | None = None,
        port: int = 0,
        wait: bool = True,
    ) -> NodeProcess:
        node = NodeProcess(
            ["-n", HOST, "-p", str(port), *extra],
            workdir=tmp_path / "logs",
            storage=storage if storage is not None else tmp_path / "storage",
            env=env,
            name=f"node{len(started)}",
        )
        started.append(node)
        if wait:
            node.wait_started()
        return node

    yield start
    for node in started:
        node.kill()


@pytest.fixture
def node(start_node: StartNode) -> NodeProcess:
    """One in-memory node; unpacks as ``host, port, proc``.

    Its start banner is checked here, so every test using it checks it too.
    """
    started = start_node()
    check_banner(started)
    return started
