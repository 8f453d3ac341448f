"""What operations and merges hand back: :class:`ChangeSet` and :class:`Conflict`."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from pairns.namespace.entry import Entry
from pairns.namespace.stamps import Stamp

__all__ = ["ChangeSet", "Conflict"]


@attrs.define(eq=False)
class ChangeSet:
    """The entries one operation (or one merge batch) wrote, as a unit.

    ``entries[i]`` got sequence number ``seqs[i]`` and replaced ``previous[i]`` (``None``
    if the name had no entry), whose sequence number was ``previous_seqs[i]``.
    ``seen[i]`` is the replication knowledge of ``entries[i]`` (see
    :meth:`Namespace.merge`). Iterating yields the new entries; :attr:`rows` gives what
    :meth:`pairns.storage.Storage.commit` takes. Undo it with :meth:`Namespace.undo`.

    ``lost_to`` (merges only) lists the change sets, still in flight when this merge
    ran, whose entries beat a remote entry of the merge: that remote entry was not
    applied. Should one of them be undone (its commit failed), the remote entry is
    missing here and must be merged again: whoever acknowledges the merge checks
    ``undone`` on each of them once they are settled.
    """

    entries: list[Entry] = attrs.field(factory=list)
    seqs: list[int] = attrs.field(factory=list)
    previous: list[Entry | None] = attrs.field(factory=list)
    previous_seqs: list[int] = attrs.field(factory=list)
    previous_seen: list[Stamp | None] = attrs.field(factory=list)
    seen: list[Stamp] = attrs.field(factory=list)
    undone: bool = False
    lost_to: list[ChangeSet] = attrs.field(factory=list)

    @property
    def rows(self) -> list[tuple[int, Entry]]:
        """``(seq, entry)`` for every new entry, in the order they were applied."""
        return list(zip(self.seqs, self.entries, strict=True))

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@attrs.frozen
class Conflict:
    """Something a merge decided that an operator may want to see (both versions).

    ``kind`` is ``"version"``, ``"hidden"`` or ``"revived"`` (see the module docs);
    ``name`` is the name concerned, ``winner`` the entry that decided it (the merged
    remote entry), ``loser`` the entry that lost or was hidden.
    """

    kind: str
    name: str
    winner: Entry
    loser: Entry
