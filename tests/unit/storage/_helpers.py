"""Shared helpers for the storage tests: entries, and a backend factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs

from pairns.namespace.entry import Entry, Kind
from pairns.namespace.stamps import Stamp
from pairns.storage import Loaded, MemoryStorage, MemoryVolume, SqliteStorage, Storage

#: A realistic hybrid-clock value (2023, microseconds << 16): larger than 2**63.
BASE_HLC = 1_700_000_000_000_000 << 16


def entry(
    name: str,
    version: int = 0,
    *,
    deleted: bool = False,
    kind: Kind = Kind.OBJECT,
    meta: object = None,
) -> Entry:
    """An entry for *name*; a higher *version* gives a higher stamp."""
    return Entry(
        name=name,
        kind=kind,
        uri=None if kind is Kind.GROUP else f"PYRO://127.0.0.1:7766/{name}.{version}",
        meta=meta if meta is not None else {"v": version},
        created=1_700_000_000.25,
        modified=1_700_000_000.5 + version,
        owner="0123456789abcdef",
        stamp=Stamp(BASE_HLC + version, "0123456789abcdef"),
        deleted=deleted,
    )


@attrs.define
class Backend:
    """Makes storages of one kind that all see the same store (a restartable node)."""

    kind: str
    directory: Path
    volume: MemoryVolume = attrs.field(factory=MemoryVolume)

    def create(self) -> Storage:
        if self.kind == "memory":
            return MemoryStorage(self.volume)
        return SqliteStorage(self.directory)

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[tuple[Storage, Loaded]]:
        async with self.create().running() as storage:
            loaded = await storage.open()
            yield storage, loaded
