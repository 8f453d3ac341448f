"""What only the SQLite backend does: files, locks, refusals, faults and crashes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from pairns.errors import StorageError
from pairns.namespace.entry import Entry, Kind
from pairns.storage import SqliteStorage, integrity_check, open_storage
from pairns.storage.sqlite import (
    APPLICATION_ID,
    DB_NAME,
    RESTORE_HINT,
    SCHEMA_VERSION,
    Connect,
    connect,
)

from ._helpers import BASE_HLC, entry

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[3]


async def _open_error(directory: Path, connect: Connect | None = None) -> str:
    """Open *directory* (with *connect*, if given), expecting StorageError; return its
    message."""
    with pytest.raises(StorageError) as info:
        if connect is None:
            async with open_storage(directory) as storage:
                await storage.open()
        else:
            async with SqliteStorage(directory, connect=connect).running() as storage:
                await storage.open()
    return str(info.value)


class _FaultyConnection:
    """Wraps a connection the storage opened: raises a chosen error at the next commit
    (a COMMIT, or an INSERT outside a transaction, which commits by itself), and may
    answer ``PRAGMA quick_check`` with a chosen problem, late."""

    def __init__(self, conn: sqlite3.Connection, quick_check: str | None = None) -> None:
        self._conn = conn
        self._quick_check = quick_check
        self.fail_next_commit: Exception | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        commits = sql == "COMMIT" or (
            sql.startswith("INSERT INTO entries") and not self._conn.in_transaction
        )
        if commits and self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        if sql.startswith("PRAGMA quick_check") and self._quick_check is not None:
            time.sleep(0.2)  # ends after the load: the open must wait for it
            return self._conn.execute("SELECT ?", (self._quick_check,))
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Connections:
    """The ``connect`` of a storage under test: opens connections as the storage
    would, wraps each in a :class:`_FaultyConnection` and keeps them in order of
    opening (the write connection first)."""

    def __init__(
        self, *, variable_limit: int | None = None, quick_check: str | None = None
    ) -> None:
        self.opened: list[_FaultyConnection] = []
        self._variable_limit = variable_limit
        self._quick_check = quick_check

    def __call__(self, path: str, *, read_only: bool = False) -> Any:
        conn = connect(path, read_only=read_only)
        if self._variable_limit is not None:
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, self._variable_limit)
        self.opened.append(_FaultyConnection(conn, self._quick_check))
        return self.opened[-1]

    @property
    def writer(self) -> _FaultyConnection:
        """The write connection."""
        return self.opened[0]


@asynccontextmanager
async def _open_sqlite(directory: Path, connections: _Connections) -> AsyncIterator[Any]:
    """An open SQLite storage in *directory* that opens its connections through
    *connections*."""
    async with SqliteStorage(directory, connect=connections).running() as storage:
        await storage.open()
        yield storage


async def _make_store(directory: Path, count: int = 10) -> None:
    async with open_storage(directory) as storage:
        await storage.open()
        await storage.commit([(i + 1, entry(f":e{i}", i)) for i in range(count)])


# ------------------------------------------------------------------- file layout


async def test_creates_missing_directories_wal_and_full_sync(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    connections = _Connections()
    async with _open_sqlite(directory, connections) as storage:
        assert storage.path == str(directory / DB_NAME)
        conn = connections.writer
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert (directory / "pairns.lock").read_text().strip() == str(os.getpid())
        assert await storage.integrity_check() == []
    assert integrity_check(directory) == []


async def test_real_clock_stamps_beyond_int64_round_trip(tmp_path: Path) -> None:
    assert BASE_HLC > 2**63  # what a hybrid clock makes today; SQLite INTEGER can't hold it
    big = entry(":big", 2**40)
    async with open_storage(tmp_path) as storage:
        await storage.open()
        await storage.commit([(1, big)])
        assert await storage.entries_since(0) == [(1, big)]
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert loaded.rows == [(1, big)]
        assert loaded.rows[0][1].stamp.hlc == big.stamp.hlc


async def test_error_in_the_block_is_not_wrapped_in_a_group(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        async with open_storage(tmp_path) as storage:
            await storage.open()
            raise KeyError("mine")


# ---------------------------------------------------------------------- refusals


async def test_newer_schema_version_is_refused_and_file_left_alone(tmp_path: Path) -> None:
    await _make_store(tmp_path)
    db = tmp_path / DB_NAME
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    message = await _open_error(tmp_path)
    assert f"schema version {SCHEMA_VERSION + 1} is newer" in message
    assert str(db) in message
    assert db.read_bytes() == before


async def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    message = await _open_error(tmp_path)
    assert "not a pairns database" in message
    assert db.read_bytes() == before


async def test_random_bytes_file_is_reported_corrupt(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(random.Random(1).randbytes(8192))
    message = await _open_error(tmp_path)
    assert message.startswith("cannot open database (corrupt: file is not a database)")
    assert str(db) in message
    assert RESTORE_HINT in message
    assert integrity_check(tmp_path) == ["file is not a database"]


async def test_truncated_database_is_reported_corrupt(tmp_path: Path) -> None:
    await _make_store(tmp_path, count=3000)
    db = tmp_path / DB_NAME
    assert not (tmp_path / f"{DB_NAME}-wal").exists()  # clean close checkpointed
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    message = await _open_error(tmp_path)
    assert "corrupt" in message
    assert str(db) in message
    assert RESTORE_HINT in message
    assert integrity_check(tmp_path) != []


async def test_a_problem_quick_check_finds_refuses_the_open_before_any_write(
    tmp_path: Path,
) -> None:
    """quick_check runs beside the load; what it finds still refuses the start, and
    nothing is written to the file before it passed."""
    await _make_store(tmp_path, count=20)

    def opened() -> str:
        conn = sqlite3.connect(tmp_path / DB_NAME)
        try:
            return str(conn.execute("SELECT value FROM node WHERE key = 'opened'").fetchone())
        finally:
            conn.close()

    before = opened()
    problem = _Connections(quick_check="Page 5: btreeInitPage() returns error code 11")
    message = await _open_error(tmp_path, problem)
    assert message.startswith("database file is corrupt (Page 5: btreeInitPage()")
    assert RESTORE_HINT in message
    assert opened() == before


async def test_database_path_that_is_a_directory_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).mkdir()
    message = await _open_error(tmp_path)
    assert message.startswith("cannot open database (cannot open: unable to open database file)")
    assert str(tmp_path / DB_NAME) in message


async def test_storage_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    message = await _open_error(target)
    assert "not a directory" in message
    assert str(target) in message


async def test_read_only_database_is_refused_at_open_simulated_with_mode_ro(
    tmp_path: Path,
) -> None:
    # Root ignores permission bits, so SQLite is told to open the file read-only
    # (URI mode=ro): the open-time write probe then really hits SQLITE_READONLY.
    await _make_store(tmp_path)

    def read_only(path: str, *, read_only: bool = False) -> sqlite3.Connection:
        return connect(path, read_only=True)

    message = await _open_error(tmp_path, read_only)
    assert message.startswith("cannot open database (read-only: attempt to write a readonly")
    assert str(tmp_path / DB_NAME) in message


# The child drops CAP_DAC_OVERRIDE when it runs as root, so that permission bits
# apply to it exactly as they do to an ordinary user; then it opens the storage.
_UNPRIVILEGED_OPEN = (REPO / "tests" / "drop_dac_capabilities.py").read_text() + textwrap.dedent(
    """
    import trio
    from pairns.errors import StorageError
    from pairns.storage import open_storage

    async def main():
        async with open_storage(sys.argv[1]) as storage:
            await storage.open()

    try:
        trio.run(main)
    except StorageError as exc:
        print(exc)
    else:
        print("OPENED")
    """
)


def _open_unprivileged(directory: Path) -> str:
    result = subprocess.run(
        [PYTHON, "-c", _UNPRIVILEGED_OPEN, str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    if result.returncode == 77:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.strip()


async def test_unwritable_directory_and_file_are_refused_with_real_permissions(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o555)
    existing = tmp_path / "existing"
    await _make_store(existing)
    (existing / DB_NAME).chmod(0o444)
    try:
        assert (
            _open_unprivileged(fresh)
            == f"cannot use storage directory (permission denied): {fresh}"
        )
        assert (
            _open_unprivileged(fresh / "sub")
            == f"cannot create storage directory (permission denied): {fresh / 'sub'}"
        )
        message = _open_unprivileged(existing)
        assert message.startswith("cannot open database (read-only:")
        assert str(existing / DB_NAME) in message
    finally:
        fresh.chmod(0o755)


# -------------------------------------------------------------------------- lock

_HOLD_LOCK = textwrap.dedent(
    """
    import sys, trio
    from pairns.storage import open_storage

    async def main():
        async with open_storage(sys.argv[1]) as storage:
            await storage.open()
            print("ready", flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)

    trio.run(main)
    """
)


async def test_second_process_gets_database_in_use_and_no_stale_lock_after_kill(
    tmp_path: Path,
) -> None:
    child = subprocess.Popen(
        [PYTHON, "-c", _HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        assert await trio.to_thread.run_sync(child.stdout.readline) == "ready\n"
        message = await _open_error(tmp_path)
        assert message == f"database in use by pid {child.pid}: {tmp_path}"
    finally:
        child.kill()
        await trio.to_thread.run_sync(child.wait)
    assert child.returncode == -signal.SIGKILL
    async with open_storage(tmp_path) as storage:
        await storage.open()  # the kernel dropped the flock with the process


async def test_same_process_second_open_is_refused_and_close_releases(tmp_path: Path) -> None:
    async with open_storage(tmp_path) as storage:
        await storage.open()
        assert await _open_error(tmp_path) == f"database in use by pid {os.getpid()}: {tmp_path}"
    async with open_storage(tmp_path) as storage:
        await storage.open()


# ------------------------------------------------------------------------ faults


@asynccontextmanager
async def _failing_next_commit(
    tmp_path: Path, error: Exception
) -> AsyncIterator[tuple[SqliteStorage, _FaultyConnection]]:
    """An open SQLite storage whose next COMMIT raises *error*."""
    connections = _Connections()
    async with _open_sqlite(tmp_path, connections) as storage:
        connections.writer.fail_next_commit = error
        yield storage, connections.writer


async def _commit_all(storage: Any, batches: list[list[tuple[int, Entry]]]) -> list[str | None]:
    """Commit *batches* concurrently; the error message (or None) of each."""
    results: list[str | None] = [None] * len(batches)

    async def one(i: int) -> None:
        try:
            await storage.commit(batches[i])
        except StorageError as exc:
            results[i] = str(exc)

    async with trio.open_nursery() as nursery:
        for i in range(len(batches)):
            nursery.start_soon(one, i)
    return results


async def test_disk_full_fails_every_caller_of_the_batch_then_recovers(tmp_path: Path) -> None:
    # max_page_count makes SQLite itself report SQLITE_FULL, as on a full disk.
    connections = _Connections()
    async with _open_sqlite(tmp_path, connections) as storage:
        await storage.commit([(1, entry(":before", 1))])
        conn = connections.writer
        conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
        doomed = [[(seq, entry(f":doomed{seq}", seq, meta="x" * 2000))] for seq in range(2, 10)]
        results = await _commit_all(storage, doomed)
        for message in results:
            assert message is not None
            assert message.startswith(
                "commit failed, changes not written (disk full: database or disk is full)"
            )
            assert str(tmp_path / DB_NAME) in message
        assert storage.statistics().failed_transactions >= 1
        assert storage.last_seq == 1
        assert [seq for seq, _ in await storage.entries_since(0)] == [1]

        conn.execute("PRAGMA max_page_count=1073741823")  # space is back
        assert await _commit_all(storage, [[(10, entry(":after", 10))]]) == [None]
        await storage.set_kv("still", "works")
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert [seq for seq, _ in loaded.rows] == [1, 10]
        assert loaded.kv == {"still": "works"}
        assert isinstance(storage, SqliteStorage)
        assert await storage.integrity_check() == []


async def test_io_error_at_commit_fails_the_batch_and_later_commits_succeed(
    tmp_path: Path,
) -> None:
    io_error = sqlite3.OperationalError("disk I/O error")
    async with _failing_next_commit(tmp_path, io_error) as (storage, faulty):
        results = await _commit_all(storage, [[(seq, entry(f":x{seq}", seq))] for seq in (1, 2)])
        assert all(m and "(I/O error: disk I/O error)" in m for m in results), results
        assert not faulty.in_transaction  # rolled back
        await storage.commit([(3, entry(":y", 3))])
        faulty.fail_next_commit = sqlite3.OperationalError("database or disk is full")
        with pytest.raises(StorageError, match="disk full") as info:
            await storage.commit([(4, entry(":z", 4))])
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        await storage.commit([(5, entry(":w", 5))])
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert [seq for seq, _ in loaded.rows] == [3, 5]


# ------------------------------------------------------- rows on disk, upgrade

#: Schema version 1, as pairns 0.1 wrote it (name-keyed, with an index on seq).
_V1_SCHEMA = (
    """CREATE TABLE entries (name TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL,
        kind INTEGER NOT NULL, uri TEXT, meta TEXT NOT NULL, created REAL NOT NULL,
        modified REAL NOT NULL, owner TEXT NOT NULL, hlc TEXT NOT NULL,
        node TEXT NOT NULL, deleted INTEGER NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX entries_by_seq ON entries (seq)",
    "CREATE TABLE node (key TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID",
    "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID",
)


