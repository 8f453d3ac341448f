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

File layout: :data:`MAGIC`, then a header line ``<length> <crc32>\\n`` of the payload,
then the payload: ``marshal.dumps((meta, columns), 4)``, where *meta* is a dict (see
:class:`Snapshot`) and *columns* one list per stored column (``seq`` first, then the
fields of :meth:`pairns.namespace.entry.Entry.to_row`, with ``hlc`` as an int).
"""

from __future__ import annotations

import marshal
import math
import operator
import zlib
from sys import intern
from typing import Any

import attrs

__all__ = ["COLUMNS", "MAGIC", "Snapshot", "SnapshotError", "decode", "encode"]

#: The first bytes of a snapshot file (the ``1`` is the format's version).
MAGIC = b"pairns-snapshot 1\n"
#: Columns per snapshot: ``seq`` and the ten fields of a stored row.
COLUMNS = 11
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
    meta = {"node_id": snapshot.node_id, "token": snapshot.token, "last_seq": snapshot.last_seq}
    payload = marshal.dumps((meta, tuple(columns)), _MARSHAL_VERSION)
    header = b"%d %d\n" % (len(payload), zlib.crc32(payload))
    return MAGIC + header + payload


def decode(data: bytes) -> Snapshot:
    """The snapshot held by *data* (raises :class:`SnapshotError`).

    Checks the framing, the checksum and the shape (every column as long as the
    ``seq`` column, the ``seq`` values increasing and at most ``last_seq``); the
    values themselves are checked when entries are made of them.
    """
    if not data.startswith(MAGIC):
        raise SnapshotError("not a pairns snapshot, or another version of the format")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise SnapshotError("damaged snapshot header")
    try:
        length_text, crc_text = data[len(MAGIC) : end].split(b" ")
        length, crc = int(length_text), int(crc_text)
    except ValueError:
        raise SnapshotError("damaged snapshot header") from None
    payload = memoryview(data)[end + 1 :]
    if len(payload) != length:
        raise SnapshotError(f"truncated snapshot ({len(payload)} of {length} bytes)")
    if zlib.crc32(payload) != crc:
        raise SnapshotError("snapshot checksum mismatch")
    try:
        meta, columns = marshal.loads(payload)
        node_id, token, last_seq = meta["node_id"], meta["token"], meta["last_seq"]
    except (EOFError, ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"unreadable snapshot ({exc})") from None
    if not (
        isinstance(node_id, str)
        and isinstance(token, str)
        and isinstance(last_seq, int)
        and isinstance(columns, tuple)
        and len(columns) == COLUMNS
        and all(isinstance(column, list) for column in columns)
    ):
        raise SnapshotError("snapshot of an unexpected shape")
    seqs = columns[0]
    if any(len(column) != len(seqs) for column in columns):
        raise SnapshotError("snapshot columns of different lengths")
    if not set(map(type, seqs)) <= {int}:
        raise SnapshotError("snapshot with a seq that is not an int")
    if seqs:
        if not all(map(operator.lt, seqs, seqs[1:])):
            raise SnapshotError("snapshot rows out of order")
        if seqs[0] < 1 or seqs[-1] > last_seq:
            raise SnapshotError("snapshot rows outside its range")
    return Snapshot(node_id=node_id, token=token, last_seq=last_seq, columns=columns)
