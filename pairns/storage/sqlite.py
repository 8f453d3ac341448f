"""The persistent backend: one SQLite database per data directory.

``<dir>/pairns.sqlite3`` in WAL mode with ``synchronous=FULL``: a transaction is on
disk (WAL fsynced) when ``COMMIT`` returns, so an acknowledged change survives a
crash of the process or the machine. The state is the log compacted to one row per
name, keyed by the change's ``seq``, which also answers
:meth:`Storage.entries_since` from disk.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`, ``PRAGMA application_id`` =
:data:`APPLICATION_ID` so that another program's database is never mistaken for
ours or rewritten)::

    entries(seq PK, name, kind, uri, meta, created, modified, owner, hlc, node, deleted,
            request_id)  -- the client's id of the write, on the last row it made
    node(key PK, value)     -- node_id, opened, snapshot (and last_seq in version 1 files)
    kv(key PK, value)       -- Storage.set_kv
    learnt(request_id, at)  -- request ids of the twin's writes (version 3), by arrival

Why the key is ``seq`` and not ``name``: every change gets a higher ``seq`` than any
before it, so a transaction of new names appends to the rightmost page of one
b-tree. Keyed by name (schema version 1, with an index on ``seq``), the same
transaction dirtied a leaf page per name plus the index: about twice the WAL bytes
and twice the CPU per commit. There is no index on ``name``: the storage keeps
``name -> seq`` of the rows on disk in memory (built at open) and deletes a name's
old row by its ``seq`` when a change replaces it. A version 1 file is upgraded in
one transaction at open (logged); the highest ``seq`` is the last one committed,
since the row holding it is never replaced.

Next to the database, ``pairns.snapshot`` holds the rows as of some ``seq``, written at
a clean close when enough rows changed (:data:`SNAPSHOT_AFTER`); open reads it and the
rows after it, which is about three times faster than reading every row from SQLite.
The database names the file it trusts (``node.snapshot``, a random token) and open
checks the file against the rows before using it; see :mod:`pairns.storage.snapshot`.

``hlc`` is stored as decimal TEXT (older databases hold microsecond stamps, which are
larger than SQLite's signed 64-bit INTEGER; TEXT keeps any value exact).

Threads: commits run in the storage's committer thread (``WRITES_IN_THREAD``, see
:mod:`pairns.storage.base`), which goes from one transaction straight to the next; a
commit is never abandoned half-way. Opening, closing and reads use ``to_thread``.
There is one write connection, opened with ``check_same_thread=False``: open runs
before the committer thread starts and close after it has exited, so one thread at a
time touches it. Reads
(``entries_since``, integrity checks) use a second, query-only connection, serialised
by a ``trio.Lock``; in WAL mode it reads the last committed state without ever
blocking the writer.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import mmap
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

import trio

from pairns import _collector as collector
from pairns.errors import StorageError
from pairns.namespace.entry import (
    Entry,
    entries_from_columns,
    entries_from_rows,
    entries_to_columns,
)
from pairns.namespace.fields import get_name
from pairns.storage import snapshot
from pairns.storage.base import RESTORED_REQUESTS, Loaded, Storage, new_node_id
from pairns.storage.lock import DirectoryLock, os_reason

log = logging.getLogger("pairns.storage")

_first = operator.itemgetter(0)

__all__ = [
    "APPLICATION_ID",
    "DB_NAME",
    "RESTORE_HINT",
    "SCHEMA_VERSION",
    "Connect",
    "SqliteStorage",
    "connect",
    "integrity_check",
]

DB_NAME = "pairns.sqlite3"
#: The start-up snapshot (see :mod:`pairns.storage.snapshot`), next to the database.
SNAPSHOT_NAME = "pairns.snapshot"
#: A clean close writes a new snapshot when at least this many rows were read from
#: the database at open or written since (below it, reading the rows costs little).
SNAPSHOT_AFTER = 5_000
#: The ``node`` row naming the snapshot file that belongs to the database.
_SNAPSHOT_KEY = "snapshot"
#: Bumped on every incompatible change of the tables below. A file with a higher
#: version was written by a newer pairns and is refused, never rewritten.
SCHEMA_VERSION = 3
#: Older versions :meth:`_Database.open` upgrades in place (one transaction).
_UPGRADABLE = frozenset({1, 2})
#: ``PRAGMA application_id``: ASCII "pNS1".
APPLICATION_ID = 0x704E5331
RESTORE_HINT = "move the file away and load a dump with `pairns-ctl load FILE`"

#: 16 MiB of page cache (negative = KiB): the entries b-tree of 100,000 names
#: (~18 MB) mostly stays cached, so replacing a row rarely reads from disk.
_CACHE_KIB = 16 * 1024

_BUSY_TIMEOUT_MS = 5000

#: ``PRAGMA auto_vacuum`` of a database that can shrink (new files are made so).
_AUTO_VACUUM_INCREMENTAL = 2
#: Free pages (4 KiB each) that make a batch of deletions give some back, and how many
#: one step gives back: a step is a short write of its own, after the commit.
_VACUUM_FREE_PAGES = 256
_VACUUM_STEP_PAGES = 1024

_ENTRIES = """CREATE TABLE {table} (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        uri TEXT,
        meta TEXT NOT NULL,
        created REAL NOT NULL,
        modified REAL NOT NULL,
        owner TEXT NOT NULL,
        hlc TEXT NOT NULL,
        node TEXT NOT NULL,
        deleted INTEGER NOT NULL,
        request_id TEXT
    )"""
#: Request ids learnt from the twin, in arrival order (the rowid): only the latest
#: RESTORED_REQUESTS are kept, and a range delete on the rowid trims the rest.
_LEARNT = "CREATE TABLE learnt (request_id TEXT NOT NULL, at REAL NOT NULL)"
_SCHEMA = (
    _ENTRIES.format(table="entries"),
    "CREATE TABLE node (key TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID",
    "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID",
    _LEARNT,
)
_COLUMNS = "seq, name, kind, uri, meta, created, modified, owner, hlc, node, deleted"
#: What a stored row holds beyond the entry: the request id of the write (or NULL).
_ROW_COLUMNS = f"{_COLUMNS}, request_id"
_SELECT = f"SELECT {_COLUMNS} FROM entries"
_SELECT_AFTER = f"{_SELECT} WHERE seq > ? ORDER BY seq"
_COUNT_UPTO = "SELECT count(*), ifnull(sum(seq), 0) FROM entries WHERE seq <= ?"
_SEQS_UPTO = "SELECT seq FROM entries WHERE seq <= ?"
#: The request ids of the latest writes, newest first (see ``Loaded.requests``).
_SELECT_REQUESTS = (
    "SELECT request_id, seq, modified FROM entries WHERE request_id IS NOT NULL "
    f"ORDER BY seq DESC LIMIT {RESTORED_REQUESTS}"
)
_SELECT_LEARNT = f"SELECT request_id, at FROM learnt ORDER BY rowid DESC LIMIT {RESTORED_REQUESTS}"
_INSERT_LEARNT = "INSERT INTO learnt (request_id, at) VALUES (?, ?)"
_TRIM_LEARNT = (
    f"DELETE FROM learnt WHERE rowid <= (SELECT max(rowid) FROM learnt) - {RESTORED_REQUESTS}"
)
#: Version 1 -> 2: the same rows in a table keyed by seq (the old one and its index go).
_UPGRADE_FROM_1 = (
    _ENTRIES.format(table="entries_v2"),
    f"INSERT INTO entries_v2 ({_COLUMNS}) SELECT {_COLUMNS} FROM entries ORDER BY seq",
    "DROP TABLE entries",
    "ALTER TABLE entries_v2 RENAME TO entries",
)
#: Version 2 -> 3: the table of request ids learnt from the twin.
_UPGRADE_FROM_2 = (_LEARNT,)
#: What brings an older file to :data:`SCHEMA_VERSION`, by its version.
_UPGRADES = {1: _UPGRADE_FROM_1 + _UPGRADE_FROM_2, 2: _UPGRADE_FROM_2}

#: Rows turned into entries at a time when a database is opened.
_LOAD_CHUNK = 8192

#: A prepared change: the row in ``_ROW_COLUMNS`` order.
_Row = tuple[int, str, int, "str | None", str, float, float, str, str, str, int, "str | None"]

_N_COLUMNS = len(_ROW_COLUMNS.split(","))
_ROW_PLACEHOLDERS = "(" + ",".join("?" * _N_COLUMNS) + ")"


class _Statements:
    """Multi-row statements by row count: one statement (one step, one release of the
    GIL) writes a whole batch, where ``executemany`` makes a step per row."""

    def __init__(self, max_variables: int) -> None:
        #: Rows per INSERT, and seqs per DELETE, within SQLite's variable limit.
        self.insert_rows = max(1, min(256, max_variables // _N_COLUMNS))
        self.delete_seqs = max(1, min(2048, max_variables))
        self._insert: dict[int, str] = {}
        self._delete: dict[int, str] = {}

    def insert(self, rows: int) -> str:
        sql = self._insert.get(rows)
        if sql is None:
            values = ",".join([_ROW_PLACEHOLDERS] * rows)
            sql = self._insert[rows] = f"INSERT INTO entries ({_ROW_COLUMNS}) VALUES {values}"
        return sql

    def delete(self, seqs: int) -> str:
        sql = self._delete.get(seqs)
        if sql is None:
            marks = ",".join("?" * seqs)
            sql = self._delete[seqs] = f"DELETE FROM entries WHERE seq IN ({marks})"
        return sql


class Connect(Protocol):
    """How a :class:`SqliteStorage` opens its connections to the database file.

    :func:`connect` unless the storage was given another: one that wraps or adjusts
    the connections :func:`connect` makes (tests inject faults and lower SQLite's
    limits this way). It is called from worker threads.
    """

    def __call__(self, path: str, *, read_only: bool = False) -> sqlite3.Connection:
        """A connection to *path* in autocommit mode (``mode=ro`` if *read_only*)."""
        ...


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit), usable from
    any thread (the storage uses each from one thread at a time)."""
    if read_only:
        return sqlite3.connect(
            f"file:{quote(path)}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _classify(exc: sqlite3.Error) -> tuple[str, bool]:
    """A short label for an SQLite error, and whether it means a corrupt file."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    text = str(exc).lower()
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
        "malformed" in text or "not a database" in text
    ):
        return "corrupt", True
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "read-only", False
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "disk full", False
    if name.startswith("SQLITE_IOERR") or "i/o error" in text:
        return "I/O error", False
    if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")):
        return "permission denied", False
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return "cannot open", False
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "locked", False
    return "database error", False


def _error(action: str, exc: sqlite3.Error, path: str) -> StorageError:
    label, corrupt = _classify(exc)
    message = f"{action} ({label}: {exc}): {path}"
    if corrupt:
        message += f"; {RESTORE_HINT}"
    return StorageError(message)


class _QuickCheck:
    """``PRAGMA quick_check(1)`` of a database file, on its own connection and thread."""

    def __init__(self, path: str, connect: Connect) -> None:
        self._path = path
        self._connect = connect
        self._outcome: str | BaseException = "not run"
        self._thread = threading.Thread(target=self._run, name="pairns-quick-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = self._connect(self._path)
            try:
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA query_only=ON")
                self._outcome = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
            finally:
                conn.close()
        except BaseException as exc:  # handed to the opener by result()
            self._outcome = exc

    def wait(self) -> None:
        """Wait for the check to end."""
        self._thread.join()

    def result(self) -> str:
        """``"ok"`` or the first problem found; raises what the check raised."""
        self.wait()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


class _Database:
    """The blocking half: every method runs in a worker thread, one at a time."""

    def __init__(self, directory: str, connect: Connect) -> None:
        self.directory = directory
        self.path = os.path.join(directory, DB_NAME)
        self._connect = connect
        self._lock = DirectoryLock(directory)
        self._conn: Any = None  # sqlite3.Connection, or what the connect function wraps
        self._reader: sqlite3.Connection | None = None
        #: ``name -> seq`` of every row on disk: a change replacing a name deletes
        #: the old row by its key (there is no index on name).
        self._seq_of: dict[str, int] = {}
        self._statements = _Statements(999)
        self._node_id: str | None = None  # set once open has succeeded
        self._check: _QuickCheck | None = None
        #: Rows a snapshot written now would hold that the last one did not.
        self.rows_since_snapshot = 0
        #: The highest seq written (kept in ``node.last_seq`` when rows are collected).
        self._last_seq = 0
        #: The token of the snapshot the open used (and checked), if it used one.
        self._snapshot_token: str | None = None

    # ---------------------------------------------------------------- opening

    def open(self) -> Loaded:
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise StorageError(f"storage path is not a directory: {self.directory}")
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create storage directory ({os_reason(exc)}): {self.directory}"
            ) from exc
        self._lock.acquire()
        try:
            return self._open_locked()
        except BaseException:
            self.close()
            raise

    def _open_locked(self) -> Loaded:
        created = False
        try:
            self._conn = conn = self._connect(self.path)
            # Only an offline reader (a pairns-ctl check, its WAL recovery) can hold a
            # lock, briefly; wait for it rather than fail.
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            created, version = self._check_schema(conn)
            if created:
                # Before WAL mode and the first table, or it does not take: collected
                # tombstones free pages, which a database in this mode can give back
                # (see _vacuum_some). An older file keeps reusing its free pages.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"cannot switch the database to WAL mode ({mode}): {self.path}")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._statements = _Statements(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
            if created:
                self._create_schema(conn)
                _fsync_directory(self.directory, self.path)
            else:
                # SQLite runs the check without the GIL: it overlaps the load (the
                # Python half of which holds the GIL), and nothing is written to the
                # file before it passed.
                self._check = _QuickCheck(self.path, self._connect)
                if version != SCHEMA_VERSION:
                    self._require_healthy()
                    self._upgrade(conn, version)
            try:
                loaded = self._load(conn)
            except BaseException:
                self._require_healthy()  # a corrupt file: say so, not what it broke
                raise
            self._require_healthy()
            # A write at every open: a read-only file or directory fails here, at
            # start, rather than on the first client's change.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR REPLACE INTO node (key, value) VALUES ('opened', ?)",
                (json.dumps({"pid": os.getpid(), "time": time.time()}),),
            )
            conn.execute("COMMIT")
            self._reader = self._connect(self.path)
            self._reader.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            raise _error("cannot open database", exc, self.path) from exc
        except ValueError as exc:  # entries_from_rows on a row that is not an entry
            raise StorageError(
                f"database file holds an invalid entry ({exc}): {self.path}; {RESTORE_HINT}"
            ) from exc
        self._node_id = loaded.node_id
        return loaded

    def _require_healthy(self) -> None:
        """Wait for the open's ``quick_check`` (if one runs); raise if it failed."""
        check, self._check = self._check, None
        if check is None:
            return
        problem = check.result()
        if problem != "ok":
            raise StorageError(f"database file is corrupt ({problem}): {self.path}; {RESTORE_HINT}")

    def _check_schema(self, conn: sqlite3.Connection) -> tuple[bool, int]:
        """Refuse files that are not (or not yet) ours; (is the file new, its version).

        Only reads: nothing is written to a file before it is known to be ours.
        """
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0 and version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if tables == 0:
                return True, 0
        if app_id != APPLICATION_ID:
            raise StorageError(
                f"not a pairns database (application_id {app_id:#x}): {self.path}; {RESTORE_HINT}"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {version} is newer than this pairns supports "
                f"({SCHEMA_VERSION}); upgrade pairns, or {RESTORE_HINT}: {self.path}"
            )
        if version != SCHEMA_VERSION and version not in _UPGRADABLE:
            raise StorageError(
                f"unknown database schema version {version} (expected {SCHEMA_VERSION}): "
                f"{self.path}; {RESTORE_HINT}"
            )
        return False, version

    def _upgrade(self, conn: sqlite3.Connection, version: int) -> None:
        """Bring an older file to the current schema, all or nothing."""
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _UPGRADES[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        log.warning(
            "upgraded the database schema from version %d to %d in %.2f s: %s",
            version,
            SCHEMA_VERSION,
            time.perf_counter() - started,
            self.path,
        )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO node (key, value) VALUES ('node_id', ?)", (new_node_id(),))
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _load(self, conn: sqlite3.Connection) -> Loaded:
        node = dict(conn.execute("SELECT key, value FROM node").fetchall())
        node_id = node.get("node_id")
        if not isinstance(node_id, str) or not node_id:
            raise StorageError(f"database has no node id: {self.path}; {RESTORE_HINT}")
        token = node.get(_SNAPSHOT_KEY)
        kv = dict(conn.execute("SELECT key, value FROM kv").fetchall())
        started = time.perf_counter()
        with collector.paused():
            seqs, entries, self._seq_of, self.rows_since_snapshot = self._read_entries(
                conn, node_id, token if isinstance(token, str) else None
            )
            rows = list(zip(seqs, entries, strict=True))
        log.info(
            "loaded %d rows (%d from the start-up snapshot, %d from the database) in %.2f s: %s",
            len(rows),
            max(0, len(rows) - self.rows_since_snapshot),
            self.rows_since_snapshot,
            time.perf_counter() - started,
            self.path,
        )
        last_seq = max(int(node.get("last_seq", 0)), seqs[-1] if seqs else 0)
        self._last_seq = last_seq
        requests = conn.execute(_SELECT_REQUESTS).fetchall()
        requests.reverse()
        learnt = conn.execute(_SELECT_LEARNT).fetchall()
        learnt.reverse()
        requests[:0] = [(rid, 0, at) for rid, at in learnt]
        return Loaded(node_id=node_id, rows=rows, last_seq=last_seq, kv=kv, requests=requests)

    def _read_entries(
        self, conn: sqlite3.Connection, node_id: str, token: str | None
    ) -> tuple[list[int], list[Entry], dict[str, int], int]:
        """Every row on disk, in ``seq`` order: ``(seqs, entries, name -> seq, how many
        rows were read from the database)`` - the others come from the snapshot named
        by *token*, if it checks out.

        Of two rows of one name (none should exist) the later is kept and the earlier
        deleted from the file.
        """
        reader = self._read_snapshot(node_id, token) if token is not None else None
        after = 0
        seqs: list[int] = []
        entries: list[Entry] = []
        # In chunks, from the snapshot as from the database: the values of a chunk
        # are garbage once its entries exist, so the peak (and the arenas the process
        # keeps afterwards) stays small.
        if reader is not None:
            try:
                for columns in reader.chunks():
                    entries.extend(entries_from_columns(*columns[1:]))
                    seqs.extend(columns[0])
            except ValueError as exc:  # SnapshotError, or a value no entry holds
                log.warning("ignoring the start-up snapshot (%s): %s", exc, self.snapshot_path)
                return self._read_entries(conn, node_id, None)
            after = reader.last_seq
            del reader
        cursor = conn.execute(_SELECT_AFTER, (after,))
        read = 0
        while chunk := cursor.fetchmany(_LOAD_CHUNK):
            seqs.extend(map(_first, chunk))
            entries.extend(entries_from_rows([row[1:] for row in chunk]))
            read += len(chunk)
        seq_of = dict(zip(map(get_name, entries), seqs, strict=True))
        stale: list[int] = []
        if len(seq_of) != len(seqs):
            keep = [seq_of[entry.name] == seq for seq, entry in zip(seqs, entries, strict=True)]
            stale = [seq for seq, kept in zip(seqs, keep, strict=True) if not kept and seq > after]
            seqs = list(itertools.compress(seqs, keep))
            entries = list(itertools.compress(entries, keep))
        if after:
            # The snapshot's rows that no later row replaced must be exactly the
            # database's rows up to its last_seq, but for collected tombstones: their
            # rows were deleted without a later row (see _collected).
            covered = seqs[: bisect.bisect_right(seqs, after)]
            count, total = conn.execute(_COUNT_UPTO, (after,)).fetchone()
            if (count, total) != (len(covered), sum(covered)):
                gone = self._collected(conn, covered, after)
                if gone is not None and not all(
                    entry.deleted
                    for seq, entry in zip(seqs, entries, strict=True)
                    if seq in gone
                ):
                    gone = None  # only a tombstone's row goes without a later row
                if gone is None:
                    log.warning(
                        "ignoring the start-up snapshot (it does not match the database's "
                        "rows up to seq %d): %s",
                        after,
                        self.snapshot_path,
                    )
                    return self._read_entries(conn, node_id, None)
                keep = [seq not in gone for seq in seqs]
                seqs = list(itertools.compress(seqs, keep))
                entries = list(itertools.compress(entries, keep))
                seq_of = dict(zip(map(get_name, entries), seqs, strict=True))
        self._snapshot_token = token if after else None
        if stale:
            self._drop_rows(conn, stale)
        return seqs, entries, seq_of, read

    @staticmethod
    def _collected(conn: sqlite3.Connection, covered: list[int], after: int) -> set[int] | None:
        """The seqs of the snapshot's rows (*covered*, up to *after*) that are no longer
        in the database, if every row the database holds up to *after* is among them
        (rows only ever go without a later row when a tombstone is collected); else
        ``None``: the snapshot does not belong to these rows."""
        held = {seq for (seq,) in conn.execute(_SEQS_UPTO, (after,))}
        snapshot_seqs = set(covered)
        if not held <= snapshot_seqs:
            return None
        return snapshot_seqs - held

    def _drop_rows(self, conn: sqlite3.Connection, stale: list[int]) -> None:
        """Delete rows a later row of the same name replaced (none should exist: this
        repairs a file written by a faulty version rather than trusting it)."""
        self._require_healthy()
        log.warning("removing %d replaced rows from the database: %s", len(stale), self.path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._delete(conn, stale)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    # ---------------------------------------------------------------- snapshot

    @property
    def snapshot_path(self) -> str:
        """Where the start-up snapshot of this database is kept."""
        return os.path.join(self.directory, SNAPSHOT_NAME)

    def _read_snapshot(self, node_id: str, token: str) -> snapshot.Reader | None:
        """The snapshot file, if it is the one the database names; else ``None``."""
        path = self.snapshot_path
        try:
            with open(path, "rb") as file:
                # Mapped rather than read: a 13 MB heap block made and freed raises
                # glibc's mmap threshold, and the namespace's tables then fragment
                # the heap (14 MiB more RSS with 100,000 names).
                data: bytes | memoryview = b""
                if os.fstat(file.fileno()).st_size:
                    data = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        except FileNotFoundError:
            log.warning("the start-up snapshot is missing, reading every row: %s", path)
            return None
        except OSError as exc:
            log.warning("cannot read the start-up snapshot (%s): %s", os_reason(exc), path)
            return None
        try:
            reader = snapshot.open_snapshot(data)
        except snapshot.SnapshotError as exc:
            log.warning("ignoring the start-up snapshot (%s): %s", exc, path)
            return None
        if reader.node_id != node_id or reader.token != token:
            log.warning("ignoring a start-up snapshot of another database: %s", path)
            return None
        return reader

    def _save_snapshot(self) -> None:
        """Write every row to a new snapshot file and point the database at it.

        A cache, so a failure only costs the next start its speed: logged, not raised.
        The file is complete and synced before the database names it, and the old
        file is replaced atomically, so a crash at any point leaves either the old
        pair or the new one (or a file the database does not name, which is ignored).
        """
        started = time.perf_counter()
        path = self.snapshot_path
        temporary = path + ".tmp"
        conn = self._conn
        node_id = self._node_id
        assert conn is not None and node_id is not None
        try:
            new_token = os.urandom(16).hex()
            with collector.paused():
                # From the snapshot the open used, if any (one it found wanting would
                # only be checked, and warned about, again).
                seqs, entries, _, _ = self._read_entries(conn, node_id, self._snapshot_token)
                count = len(seqs)
                columns = entries_to_columns(entries)
                del entries
                data = snapshot.encode(
                    snapshot.Snapshot(
                        node_id=node_id,
                        token=new_token,
                        last_seq=seqs[-1] if seqs else 0,
                        columns=(seqs, *columns),
                    )
                )
                del columns, seqs
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            _fsync_directory(self.directory, path)
            conn.execute(
                "INSERT OR REPLACE INTO node (key, value) VALUES (?, ?)",
                (_SNAPSHOT_KEY, new_token),
            )
        except (OSError, sqlite3.Error, StorageError, ValueError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
            log.warning("could not write the start-up snapshot (%s): %s", reason, path)
            try:
                os.unlink(temporary)
            except OSError:
                pass
            return
        log.info(
            "wrote the start-up snapshot of %d rows (%d bytes) in %.2f s: %s",
            count,
            len(data),
            time.perf_counter() - started,
            path,
        )

    # ---------------------------------------------------------------- writing

    def write(
        self,
        rows: list[_Row],
        kv: dict[str, str],
        learnt: Sequence[tuple[str, float]] = (),
        drops: Sequence[tuple[str, int]] = (),
    ) -> int:
        """Write one batch in one transaction; return its highest seq.

        Of two rows for one name only the one with the higher seq is written, and it
        replaces (deletes) the name's row on disk unless that one has a higher seq
        still: then the row is stale and left out (see ``Storage.commit``). *drops*
        (``(name, seq)`` of collected tombstones) delete rows that are still their
        name's row once the batch's own rows are in.
        """
        conn = self._conn
        seq_of = self._seq_of
        latest = {row[1]: row for row in rows}
        if len(latest) != len(rows):
            latest = {}
            for row in rows:
                kept = latest.get(row[1])
                if kept is None or row[0] > kept[0]:
                    latest[row[1]] = row
            rows = list(latest.values())
        replaced = []
        stale = False
        for name, row in latest.items():
            old = seq_of.get(name)
            if old is not None:
                if old > row[0]:
                    stale = True
                else:
                    replaced.append(old)
        if stale:
            rows = [row for row in rows if seq_of.get(row[1], 0) <= row[0]]
        last = max((row[0] for row in rows), default=0)
        if drops:
            written = {row[1] for row in rows}
            drops = [(n, q) for n, q in drops if seq_of.get(n) == q and n not in written]
        try:
            if replaced or kv or learnt or drops or len(rows) > self._statements.insert_rows:
                conn.execute("BEGIN IMMEDIATE")
                if replaced:
                    self._delete(conn, replaced)
                if rows:
                    self._insert(conn, rows)
                if kv:
                    conn.executemany(
                        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", list(kv.items())
                    )
                if learnt:
                    conn.executemany(_INSERT_LEARNT, learnt)
                    conn.execute(_TRIM_LEARNT)
                if drops:
                    self._delete(conn, [seq for _name, seq in drops])
                    # The highest row may go: keep the feed's end, or a restart would
                    # number new changes with positions already used.
                    conn.execute(
                        "INSERT OR REPLACE INTO node (key, value) VALUES ('last_seq', ?)",
                        (max(self._last_seq, last),),
                    )
                conn.execute("COMMIT")
            elif rows:
                # New names only: the one INSERT is a transaction of its own (autocommit,
                # fsynced like any other). Each call into SQLite hands the interpreter
                # lock back and forth with the event loop; dropping BEGIN and COMMIT
                # makes that one hand-over a batch instead of three.
                self._insert(conn, rows)
        except sqlite3.Error as exc:
            self._rollback()
            raise _error("commit failed, changes not written", exc, self.path) from exc
        for row in rows:
            seq_of[row[1]] = row[0]
        for name, _seq in drops:
            del seq_of[name]
        self._last_seq = max(self._last_seq, last)
        self.rows_since_snapshot += len(rows)
        if drops:
            self._vacuum_some(conn)
        return last

    def _vacuum_some(self, conn: sqlite3.Connection) -> None:
        """Give free pages back to the file system once enough piled up (a database
        made with ``auto_vacuum=INCREMENTAL``; an older one reuses its free pages, so it
        does not grow, but does not shrink either). Best effort: a failure only leaves
        the pages free."""
        try:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_INCREMENTAL:
                return
            if conn.execute("PRAGMA freelist_count").fetchone()[0] >= _VACUUM_FREE_PAGES:
                conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES})").fetchall()
        except sqlite3.Error as exc:
            log.debug("incremental vacuum failed (%s): %s", exc, self.path)

    def _insert(self, conn: sqlite3.Connection, rows: list[_Row]) -> None:
        step = self._statements.insert_rows
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            conn.execute(self._statements.insert(len(part)), [v for row in part for v in row])

    def _delete(self, conn: sqlite3.Connection, seqs: list[int]) -> None:
        step = self._statements.delete_seqs
        for start in range(0, len(seqs), step):
            part = seqs[start : start + step]
            conn.execute(self._statements.delete(len(part)), part)

    def _rollback(self) -> None:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL); a failing
        # rollback must not hide the error that caused it.
        try:
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # ---------------------------------------------------------------- reading

    def read_since(self, seq: int, limit: int | None) -> list[tuple[int, Entry]]:
        reader = self._reader
        assert reader is not None
        query = _SELECT_AFTER
        params: tuple[int, ...] = (seq,)
        if limit is not None:
            query += " LIMIT ?"
            params = (seq, limit)
        try:
            result = reader.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise _error("cannot read database", exc, self.path) from exc
        entries = entries_from_rows([row[1:] for row in result])
        return list(zip((row[0] for row in result), entries, strict=True))

    def integrity_check(self) -> list[str]:
        reader = self._reader
        assert reader is not None
        try:
            return _problems(reader.execute("PRAGMA integrity_check").fetchall())
        except sqlite3.Error as exc:
            _label, corrupt = _classify(exc)
            if corrupt:
                return [str(exc)]
            raise _error("cannot check database", exc, self.path) from exc

    # ---------------------------------------------------------------- closing

    def close(self) -> None:
        """Write a snapshot if it is worth it (see :data:`SNAPSHOT_AFTER`), close both
        connections (the last one checkpoints the WAL), then unlock."""
        if self._check is not None:
            self._check.wait()
            self._check = None
        try:
            if (
                self._conn is not None
                and self._node_id is not None
                and self.rows_since_snapshot >= SNAPSHOT_AFTER
            ):
                self._save_snapshot()
            for conn in (self._reader, self._conn):
                if conn is not None:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
        finally:
            self._reader = None
            self._conn = None
            self._lock.release()


class SqliteStorage(Storage):
    """Durable storage in ``<directory>/pairns.sqlite3`` (see the module docstring).

    Only one process at a time may open a directory: a second one gets
    ``StorageError("database in use by pid N: <dir>")``. Writes run in the committer
    thread, on the one write connection.

    *connect* opens the connections: at :meth:`open`, the write connection first,
    then one for the integrity check of an existing file, then the reader.
    """

    WRITES_IN_THREAD = True

    def __init__(self, directory: str | os.PathLike[str], *, connect: Connect = connect) -> None:
        super().__init__()
        self.directory = os.path.abspath(os.fspath(directory))
        self._db = _Database(self.directory, connect)
        self._read_lock = trio.Lock()

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def describe(self) -> str:
        """The database file's path."""
        return self._db.path

    @property
    def rows_since_snapshot(self) -> int:
        """Rows on disk that the start-up snapshot does not hold: those read from the
        database rather than the snapshot at open, plus those written since. A clean
        close writes a new snapshot from :data:`SNAPSHOT_AFTER` on."""
        return self._db.rows_since_snapshot

    def _prepare(self, changes: Sequence[tuple[int, Entry]], request_id: str | None) -> list[Any]:
        rows: list[_Row] = [
            (seq, *entry.to_row(), rid) for seq, entry, rid in super()._prepare(changes, request_id)
        ]
        return rows

    async def _backend_open(self) -> Loaded:
        return await trio.to_thread.run_sync(self._db.open)

    def _backend_write_blocking(
        self,
        changes: list[Any],
        kv: dict[str, str],
        learnt: list[tuple[str, float]],
        drops: Sequence[tuple[str, int]] = (),
    ) -> int:
        return self._db.write(changes, kv, learnt, drops)

    async def _backend_entries_since(self, seq: int, limit: int | None) -> list[tuple[int, Entry]]:
        async with self._read_lock:
            return await trio.to_thread.run_sync(self._db.read_since, seq, limit)

    async def _backend_close(self) -> None:
        async with self._read_lock:
            # The committer thread has exited when close runs: nothing writes any more.
            await trio.to_thread.run_sync(self._db.close)

    async def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check`` on the open database; ``[]`` means healthy."""
        self._check_open()
        async with self._read_lock:
            return await trio.to_thread.run_sync(self._db.integrity_check)


def integrity_check(directory: str | os.PathLike[str]) -> list[str]:
    """Check the database in *directory* without opening it for writing (blocking).

    For ``pairns-ctl`` and tests: returns the problems ``PRAGMA integrity_check``
    reports (``[]`` means healthy; a file that is not a database is one problem).
    Safe while a node has the directory open (WAL readers never block the writer).
    Raises :class:`StorageError` if the file cannot be opened at all.
    """
    path = os.path.join(os.path.abspath(os.fspath(directory)), DB_NAME)
    if not os.path.isfile(path):
        raise StorageError(f"no database file: {path}")
    try:
        conn = connect(path, read_only=True)
    except sqlite3.Error as exc:
        raise _error("cannot open database", exc, path) from exc
    try:
        return _problems(conn.execute("PRAGMA integrity_check").fetchall())
    except sqlite3.Error as exc:
        _label, corrupt = _classify(exc)
        if corrupt:
            return [str(exc)]
        raise _error("cannot check database", exc, path) from exc
    finally:
        conn.close()


def _problems(result: list[tuple[Any, ...]]) -> list[str]:
    messages = [str(row[0]) for row in result]
    return [] if messages == ["ok"] else messages


def _fsync_directory(directory: str, path: str) -> None:
    """Make a new file's directory entry durable (SQLite syncs the file, not the dir)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot sync storage directory ({os_reason(exc)}): {path}") from exc
