"""The storage writer thread: results, errors, and no abandoned writes on cancel."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from pairns.storage.writer import WriterThread


async def test_runs_in_its_own_thread_and_returns_results() -> None:
    writer = WriterThread()
    try:
        names = [await writer.run(lambda: threading.current_thread().name) for _ in range(3)]
        assert names == ["pairns-writer"] * 3
        assert await writer.run(sum, [1, 2, 3]) == 6
    finally:
        writer.stop()


async def test_errors_are_raised_in_the_caller() -> None:
    writer = WriterThread()
    try:
        with pytest.raises(ZeroDivisionError):
            await writer.run(lambda: 1 / 0)
        assert await writer.run(lambda: "still works") == "still works"
    finally:
        writer.stop()


async def test_a_cancelled_caller_waits_for_the_write_to_finish() -> None:
    writer = WriterThread()
    done = threading.Event()

    def slow() -> str:
        time.sleep(0.3)
        done.set()
        return "written"

    try:
        with trio.move_on_after(0.05):
            await writer.run(slow)
        # The cancel was not honoured half-way: the write completed first.
        assert done.is_set()
    finally:
        writer.stop()


async def test_stop_is_final() -> None:
    writer = WriterThread()
    assert await writer.run(lambda: 1) == 1
    writer.stop()
    writer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await writer.run(lambda: 2)
