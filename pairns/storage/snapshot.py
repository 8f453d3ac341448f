"""The start-up snapshot: the stored rows up to some ``seq``, in one file, as columns.

Reading 100,000 rows back through SQLite costs about 0.4 s, nearly all of it in the
per-row, per-column work of the ``sqlite3`` module; the same values loaded with
:mod:`marshal` from one buffer take about 0.1 s. So on a clean close (see
:mod:`pairns.storage.sqlite`) the rows are also written to ``pairns.snapshot``, and
the next open reads that file plus the rows committed after it.

The snapshot is a cache, never the truth. Rows are never changed in place: a change
to a name inserts a new row with a higher ``seq`` and deletes the old one. So the rows
of a snapshot taken at ``last_seq`` are still the database's rows up to ``last_seq``,
minus those a later row replaced; the database can tell which, and the opener checks
that the count and the sum of those ``seq`` values agree with the database before it
trusts the file. A random ``token`` kept both here and in the database ties a file to
the database it was taken from (a copy of another database, or an old file left
behind, does not match). Anything that does not check out - a torn or foreign file,
another format, a database changed behind the file's back - is ignored, with a
warning, and the rows are read from the database instead.

Sans-IO: this module turns columns into bytes and back; the storage reads and writes
the file.

File layout: :data:`MAGIC`, then a header line ``<length> <crc32> <meta length>\\n``
(of the payload), then the payload: marshal objects (version 4) one after the other -
a *meta* dict (see :class:`Snapshot`, plus ``count``, the number of rows, and
``chunks``, the byte length of each chunk), then the rows in chunks of at most
:data:`CHUNK_ROWS`, each a tuple of one list per stored column (``seq`` first, then
the fields of :meth:`pairns.namespace.entry.Entry.to_row`, with ``hlc`` as an int).
A reader turns one chunk into entries before it loads the next, so the columns of
every row are never alive at once.
"""

from __future__ import annotations

import marshal
import math
import operator
import zlib
from collections.abc import Iterator
from sys import intern
from typing import Any

import attrs

__all__ = [
    "CHUNK_ROWS",
    "COLUMNS",
    "MAGIC",
    "Reader",
    "Snapshot",
    "SnapshotError",
    "decode",
    "encode",
    "open_snapshot",
]

#: The first bytes of a snapshot file (the ``2`` is the format's version).
MAGIC = b"pairns-snapshot 2\n"
#: Columns per snapshot: ``seq`` and the ten fields of a stored row.
COLUMNS = 11
#: Rows per chunk of the file.
CHUNK_ROWS = 8192
_MARSHAL_VERSION = 4
_MAX_HEADER = 64


