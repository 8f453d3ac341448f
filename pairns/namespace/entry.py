"""The namespace's unit of state: one :class:`Entry` per name, groups and objects alike.

An entry is a frozen value. Changing a name means making a new entry with a higher
stamp; deleting it leaves a tombstone (``deleted=True``) so that the deletion can win a
merge against an older version held by the twin.
"""

from __future__ import annotations

import enum
import json
from sys import intern
from typing import Any

import attrs

from pairns.namespace.stamps import Stamp, make_stamp


class Kind(enum.IntEnum):
    """What a name denotes. The values are Pyro 3's ``list()`` codes."""

    GROUP = 0
    OBJECT = 1


#: ``Kind`` by its integer value, for the fast path of :meth:`Entry.from_row`.
_KINDS = (Kind.GROUP, Kind.OBJECT)


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

    @property
    def is_group(self) -> bool:
        """True for groups (live or deleted)."""
        return self.kind is Kind.GROUP

    def to_row(self) -> tuple[str, int, str | None, str, float, float, str, int, str, int]:
        """The storage row: meta as JSON text, the stamp split in two columns."""
        return (
            self.name,
            int(self.kind),
            self.uri,
            json.dumps(self.meta, separators=(",", ":")),
            self.created,
            self.modified,
            self.owner,
            self.stamp.hlc,
            self.stamp.node,
            1 if self.deleted else 0,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> Entry:
        """Build an entry from a row made by :meth:`to_row` (raises ``ValueError``)."""
        # Runs once per stored name at start-up: positional arguments, a tuple lookup
        # for the kind and no JSON parse for the common null metadata.
        name, kind, uri, meta, created, modified, owner, hlc, node, deleted = row
        try:
            kind_value = _KINDS[kind]
        except (IndexError, TypeError):
            raise ValueError(f"invalid entry kind in row: {kind!r}") from None
        return make_entry(
            name,
            kind_value,
            uri,
            None if meta == "null" else json.loads(meta),
            float(created),
            float(modified),
            # A handful of node ids own every entry: share one string for each
            # instead of keeping one copy per stored row (about 130 bytes a name).
            intern(owner),
            make_stamp(int(hlc), intern(node)),
            bool(deleted),
        )

    def to_wire(self) -> list[Any]:
        """The JSON form used on the peer link and in dumps."""
        return [
            self.name,
            int(self.kind),
            self.uri,
            self.meta,
            self.created,
            self.modified,
            self.owner,
            self.stamp.hlc,
            self.stamp.node,
            self.deleted,
        ]

    @classmethod
    def from_wire(cls, value: Any) -> Entry:
        """Parse the JSON form made by :meth:`to_wire` (raises ``ValueError``)."""
        if not isinstance(value, list) or len(value) != 10:
            raise ValueError(f"invalid entry: {value!r}")
        name, kind, uri, meta, created, modified, owner, hlc, node, deleted = value
        if not isinstance(name, str) or not isinstance(owner, str):
            raise ValueError(f"invalid entry: {value!r}")
        if uri is not None and not isinstance(uri, str):
            raise ValueError(f"invalid entry uri: {value!r}")
        return cls(
            name=name,
            kind=Kind(kind),
            uri=uri,
            meta=meta,
            created=float(created),
            modified=float(modified),
            owner=owner,
            stamp=Stamp.from_wire([hlc, node]),
            deleted=bool(deleted),
        )


_new_object = object.__new__
(
    _set_name,
    _set_kind,
    _set_uri,
    _set_meta,
    _set_created,
    _set_modified,
    _set_owner,
    _set_stamp,
    _set_deleted,
) = (vars(Entry)[field.name].__set__ for field in attrs.fields(Entry))


def make_entry(
    name: str,
    kind: Kind,
    uri: str | None,
    meta: Any,
    created: float,
    modified: float,
    owner: str,
    stamp: Stamp,
    deleted: bool,
) -> Entry:
    """``Entry(...)`` for bulk loads: about half the cost of the attrs constructor.

    The frozen constructor goes through ``object.__setattr__`` once per field; this sets
    the slots directly. No checks: the caller has them (start-up builds one entry per
    stored name).
    """
    entry = _new_object(Entry)
    _set_name(entry, name)
    _set_kind(entry, kind)
    _set_uri(entry, uri)
    _set_meta(entry, meta)
    _set_created(entry, created)
    _set_modified(entry, modified)
    _set_owner(entry, owner)
    _set_stamp(entry, stamp)
    _set_deleted(entry, deleted)
    return entry
