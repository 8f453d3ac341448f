"""The name service in persistent mode: a write is answered only once durable, and a
failed commit leaves nothing behind (the disk-full contract of the persistent mode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

from pairns.errors import NamingError, StorageError
from pairns.namespace import Entry, HybridClock, Namespace
from pairns.naming.service import NameServer
from pairns.storage import open_storage
from pairns.storage.base import Storage


class FlakyStorage:
    """Wraps a real storage; commits fail while ``full`` is set (a full disk)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.full = False
        self.committed: list[str] = []

    async def commit(self, changes: Sequence[tuple[int, Entry]]) -> None:
        await trio.sleep(0.01)  # the disk takes a while: reads must flow meanwhile
        if self.full:
            raise StorageError("commit failed, changes not written (disk full)")
        await self.inner.commit(changes)
        self.committed.extend(entry.name for _, entry in changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _service(storage: Any) -> tuple[NameServer, Namespace]:
    ns = Namespace("n1", HybridClock("n1"))
    await storage.commit(ns.bootstrap().rows)
    service = NameServer(ns, storage, durable=True, node_info=dict)
    return service, ns


async def test_a_failed_commit_fails_the_call_and_changes_nothing(tmp_path: Any) -> None:
    async with open_storage(tmp_path / "db") as inner:
        await inner.open()
        storage = FlakyStorage(inner)
        service, ns = await _service(storage)
        await service.register(":Default.kept", "PYRO://h:1/a")
        digest = ns.digest()

        storage.full = True
        with pytest.raises(StorageError, match="disk full"):
            await service.register(":Default.lost", "PYRO://h:1/b")
        with pytest.raises(StorageError):
            await service.createGroup(":G")
        with pytest.raises(StorageError):
            await service.setMeta(":Default.kept", {"x": 1})
        # Nothing of the failed calls is visible; reads go on answering.
        assert ns.digest() == digest
        assert service.resolve(":Default.kept") == "PYRO://h:1/a"
        assert service.getMeta(":Default.kept") is None
        with pytest.raises(NamingError, match="name not found"):
            service.resolve(":Default.lost")
        assert service.list(":") == [("Default", 0), ("Pyro", 0)]

        # Space is back: the same writes now succeed, and are on disk.
        storage.full = False
        await service.register(":Default.lost", "PYRO://h:1/b")
        await service.createGroup(":G")
        assert ":Default.lost" in storage.committed
        assert service.resolve(":Default.lost") == "PYRO://h:1/b"


async def test_reads_flow_while_a_commit_waits(tmp_path: Any) -> None:
    async with open_storage(tmp_path / "db") as inner:
        await inner.open()
        storage = FlakyStorage(inner)
        service, _ = await _service(storage)
        await service.register(":Default.a", "PYRO://h:1/a")
        answered = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.register, ":Default.b", "PYRO://h:1/b")
            await trio.sleep(0)  # the write is now waiting for its commit
            while ":Default.b" not in storage.committed and answered < 10_000:
                assert service.resolve(":Default.a") == "PYRO://h:1/a"
                answered += 1
                await trio.sleep(0)
        assert answered > 0
