"""The start-up snapshot: its file format, and how the SQLite backend writes and trusts it."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairns.namespace.entry import Entry
from pairns.storage import SqliteStorage, open_storage
from pairns.storage import snapshot as snapshot_format
from pairns.storage import sqlite as sqlite_backend
from pairns.storage.snapshot import MAGIC, Snapshot, SnapshotError, decode, encode
from pairns.storage.sqlite import DB_NAME, SNAPSHOT_NAME

from ._helpers import entry


def _columns(count: int) -> tuple[list[Any], ...]:
    rows = [(i + 1, *entry(f":n{i}", i).to_row()) for i in range(count)]
    if not rows:
        return tuple([] for _ in range(snapshot_format.COLUMNS))
    return tuple(list(column) for column in zip(*rows, strict=True))


def _snapshot(count: int = 3, **changes: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "node_id": "0123456789abcdef",
        "token": "t" * 32,
        "last_seq": count,
        "columns": _columns(count),
    }
    fields.update(changes)
    return Snapshot(**fields)


# ------------------------------------------------------------------- the format


def test_encode_decode_round_trip() -> None:
    snap = _snapshot(5)
    back = decode(encode(snap))
    assert back == snap
    assert back.columns == snap.columns
    assert back.count == 5


def test_an_empty_snapshot_round_trips() -> None:
    snap = _snapshot(0, last_seq=7)
    assert decode(encode(snap)) == snap


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: b"other-format 1\n" + data[len(MAGIC) :], "another version"),
        (lambda data: data[: len(MAGIC) + 3], "damaged snapshot header"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: data + b"x", "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "checksum"),
        (lambda data: data.replace(b"\n", b"\nx", 2), "damaged snapshot header"),
    ],
)
def test_damaged_bytes_are_refused(damage: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        decode(damage(encode(_snapshot())))


@given(st.data())
@settings(max_examples=50, deadline=None)
def test_any_flipped_payload_byte_is_caught_by_the_checksum(data: st.DataObject) -> None:
    raw = bytearray(encode(_snapshot(4)))
    start = raw.index(b"\n", len(MAGIC)) + 1
    position = data.draw(st.integers(start, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SnapshotError):
        decode(bytes(raw))


def _framed(meta: Any, *chunks: Any, extra: bytes = b"") -> bytes:
    """A well-framed file (right magic, lengths and checksum) holding any objects: *meta*
    (given the chunks' sizes when it is a dict without them), then *chunks*."""
    import marshal
    import zlib

    blobs = [marshal.dumps(chunk, 4) for chunk in chunks]
    if isinstance(meta, dict) and "chunks" not in meta:
        meta = {**meta, "chunks": list(map(len, blobs))}
    head = marshal.dumps(meta, 4)
    payload = b"".join([head, *blobs]) + extra
    return MAGIC + b"%d %d %d\n" % (len(payload), zlib.crc32(payload), len(head)) + payload


_META = {"node_id": "n", "token": "t", "last_seq": 9, "count": 2}


def _meta(**changes: Any) -> dict[str, Any]:
    return {**_META, **changes}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("just a string",), "unreadable"),
        (({"node_id": "n", "token": "t", "last_seq": 9},), "unreadable"),
        ((_meta(last_seq="9"),), "unexpected shape"),
        ((_meta(count=-1),), "unexpected shape"),
        ((_meta(chunks=[10**6]), ([1, 2],) * 11), "unexpected shape"),
        ((_meta(chunks=["1"]),), "unexpected shape"),
        ((_meta(), ([1, 2],) * 10), "unexpected shape"),
        ((_meta(), ([1, 2],) + ([0],) * 10), "lengths"),
        ((_meta(), ([2, 1],) * 11), "out of order"),
        ((_meta(), ([1, 1],) * 11), "out of order"),
        ((_meta(count=4), ([1, 5],) * 11, ([3, 6],) * 11), "out of order"),
        ((_meta(last_seq=1), ([1, 2],) * 11), "outside"),
        ((_meta(), ([0, 2],) * 11), "outside"),
        ((_meta(), (["1", 2],) * 11), "not an int"),
        ((_meta(), ([1, "2"],) * 11), "not an int"),
        ((_meta(count=3), ([1, 2],) * 11), "other than its 3 rows"),
        ((_meta(count=1), ([1, 2],) * 11), "other than its 1 rows"),
    ],
)
def test_well_framed_but_wrong_contents_are_refused(values: tuple[Any, ...], message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        decode(_framed(*values))


def test_bytes_the_chunks_do_not_account_for_are_refused() -> None:
    with pytest.raises(SnapshotError, match="unexpected shape"):
        decode(_framed(_meta(), ([1, 2],) * 11, extra=b"x"))


def test_rows_come_in_chunks_and_a_fault_stops_at_its_chunk() -> None:
    count = snapshot_format.CHUNK_ROWS * 2 + 5
    data = encode(_snapshot(count))
    reader = snapshot_format.open_snapshot(data)
    assert reader.count == count
    sizes = [len(chunk[0]) for chunk in reader.chunks()]
    assert sizes == [snapshot_format.CHUNK_ROWS, snapshot_format.CHUNK_ROWS, 5]
    # The second chunk made out of order: the first is still given, then the error.
    columns = _columns(count)
    columns[0][snapshot_format.CHUNK_ROWS] = 1
    reader = snapshot_format.open_snapshot(encode(_snapshot(count, columns=columns)))
    chunks = reader.chunks()
    assert len(next(chunks)[0]) == snapshot_format.CHUNK_ROWS
    with pytest.raises(SnapshotError, match="out of order"):
        next(chunks)


# ----------------------------------------------------- the SQLite backend's use


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    """Snapshots from 5 uncovered rows on, so that tests stay small."""
    monkeypatch.setattr(sqlite_backend, "SNAPSHOT_AFTER", 5)
    return 5


async def _write(directory: Path, changes: list[tuple[int, Entry]]) -> None:
    async with open_storage(directory) as storage:
        await storage.open()
        if changes:
            await storage.commit(changes)


async def _open(directory: Path) -> tuple[list[tuple[int, Entry]], int, int]:
    """(rows, last_seq, rows read from the database rather than the snapshot)."""
    async with open_storage(directory) as storage:
        loaded = await storage.open()
        assert isinstance(storage, SqliteStorage)
        uncovered = storage.rows_since_snapshot
    return loaded.rows, loaded.last_seq, uncovered


def _truth(directory: Path) -> list[tuple[int, Entry]]:
    """The rows as the database alone holds them (no snapshot involved)."""
    conn = sqlite3.connect(directory / DB_NAME)
    try:
        rows = conn.execute(
            "SELECT seq, name, kind, uri, meta, created, modified, owner, hlc, node, deleted"
            " FROM entries ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [(row[0], Entry.from_row(row[1:])) for row in rows]


def _token(directory: Path) -> str | None:
    conn = sqlite3.connect(directory / DB_NAME)
    try:
        row = conn.execute("SELECT value FROM node WHERE key = 'snapshot'").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


async def test_a_clean_close_writes_a_snapshot_and_the_next_open_reads_it(
    tmp_path: Path, small_threshold: int
) -> None:
    changes = [(i + 1, entry(f":e{i}", i)) for i in range(8)]
    await _write(tmp_path, changes)
    assert (tmp_path / SNAPSHOT_NAME).exists()
    assert _token(tmp_path) == decode((tmp_path / SNAPSHOT_NAME).read_bytes()).token
    rows, last_seq, uncovered = await _open(tmp_path)
    assert rows == changes == _truth(tmp_path)
    assert last_seq == 8
    assert uncovered == 0  # every row came from the snapshot


async def test_few_rows_write_no_snapshot(tmp_path: Path, small_threshold: int) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(small_threshold - 1)])
    assert not (tmp_path / SNAPSHOT_NAME).exists()
    assert _token(tmp_path) is None
    rows, _, uncovered = await _open(tmp_path)
    assert rows == _truth(tmp_path)
    assert uncovered == small_threshold - 1