def _rows_on_disk(directory: Path) -> list[tuple[int, str]]:
    """(seq, name) of every stored row, read with plain sqlite3."""
    conn = sqlite3.connect(directory / DB_NAME)
    try:
        return conn.execute("SELECT seq, name FROM entries ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_a_replaced_name_keeps_one_row_within_and_across_batches(tmp_path: Path) -> None:
    async with open_storage(tmp_path) as storage:
        await storage.open()
        await storage.commit([(1, entry(":a", 1)), (2, entry(":b", 2))])
        await storage.commit([(3, entry(":a", 3)), (4, entry(":a", 4)), (5, entry(":c", 5))])
        await storage.commit([(6, entry(":b", 6, deleted=True))])
    assert _rows_on_disk(tmp_path) == [(4, ":a"), (5, ":c"), (6, ":b")]
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert [(seq, e.name, e.deleted) for seq, e in loaded.rows] == [
            (4, ":a", False),
            (5, ":c", False),
            (6, ":b", True),
        ]
        assert loaded.rows[0][1] == entry(":a", 4)
        assert loaded.last_seq == 6
        # The map of rows on disk was rebuilt at open: replacing works after a restart.
        await storage.commit([(7, entry(":c", 7))])
    assert _rows_on_disk(tmp_path) == [(4, ":a"), (6, ":b"), (7, ":c")]


async def test_batches_larger_than_one_statement_are_written_whole(tmp_path: Path) -> None:
    # With SQLite's limit at 24 variables (defaults: 250,000 or 999), one INSERT holds
    # two rows and one DELETE 24 seqs: a statement over the limit would fail the commit.
    async with _open_sqlite(tmp_path, _Connections(variable_limit=24)) as storage:
        await storage.commit([(i, entry(f":n{i}", i)) for i in range(1, 31)])
        await storage.commit([(i + 30, entry(f":n{i}", i + 30)) for i in range(1, 31)])
        assert [seq for seq, _ in await storage.entries_since(0)] == list(range(31, 61))
    assert _rows_on_disk(tmp_path) == [(i + 30, f":n{i}") for i in range(1, 31)]


async def test_a_failed_replace_leaves_the_old_row_and_a_later_one_replaces_it(
    tmp_path: Path,
) -> None:
    io_error = sqlite3.OperationalError("disk I/O error")
    async with _failing_next_commit(tmp_path, io_error) as (storage, faulty):
        faulty.fail_next_commit = None
        await storage.commit([(1, entry(":a", 1))])
        faulty.fail_next_commit = io_error
        with pytest.raises(StorageError, match="I/O error"):
            await storage.commit([(2, entry(":a", 2))])
        assert [seq for seq, _ in await storage.entries_since(0)] == [1]
        await storage.commit([(3, entry(":a", 3))])
    assert _rows_on_disk(tmp_path) == [(3, ":a")]


async def test_a_version_1_database_is_upgraded_in_place_with_every_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = [
        (3, entry(":Default", 3, kind=Kind.GROUP)),
        (7, entry(":Default.x", 7, meta={"k": [1, 2]})),
        (9, entry(":Default.gone", 9, deleted=True)),
    ]
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    for statement in _V1_SCHEMA:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO node (key, value) VALUES (?, ?)",
        [("node_id", "0123456789abcdef"), ("last_seq", 12)],
    )
    conn.executemany(
        "INSERT INTO entries (seq, name, kind, uri, meta, created, modified, owner, hlc,"
        " node, deleted) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(seq, *e.to_row()) for seq, e in stored],
    )
    conn.execute("INSERT INTO kv (key, value) VALUES ('peer', 'x')")
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.close()

    with caplog.at_level("WARNING", logger="pairns.storage"):
        async with open_storage(tmp_path) as storage:
            loaded = await storage.open()
            assert loaded.rows == stored
            assert loaded.last_seq == 12  # what version 1 recorded, though no row has it
            assert loaded.node_id == "0123456789abcdef"
            assert loaded.kv == {"peer": "x"}
            await storage.commit([(13, entry(":Default.x", 13))])
    assert "upgraded the database schema from version 1 to 3" in caplog.text
    assert _rows_on_disk(tmp_path) == [(3, ":Default"), (9, ":Default.gone"), (13, ":Default.x")]
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        indexes = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'").fetchall()
        assert [name for (name,) in indexes if not name.startswith("sqlite_autoindex")] == []
    finally:
        conn.close()
    assert integrity_check(tmp_path) == []


