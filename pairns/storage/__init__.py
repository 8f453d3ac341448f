"""Storage backends behind one interface: :class:`MemoryStorage` and :class:`SqliteStorage`.

The node opens its storage with :func:`open_storage`, which runs the group-commit task
for the lifetime of the ``async with`` block::

    async with open_storage(directory) as storage:   # None: in memory only
        loaded = await storage.open()    # node id, (seq, entry) rows, last seq, kv
        ...
        await storage.commit(changes)    # durable when it returns
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pairns.storage.base import Loaded, Storage, StorageStatistics
from pairns.storage.memory import MemoryStorage, MemoryVolume
from pairns.storage.sqlite import SqliteStorage, integrity_check

__all__ = [
    "Loaded",
    "MemoryStorage",
    "MemoryVolume",
    "SqliteStorage",
    "Storage",
    "StorageStatistics",
    "create_storage",
    "integrity_check",
    "open_storage",
]


def create_storage(directory: str | os.PathLike[str] | None) -> Storage:
    """A new, not yet running storage: SQLite in *directory*, or memory if ``None``."""
    if directory is None:
        return MemoryStorage()
    return SqliteStorage(directory)


@asynccontextmanager
async def open_storage(directory: str | os.PathLike[str] | None) -> AsyncIterator[Storage]:
    """Create a storage and run its committer for the duration of the block.

    *directory* holds the SQLite database (created if missing); ``None`` keeps
    everything in memory. Call :meth:`Storage.open` inside the block to load the
    state. Leaving the block waits for pending commits and closes the storage
    (releasing the directory lock). An error raised in the block comes out as
    itself, not wrapped in an exception group.
    """
    async with create_storage(directory).running() as storage:
        yield storage