async def test_changes_after_the_snapshot_are_read_from_the_database(
    tmp_path: Path, small_threshold: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    before = (tmp_path / SNAPSHOT_NAME).read_bytes()
    # Then, as after a crash, close without a new snapshot: replace a name, delete
    # one (a tombstone), add one.
    monkeypatch.setattr(sqlite_backend, "SNAPSHOT_AFTER", 10**9)
    later = [(9, entry(":e3", 30)), (10, entry(":e5", 50, deleted=True)), (11, entry(":new"))]
    await _write(tmp_path, later)
    assert (tmp_path / SNAPSHOT_NAME).read_bytes() == before
    rows, last_seq, uncovered = await _open(tmp_path)
    assert rows == _truth(tmp_path)
    assert [seq for seq, _ in rows] == [1, 2, 3, 5, 7, 8, 9, 10, 11]
    assert last_seq == 11
    assert uncovered == 3


async def test_a_snapshot_that_does_not_match_the_database_is_ignored(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    conn.execute("DELETE FROM entries WHERE seq = 4")  # behind the snapshot's back
    conn.close()
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(tmp_path)
    assert "does not match the database's rows up to seq 8" in caplog.text
    assert rows == _truth(tmp_path)
    assert [seq for seq, _ in rows] == [1, 2, 3, 5, 6, 7, 8]
    assert uncovered == 7


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-10], "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 0x40]), "checksum"),
        (lambda data: b"", "another version"),
    ],
)
async def test_a_damaged_snapshot_is_ignored_with_a_warning(
    tmp_path: Path,
    small_threshold: int,
    caplog: pytest.LogCaptureFixture,
    damage: Any,
    message: str,
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    path = tmp_path / SNAPSHOT_NAME
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(tmp_path)
    # Once: the close, which writes a new snapshot, does not try the bad one again.
    assert caplog.text.count("ignoring the start-up snapshot") == 1
    assert message in caplog.text
    assert rows == _truth(tmp_path)
    assert uncovered == 8
    assert (await _open(tmp_path))[2] == 0  # the new snapshot serves the next open


async def test_a_missing_snapshot_is_reported_and_the_rows_read(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    (tmp_path / SNAPSHOT_NAME).unlink()
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(tmp_path)
    assert "the start-up snapshot is missing" in caplog.text
    assert rows == _truth(tmp_path)
    assert uncovered == 8
    # That open read 8 rows: its close wrote a new snapshot, which the next open uses.
    assert (tmp_path / SNAPSHOT_NAME).exists()
    assert (await _open(tmp_path))[2] == 0


async def test_the_snapshot_of_another_database_is_ignored(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    await _write(ours, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    await _write(theirs, [(i + 1, entry(f":x{i}", i)) for i in range(8)])
    shutil.copy(theirs / SNAPSHOT_NAME, ours / SNAPSHOT_NAME)
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(ours)
    assert "ignoring a start-up snapshot of another database" in caplog.text
    assert [e.name for _, e in rows] == [f":e{i}" for i in range(8)]
    assert uncovered == 8


async def test_an_old_snapshot_left_behind_is_ignored(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    old = (tmp_path / SNAPSHOT_NAME).read_bytes()
    await _write(tmp_path, [(9 + i, entry(f":f{i}", i)) for i in range(6)])  # a new one
    (tmp_path / SNAPSHOT_NAME).write_bytes(old)
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(tmp_path)
    assert "ignoring a start-up snapshot of another database" in caplog.text
    assert rows == _truth(tmp_path)
    assert uncovered == 14


async def test_a_snapshot_holding_an_invalid_entry_falls_back_to_the_rows(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    path = tmp_path / SNAPSHOT_NAME
    snap = decode(path.read_bytes())
    snap.columns[2][3] = 7  # kind code 7: no such kind
    path.write_bytes(encode(snap))
    with caplog.at_level("WARNING", logger="pairns.storage"):
        rows, _, uncovered = await _open(tmp_path)
    assert "invalid entry kind" in caplog.text
    assert rows == _truth(tmp_path)
    assert uncovered == 8


async def test_a_failed_snapshot_write_is_logged_and_changes_nothing(
    tmp_path: Path,
    small_threshold: int,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _write(tmp_path, [(i + 1, entry(f":e{i}", i)) for i in range(8)])
    before, token = (tmp_path / SNAPSHOT_NAME).read_bytes(), _token(tmp_path)

    def no_space(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with caplog.at_level("WARNING", logger="pairns.storage"):
        await _write(tmp_path, [(9 + i, entry(f":f{i}", i)) for i in range(6)])
    monkeypatch.undo()
    assert "could not write the start-up snapshot (no space left on device)" in caplog.text
    assert not (tmp_path / (SNAPSHOT_NAME + ".tmp")).exists()
    assert (tmp_path / SNAPSHOT_NAME).read_bytes() == before
    assert _token(tmp_path) == token
    rows, _, uncovered = await _open(tmp_path)
    assert rows == _truth(tmp_path)
    assert uncovered == 6  # the old snapshot still serves the rows it holds


# ------------------------------------------------ any history, any restart points

_NAMES = [f":g{i}" for i in range(6)]

_step = st.one_of(
    st.tuples(
        st.just("write"),
        st.lists(st.tuples(st.sampled_from(_NAMES), st.booleans()), min_size=1, max_size=4),
    ),
    st.tuples(st.just("restart"), st.sampled_from([1, 3, 10**9])),
)


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@given(st.lists(_step, max_size=12))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_history_loads_what_the_database_holds(steps: list[tuple[str, Any]]) -> None:
    """Writes and restarts (with snapshots written at different thresholds) in any
    order: every open loads exactly the latest row of each name, as the model says."""
    directory = Path(tempfile.mkdtemp(prefix="pairns-snap-"))
    original = sqlite_backend.SNAPSHOT_AFTER
    handler = _Collect(logging.WARNING)
    warnings = handler.records
    logger = logging.getLogger("pairns.storage")
    logger.addHandler(handler)
    try:
        trio.run(_run_history, directory, steps)
    finally:
        logger.removeHandler(handler)
        sqlite_backend.SNAPSHOT_AFTER = original
        shutil.rmtree(directory, ignore_errors=True)
    # Every snapshot written was found valid and used: none was ignored.
    assert [record.getMessage() for record in warnings] == []


async def _run_history(directory: Path, steps: list[tuple[str, Any]]) -> None:
    model: dict[str, tuple[int, Entry]] = {}
    seq = 0
    sqlite_backend.SNAPSHOT_AFTER = 1
    storage_cm = open_storage(directory)
    storage = await storage_cm.__aenter__()
    try:
        loaded = await storage.open()
        assert loaded.rows == []
        for kind, arg in [*steps, ("restart", 1)]:
            if kind == "write":
                batch = []
                for name, deleted in arg:
                    seq += 1
                    change = (seq, entry(name, seq, deleted=deleted))
                    batch.append(change)
                    model[name] = change
                await storage.commit(batch)
            else:
                sqlite_backend.SNAPSHOT_AFTER = arg
                await storage_cm.__aexit__(None, None, None)
                storage_cm = open_storage(directory)
                storage = await storage_cm.__aenter__()
                loaded = await storage.open()
                assert loaded.rows == sorted(model.values(), key=lambda row: row[0])
                assert loaded.last_seq == seq
    finally:
        await storage_cm.__aexit__(None, None, None)


def test_repeated_values_come_back_as_one_object_and_times_keep_their_sign() -> None:
    columns = _columns(4)
    columns[6][0] = columns[5][0] = 0.0
    columns[6][1], columns[5][1] = -0.0, 0.0  # equal, but not the same float
    columns[7][:] = ["".join(["own", "er"]) for _ in range(4)]  # equal, distinct objects
    back = decode(encode(_snapshot(4, columns=columns)))
    assert back.columns == columns
    owners, created, modified = back.columns[7], back.columns[5], back.columns[6]
    assert all(owner is owners[0] for owner in owners)
    assert modified[0] is created[0]
    assert modified[1] is not created[1]
    assert str(modified[1]) == "-0.0"
    assert modified[2] is not created[2]  # different times stay different


async def test_a_snapshot_still_serves_after_its_tombstones_were_collected(
    tmp_path: Path, small_threshold: int, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [(i + 1, entry(f":e{i}", i, deleted=i % 2 == 0)) for i in range(8)]
    await _write(tmp_path, rows)
    token = _token(tmp_path)
    async with open_storage(tmp_path) as storage:
        await storage.open()
        await storage.collect([(":e0", 1), (":e4", 5)])  # rows the snapshot holds
    assert _token(tmp_path) == token  # too few changes for a new snapshot
    with caplog.at_level("WARNING", logger="pairns.storage"):
        loaded, _, uncovered = await _open(tmp_path)
    assert "snapshot" not in caplog.text
    assert loaded == _truth(tmp_path)
    assert [seq for seq, _ in loaded] == [2, 3, 4, 6, 7, 8]
    assert uncovered == 0
