"""The namespace's unit of state: one :class:`Entry` per name, groups and objects alike.

An entry is a frozen value. Changing a name means making a new entry with a higher
stamp; deleting it leaves a tombstone (``deleted=True``) so that the deletion can win a
merge against an older version held by the twin.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from sys import intern
from typing import Any

import attrs

from pairns.namespace._slots import column_builder
from pairns.namespace.fields import (
    get_created,
    get_deleted,
    get_hlc,
    get_kind,
    get_meta,
    get_modified,
    get_name,
    get_node,
    get_owner,
    get_stamp,
    get_uri,
)
from pairns.namespace.stamps import Stamp, make_stamps


class Kind(enum.IntEnum):
    """What a name denotes. The values are Pyro 3's ``list()`` codes."""

    GROUP = 0
    OBJECT = 1


@attrs.frozen(slots=True)
class Entry:
    """One name in the namespace, or the tombstone of one.

    ``meta`` is the user metadata (any JSON value); ``created``/``modified`` are wall
    clock seconds and ``owner`` the id of the node that made the entry - together the
    system metadata. ``uri`` is set for objects only.
    """

    name: str
    kind: Kind
    uri: str | None
    meta: Any
    created: float
    modified: float
    owner: str
    stamp: Stamp
    deleted: bool = False

    def to_row(self) -> tuple[str, int, str | None, str, float, float, str, str, str, int]:
        """The storage row: meta as JSON text, the stamp split in two columns (the HLC as
        decimal text, which SQLite keeps exact at any size)."""
        meta = self.meta
        stamp = self.stamp
        return (
            self.name,
            int(self.kind),
            self.uri,
            "null" if meta is None else json.dumps(meta, separators=(",", ":")),
            self.created,
            self.modified,
            self.owner,
            str(stamp.hlc),
            stamp.node,
            1 if self.deleted else 0,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> Entry:
        """Build an entry from a row made by :meth:`to_row` (raises ``ValueError``).

        One row through :func:`entries_from_rows`, the one decoder of stored rows.
        """
        return entries_from_rows([row])[0]


#: ``make_entries(names, kinds, uris, metas, created, modified, owners, stamps,
#: deleted) -> list[Entry]``: many entries at once, one list per field (see
#: :mod:`pairns.namespace._slots`); what a peer batch is decoded with.
make_entries = column_builder(
    Entry,
    [
        [":a", ":a.b"],
        [Kind.GROUP, Kind.OBJECT],
        [None, "PYRO://h:1/x"],
        [None, {"k": [1]}],
        [1.0, 2.5],
        [1.5, 2.5],
        ["n1", "n2"],
        [Stamp(1, "n1"), Stamp(2, "n2")],
        [False, True],
    ],
)


_KIND_OF_CODE = {0: Kind.GROUP, 1: Kind.OBJECT}
_NULL_TEXT = "null"
#: How many values :meth:`Entry.to_row` makes.
_ROW_FIELDS = 10


def entries_from_rows(rows: Sequence[Sequence[Any]]) -> list[Entry]:
    """:meth:`Entry.from_row` for many rows at once (raises ``ValueError``)."""
    if not rows:
        return []
    try:
        columns = list(zip(*rows, strict=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid entry in the stored rows: {exc!r}") from None
    if len(columns) != _ROW_FIELDS:
        raise ValueError(f"invalid entry in the stored rows: {len(columns)} columns")
    return entries_from_columns(*columns)


def entries_to_columns(entries: Sequence[Entry]) -> list[list[Any]]:
    """:meth:`Entry.to_row` for many entries at once, one list per row field, except
    that the HLC stays an int (what :func:`entries_from_columns` takes back)."""
    stamps = list(map(get_stamp, entries))
    return [
        list(map(get_name, entries)),
        list(map(int, map(get_kind, entries))),
        list(map(get_uri, entries)),
        [
            _NULL_TEXT if meta is None else json.dumps(meta, separators=(",", ":"))
            for meta in map(get_meta, entries)
        ],
        list(map(get_created, entries)),
        list(map(get_modified, entries)),
        list(map(get_owner, entries)),
        list(map(get_hlc, stamps)),
        list(map(get_node, stamps)),
        list(map(int, map(get_deleted, entries))),
    ]


def entries_from_columns(
    names: Sequence[Any],
    kinds: Sequence[Any],
    uris: Sequence[Any],
    metas: Sequence[Any],
    created: Sequence[Any],
    modified: Sequence[Any],
    owners: Sequence[Any],
    hlcs: Sequence[Any],
    nodes: Sequence[Any],
    deleted: Sequence[Any],
) -> list[Entry]:
    """:func:`entries_from_rows` for rows already split in columns, one sequence per
    :meth:`Entry.to_row` field (raises ``ValueError``).

    Start-up loads every stored name through here: one pass per column in C
    (``map``) instead of one Python call per row, and the entries and stamps built
    column by column (:data:`make_entries`).
    """
    try:
        kind_values = list(map(_KIND_OF_CODE.__getitem__, kinds))
    except (KeyError, TypeError):
        bad = next(k for k in kinds if k not in _KIND_OF_CODE)
        raise ValueError(f"invalid entry kind in the stored rows: {bad!r}") from None
    try:
        meta_values = [None if meta == "null" else json.loads(meta) for meta in metas]
        # A handful of node ids own every entry: share one string for each instead of
        # keeping one copy per stored row (about 130 bytes a name).
        stamps = make_stamps(list(map(int, hlcs)), list(map(intern, nodes)))
        return make_entries(
            names,
            kind_values,
            uris,
            meta_values,
            list(map(float, created)),
            list(map(float, modified)),
            list(map(intern, owners)),
            stamps,
            list(map(bool, deleted)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid entry in the stored rows: {exc!r}") from None
