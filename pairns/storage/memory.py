"""The in-memory backend: nothing outlives the process.

Used when the node runs without a data directory, and by tests. A
:class:`MemoryVolume` plays the part of the disk: by default each storage gets a fresh
one (so a fresh node id), but a test may hand the same volume to a second storage to
simulate a node restart within one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import trio

from pairns.namespace.entry import Entry
from pairns.storage.base import RESTORED_REQUESTS, Loaded, Storage, new_node_id

__all__ = ["MemoryStorage", "MemoryVolume"]


@attrs.define(eq=False)
class MemoryVolume:
    """What a :class:`MemoryStorage` keeps: one ``(seq, entry)`` per name, the request
    id stored with a name's row (if any), the request ids learnt from the twin, and
    kv."""

    node_id: str = attrs.field(factory=new_node_id)
    entries: dict[str, tuple[int, Entry]] = attrs.field(factory=dict)
    request_ids: dict[str, str] = attrs.field(factory=dict)
    #: ``(request id, applied at)`` learnt from the twin, oldest first (bounded).
    learnt: list[tuple[str, float]] = attrs.field(factory=list)
    kv: dict[str, str] = attrs.field(factory=dict)
    last_seq: int = 0


class MemoryStorage(Storage):
    """Storage that keeps everything in a :class:`MemoryVolume` (no disk)."""

    def __init__(self, volume: MemoryVolume | None = None) -> None:
        super().__init__()
        self.volume = volume if volume is not None else MemoryVolume()

    def describe(self) -> str:
        """Always ``"memory"``."""
        return "memory"

    async def _backend_open(self) -> Loaded:
        await trio.lowlevel.checkpoint()
        volume = self.volume
        rows = sorted(volume.entries.values(), key=_seq_of)
        requests = []
        for name, request_id in volume.request_ids.items():
            seq, entry = volume.entries[name]
            requests.append((request_id, seq, entry.modified))
        requests.sort(key=_seq_in_request)
        del requests[:-RESTORED_REQUESTS]
        requests[:0] = [(rid, 0, at) for rid, at in volume.learnt]
        return Loaded(
            node_id=volume.node_id,
            rows=rows,
            last_seq=volume.last_seq,
            kv=dict(volume.kv),
            requests=requests,
        )

    async def _backend_write(
        self,
        changes: list[Any],
        kv: dict[str, str],
        learnt: list[tuple[str, float]],
        drops: Sequence[tuple[str, int]] = (),
    ) -> int:
        # A checkpoint stands in for the disk write, so that commits arriving "during"
        # it queue up exactly as they do with a real backend.
        await trio.lowlevel.checkpoint()
        volume = self.volume
        entries, request_ids = volume.entries, volume.request_ids
        last = 0
        for seq, entry, request_id in changes:
            stored = entries.get(entry.name)
            if stored is not None and stored[0] > seq:
                continue  # a newer change to this name is stored already (see base)
            entries[entry.name] = (seq, entry)
            if request_id is None:
                request_ids.pop(entry.name, None)
            else:
                request_ids[entry.name] = request_id
            if seq > last:
                last = seq
        for name, seq in drops:
            stored = entries.get(name)
            if stored is not None and stored[0] == seq:
                del entries[name]
                request_ids.pop(name, None)
        volume.kv.update(kv)
        if learnt:
            volume.learnt.extend(learnt)
            del volume.learnt[:-RESTORED_REQUESTS]
        if last > volume.last_seq:
            volume.last_seq = last
        return last

    async def _backend_entries_since(self, seq: int, limit: int | None) -> list[tuple[int, Entry]]:
        await trio.lowlevel.checkpoint()
        rows = sorted((row for row in self.volume.entries.values() if row[0] > seq), key=_seq_of)
        return rows if limit is None else rows[:limit]

    async def _backend_close(self) -> None:
        await trio.lowlevel.checkpoint()


def _seq_of(row: tuple[int, Entry]) -> int:
    return row[0]


def _seq_in_request(request: tuple[str, int, float]) -> int:
    return request[1]