# Column positions (``seq`` first, then the fields of ``Entry.to_row``).
_META, _CREATED, _MODIFIED, _OWNER, _NODE = 4, 5, 6, 7, 9
_NULL = "null"


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version of pairns wrote, or are damaged."""


@attrs.frozen
class Snapshot:
    """The rows with ``seq <= last_seq`` of the database *node_id*, as columns.

    *token* is the random id also stored in that database when the file was written.
    """

    node_id: str
    token: str
    last_seq: int
    columns: tuple[list[Any], ...] = attrs.field(repr=False)

    @property
    def count(self) -> int:
        """How many rows the snapshot holds."""
        return len(self.columns[0])


def encode(snapshot: Snapshot) -> bytes:
    """The file's bytes for *snapshot*.

    Values that repeat are made one object before they are written - the owner and
    node ids (interned), ``"null"`` metadata, a ``modified`` time equal to
    ``created`` - so that marshal writes them once and :func:`decode` gives back one
    shared object: no per-row copies to allocate and free at start-up, and the
    times stay shared by the entries made from them (24 bytes a name).
    """
    columns = list(snapshot.columns)
    if len(columns) == COLUMNS:
        columns[_META] = [_NULL if value == _NULL else value for value in columns[_META]]
        columns[_MODIFIED] = [
            created
            if modified == created
            and type(modified) is float
            and type(created) is float
            and (modified or math.copysign(1.0, modified) == math.copysign(1.0, created))
            else modified
            for created, modified in zip(columns[_CREATED], columns[_MODIFIED], strict=True)
        ]
        for index in (_OWNER, _NODE):
            columns[index] = [intern(v) if type(v) is str else v for v in columns[index]]
    count = len(columns[0]) if columns else 0
    meta: dict[str, Any] = {
        "node_id": snapshot.node_id,
        "token": snapshot.token,
        "last_seq": snapshot.last_seq,
        "count": count,
    }
    chunks = [
        marshal.dumps(
            tuple(column[start : start + CHUNK_ROWS] for column in columns), _MARSHAL_VERSION
        )
        for start in range(0, count, CHUNK_ROWS)
    ]
    meta["chunks"] = list(map(len, chunks))
    head = marshal.dumps(meta, _MARSHAL_VERSION)
    payload = b"".join([head, *chunks])
    header = b"%d %d %d\n" % (len(payload), zlib.crc32(payload), len(head))
    return MAGIC + header + payload


def decode(data: bytes) -> Snapshot:
    """The snapshot held by *data*, every chunk loaded (raises :class:`SnapshotError`)."""
    reader = open_snapshot(data)
    columns: tuple[list[Any], ...] = tuple([] for _ in range(COLUMNS))
    for chunk in reader.chunks():
        for column, values in zip(columns, chunk, strict=True):
            column.extend(values)
    return Snapshot(
        node_id=reader.node_id, token=reader.token, last_seq=reader.last_seq, columns=columns
    )


def open_snapshot(data: bytes | memoryview) -> Reader:
    """A :class:`Reader` of *data* (a buffer: the storage maps the file, so that no
    heap block of its size is made and freed): the framing, the checksum and the meta
    checked (raises :class:`SnapshotError`); the rows are loaded by
    :meth:`Reader.chunks`, which reads *data* until it ends."""
    data = memoryview(data)
    if data[: len(MAGIC)] != MAGIC:
        raise SnapshotError("not a pairns snapshot, or another version of the format")
    end = bytes(data[len(MAGIC) : len(MAGIC) + _MAX_HEADER]).find(b"\n")
    if end < 0:
        raise SnapshotError("damaged snapshot header")
    end += len(MAGIC)
    try:
        length_text, crc_text, head_text = bytes(data[len(MAGIC) : end]).split(b" ")
        length, crc, head = int(length_text), int(crc_text), int(head_text)
    except ValueError:
        raise SnapshotError("damaged snapshot header") from None
    payload = data[end + 1 :]
    if len(payload) != length:
        raise SnapshotError(f"truncated snapshot ({len(payload)} of {length} bytes)")
    if zlib.crc32(payload) != crc:
        raise SnapshotError("snapshot checksum mismatch")
    try:
        meta = marshal.loads(payload[:head])
        node_id, token = meta["node_id"], meta["token"]
        last_seq, count, sizes = meta["last_seq"], meta["count"], meta["chunks"]
    except (EOFError, ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"unreadable snapshot ({exc})") from None
    if not (
        isinstance(node_id, str)
        and isinstance(token, str)
        and type(last_seq) is int
        and type(count) is int
        and count >= 0
        and type(sizes) is list
        and set(map(type, sizes)) <= {int}
        and all(size > 0 for size in sizes)
        and head + sum(sizes) == length
    ):
        raise SnapshotError("snapshot of an unexpected shape")
    return Reader(
        node_id=node_id,
        token=token,
        last_seq=last_seq,
        count=count,
        payload=payload[head:],
        sizes=sizes,
    )


@attrs.define
class Reader:
    """A snapshot file's meta, and its rows one chunk at a time (:meth:`chunks`)."""

    node_id: str
    token: str
    last_seq: int
    #: How many rows the file holds.
    count: int
    _payload: memoryview = attrs.field(alias="payload", repr=False)
    _sizes: list[int] = attrs.field(alias="sizes", repr=False)

    def chunks(self) -> Iterator[tuple[list[Any], ...]]:
        """The rows, a tuple of columns per chunk; each chunk checked for its shape
        (every column as long as the ``seq`` column, ``seq`` increasing across the
        whole file, at least 1 and at most ``last_seq``) before it is yielded. Raises
        :class:`SnapshotError` at the first fault (chunks already yielded were fine)."""
        payload, last_seq = self._payload, self.last_seq
        previous = 0
        seen = 0
        offset = 0
        for size in self._sizes:
            try:
                chunk = marshal.loads(payload[offset : offset + size])
            except (EOFError, ValueError, TypeError) as exc:
                raise SnapshotError(f"unreadable snapshot ({exc})") from None
            offset += size
            if not (
                isinstance(chunk, tuple)
                and len(chunk) == COLUMNS
                and all(type(column) is list for column in chunk)
            ):
                raise SnapshotError("snapshot of an unexpected shape")
            seqs = chunk[0]
            if not seqs or any(len(column) != len(seqs) for column in chunk):
                raise SnapshotError("snapshot columns of different lengths")
            if not set(map(type, seqs)) <= {int}:
                raise SnapshotError("snapshot with a seq that is not an int")
            if seqs[0] < 1 or seqs[-1] > last_seq:
                raise SnapshotError("snapshot rows outside its range")
            if seqs[0] <= previous or not all(map(operator.lt, seqs, seqs[1:])):
                raise SnapshotError("snapshot rows out of order")
            previous = seqs[-1]
            seen += len(seqs)
            yield chunk
        if seen != self.count:
            raise SnapshotError(f"snapshot holds other than its {self.count} rows")
