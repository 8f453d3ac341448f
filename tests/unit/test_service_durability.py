"""The name service in persistent mode: a write is answered only once durable, and a
failed commit leaves nothing behind (the disk-full contract of the persistent mode)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from pairns.errors import NamingError, StorageError
from pairns.namespace import Entry, HybridClock, Namespace
from pairns.naming.service import NameServer
from pairns.rpc import Deferred, current_request_id
from pairns.storage import open_storage
from pairns.storage.base import Storage
from pairns.storage.memory import MemoryStorage


class FlakyStorage:
    """Wraps a real storage; commits fail while ``full`` is set (a full disk)."""

    def __init__(self, inner: Storage, nursery: trio.Nursery) -> None:
        self.inner = inner
        self.nursery = nursery
        self.full = False
        self.committed: list[str] = []

    def commit_soon(
        self,
        changes: Sequence[tuple[int, Entry]],
        callback: Callable[[Any], None],
        *,
        request_id: str | None = None,
    ) -> None:
        self.nursery.start_soon(self._commit_then, list(changes), callback, request_id)

    async def _commit_then(
        self,
        changes: list[tuple[int, Entry]],
        callback: Callable[[Any], None],
        request_id: str | None,
    ) -> None:
        try:
            await self.commit(changes, request_id=request_id)
        except StorageError as exc:
            callback(exc)
            return
        callback(None)

    async def commit(
        self, changes: Sequence[tuple[int, Entry]], *, request_id: str | None = None
    ) -> None:
        await trio.sleep(0.01)  # the disk takes a while: reads must flow meanwhile
        if self.full:
            raise StorageError("commit failed, changes not written (disk full)")
        await self.inner.commit(changes, request_id=request_id)
        self.committed.extend(entry.name for _, entry in changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def flaky_storage(path: Any) -> AsyncIterator[FlakyStorage]:
    async with open_storage(path) as inner, trio.open_nursery() as nursery:
        await inner.open()
        yield FlakyStorage(inner, nursery)


async def settle(result: Any) -> Any:
    """What a remote caller would get: awaits a coroutine or a Deferred."""
    if inspect.isawaitable(result):
        return await result
    if isinstance(result, Deferred):
        done = trio.Event()
        box: list[Any] = []
        result.add_done_callback(lambda outcome: (box.append(outcome), done.set()))
        await done.wait()
        return box[0].unwrap()
    return result


def test_persistent_writes_are_plain_methods_answered_by_the_commit() -> None:
    """No task per write: the daemon gets a Deferred, not a coroutine function."""
    ns = Namespace("n1", HybridClock("n1"))
    service = NameServer(ns, MemoryStorage(), durable=True, node_info=dict)
    for method in ("register", "unregister", "createGroup", "deleteGroup", "setMeta"):
        assert not inspect.iscoroutinefunction(getattr(service, method)), method


async def _service(storage: Any) -> tuple[NameServer, Namespace]:
    ns = Namespace("n1", HybridClock("n1"))
    await storage.commit(ns.bootstrap().rows)
    service = NameServer(ns, storage, durable=True, node_info=dict)
    return service, ns


async def test_a_failed_commit_fails_the_call_and_changes_nothing(tmp_path: Any) -> None:
    async with flaky_storage(tmp_path / "db") as storage:
        service, ns = await _service(storage)
        await settle(service.register(":Default.kept", "PYRO://h:1/a"))
        digest = ns.digest()

        storage.full = True
        with pytest.raises(StorageError, match="disk full"):
            await settle(service.register(":Default.lost", "PYRO://h:1/b"))
        with pytest.raises(StorageError):
            await settle(service.createGroup(":G"))
        with pytest.raises(StorageError):
            await settle(service.setMeta(":Default.kept", {"x": 1}))
        # Nothing of the failed calls is visible; reads go on answering.
        assert ns.digest() == digest
        assert service.resolve(":Default.kept") == "PYRO://h:1/a"
        assert service.getMeta(":Default.kept") is None
        with pytest.raises(NamingError, match="name not found"):
            service.resolve(":Default.lost")
        assert service.list(":") == [("Default", 0), ("Pyro", 0)]

        # Space is back: the same writes now succeed, and are on disk.
        storage.full = False
        await settle(service.register(":Default.lost", "PYRO://h:1/b"))
        await settle(service.createGroup(":G"))
        assert ":Default.lost" in storage.committed
        assert service.resolve(":Default.lost") == "PYRO://h:1/b"


async def test_reads_flow_while_a_commit_waits(tmp_path: Any) -> None:
    async with flaky_storage(tmp_path / "db") as storage:
        service, _ = await _service(storage)
        await settle(service.register(":Default.a", "PYRO://h:1/a"))
        answered = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(settle, service.register(":Default.b", "PYRO://h:1/b"))
            await trio.sleep(0)  # the write is now waiting for its commit
            while ":Default.b" not in storage.committed and answered < 10_000:
                assert service.resolve(":Default.a") == "PYRO://h:1/a"
                answered += 1
                await trio.sleep(0)
        assert answered > 0


async def test_a_retry_while_the_first_attempt_commits_is_applied_once(tmp_path: Any) -> None:
    async with flaky_storage(tmp_path / "db") as storage:
        service, ns = await _service(storage)
        token = current_request_id.set("req-1")
        try:
            first = service.register(":Default.once", "PYRO://h:1/a")
            retry = service.register(":Default.once", "PYRO://h:1/a")
        finally:
            current_request_id.reset(token)
        assert isinstance(first, Deferred) and isinstance(retry, Deferred)
        assert await settle(first) is None
        assert await settle(retry) is None
        assert storage.committed.count(":Default.once") == 1
        # Once written, the id is known: a third attempt is answered without a write.
        token = current_request_id.set("req-1")
        try:
            assert service.register(":Default.once", "PYRO://h:1/a") is None
        finally:
            current_request_id.reset(token)
        assert storage.committed.count(":Default.once") == 1
        assert service.resolve(":Default.once") == "PYRO://h:1/a"
        assert ns.entry_count > 0


async def test_a_retry_of_a_failed_first_attempt_applies_the_write(tmp_path: Any) -> None:
    async with flaky_storage(tmp_path / "db") as storage:
        service, _ = await _service(storage)
        storage.full = True
        token = current_request_id.set("req-2")
        try:
            first = service.register(":Default.second", "PYRO://h:1/b")
            assert isinstance(first, Deferred)
            # Space comes back as soon as the first attempt has failed.
            first.add_done_callback(lambda _: setattr(storage, "full", False))
            retry = service.register(":Default.second", "PYRO://h:1/b")
        finally:
            current_request_id.reset(token)
        with pytest.raises(StorageError, match="disk full"):
            await settle(first)
        assert await settle(retry) is None
        assert storage.committed.count(":Default.second") == 1
        assert service.resolve(":Default.second") == "PYRO://h:1/b"