async def test_rows_a_later_row_replaced_are_removed_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _make_store(tmp_path, count=3)  # :e0..:e2 at seqs 1..3
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute(
        "INSERT INTO entries (seq, name, kind, uri, meta, created, modified, owner, hlc,"
        " node, deleted) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (4, *entry(":e1", 4).to_row()),
    )
    conn.close()
    with caplog.at_level("WARNING", logger="pairns.storage"):
        async with open_storage(tmp_path) as storage:
            loaded = await storage.open()
            assert [(seq, e.name) for seq, e in loaded.rows] == [(1, ":e0"), (3, ":e2"), (4, ":e1")]
    assert "removing 1 replaced rows" in caplog.text
    assert _rows_on_disk(tmp_path) == [(1, ":e0"), (3, ":e2"), (4, ":e1")]


# --------------------------------------------------------------- speed (guard)


async def test_open_of_100k_entries_stays_fast(tmp_path: Path) -> None:
    """A regression guard with a loose bound; benchmarks/sqlite_commit.py has the figure."""
    rows = []
    for i in range(100_000):
        rows.append((i + 1, *entry(f":Default.n{i}", i).to_row(), None))
    await _make_store(tmp_path, count=0)
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO entries (seq, name, kind, uri, meta, created, modified, owner, hlc,"
        " node, deleted, request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()
    async with open_storage(tmp_path) as storage:
        start = time.perf_counter()
        loaded = await storage.open()
        elapsed = time.perf_counter() - start
    assert len(loaded.rows) == 100_000
    assert loaded.last_seq == 100_000
    assert elapsed < 30.0, f"open() of 100,000 entries took {elapsed:.2f} s"  # hang guard


# ------------------------------------------------------------------------ crash

_CRASH_WRITER = textwrap.dedent(
    """
    import os, sys, trio
    from pairns.storage import open_storage
    from tests.unit.storage._helpers import entry

    async def main():
        async with open_storage(sys.argv[1]) as storage:
            loaded = await storage.open()
            counter = [loaded.last_seq]

            async def writer():
                while counter[0] < 1_000_000:
                    counter[0] += 1
                    seq = counter[0]
                    await storage.commit([(seq, entry(f":crash{seq}", seq))])
                    os.write(1, b"%d\\n" % seq)  # acknowledged: durable now

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(writer)

    trio.run(main)
    """
)


def test_every_acknowledged_commit_survives_sigkill(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    acknowledged: set[int] = set()
    for _ in range(3):
        child = subprocess.Popen(
            [PYTHON, "-c", _CRASH_WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        assert child.stdout is not None
        kill_after = rng.randrange(1, 400)
        deadline = time.monotonic() + 20
        seen = 0
        try:
            while seen < kill_after and time.monotonic() < deadline:
                line = child.stdout.readline()
                if not line:
                    break
                acknowledged.add(int(line))
                seen += 1
        finally:
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()  # printed before the kill: acknowledged too
            child.wait()
        acknowledged.update(int(line) for line in rest.split())
        assert child.returncode == -signal.SIGKILL, f"seed={seed}"
        assert seen == kill_after, f"writer stopped early (seed={seed})"

        async def check() -> set[int]:
            async with open_storage(tmp_path) as storage:
                loaded = await storage.open()
                assert isinstance(storage, SqliteStorage)
                assert await storage.integrity_check() == []
                return {seq for seq, _ in loaded.rows}

        stored = trio.run(check)
        missing = acknowledged - stored
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]} (seed={seed})"
    assert integrity_check(tmp_path) == []


async def test_a_failed_batch_calls_every_commit_soon_caller_back_with_the_error(
    tmp_path: Path,
) -> None:
    io_error = sqlite3.OperationalError("disk I/O error")
    async with _failing_next_commit(tmp_path, io_error) as (storage, _):
        errors: list[StorageError | None] = []
        for seq in (1, 2, 3):
            storage.commit_soon([(seq, entry(f":x{seq}", seq))], errors.append)
        with trio.fail_after(10):
            while len(errors) < 3:
                await trio.sleep(0.001)
        assert errors[0] is not None and "I/O error" in str(errors[0])
        assert isinstance(errors[0].__cause__, sqlite3.OperationalError)
        # The first batch failed; whatever queued behind it is written afterwards.
        written = [seq for seq, error in zip((1, 2, 3), errors, strict=True) if error is None]
        assert [seq for seq, _ in await storage.entries_since(0)] == written


async def test_the_committer_thread_fails_a_batch_on_a_bug_and_exits_on_close(
    tmp_path: Path,
) -> None:
    connections = _Connections()
    async with _open_sqlite(tmp_path, connections) as storage:
        mine = f"pairns-committer {storage.describe()}"
        committers = [t for t in threading.enumerate() if t.name == mine]
        assert len(committers) == 1
        # Not an SQLite error: what a bug in the backend's own code raises.
        connections.writer.fail_next_commit = RuntimeError("a bug in the backend")
        with pytest.raises(StorageError, match="internal error: a bug in the backend"):
            await storage.commit([(1, entry(":a", 1))])
        await storage.commit([(2, entry(":b", 2))])  # the thread is still there
        assert storage.statistics().failed_transactions == 1
    committers[0].join(5)
    assert not committers[0].is_alive()
    async with open_storage(tmp_path) as storage:
        assert [seq for seq, _ in (await storage.open()).rows] == [2]


async def test_a_version_2_file_gains_the_table_of_learnt_request_ids(tmp_path: Path) -> None:
    async with open_storage(tmp_path) as storage:
        await storage.open()
        await storage.commit([(1, entry(":Default.a", 1))], request_id="own")
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("DROP TABLE learnt")
    conn.execute("PRAGMA user_version=2")
    conn.close()
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert [r[0] for r in loaded.requests] == ["own"]
        await storage.commit([], learnt=[("twin", 5.0)])
    async with open_storage(tmp_path) as storage:
        loaded = await storage.open()
        assert [r[:2] for r in loaded.requests] == [("twin", 0), ("own", 1)]
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert integrity_check(tmp_path) == []


async def test_a_new_database_gives_collected_pages_back(tmp_path: Path) -> None:
    """Churn (register, unregister, collect) does not grow the file: a new database is
    made with ``auto_vacuum=INCREMENTAL``, and collections give free pages back."""
    from tests.unit.storage._helpers import entry as make_entry

    path = tmp_path / "db"
    sizes = []
    async with open_storage(path) as storage:
        await storage.open()
        seq = 0
        for round_ in range(12):
            rows = []
            for i in range(3000):
                seq += 1
                rows.append((seq, make_entry(f":n{round_}.{i}", seq, deleted=True)))
            await storage.commit(rows)
            await storage.collect([(entry.name, s) for s, entry in rows])
            wal = path / (DB_NAME + "-wal")
            sizes.append(
                os.path.getsize(path / DB_NAME) + (wal.stat().st_size if wal.exists() else 0)
            )
    conn = sqlite3.connect(path / DB_NAME)
    try:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
    finally:
        conn.close()
    assert max(sizes[6:]) <= max(sizes[:6]) * 1.1, sizes
    assert os.path.getsize(path / DB_NAME) < 1_000_000  # checkpointed at close
