"""Figures for the SQLite backend: group-commit throughput and open() time.

Prints, never fails on timing::

    .venv/bin/python benchmarks/sqlite_commit.py [--seconds 2] [--rows-per-commit 1]
        [--open-rows 100000] [--repeat 5] [--dir /path/on/the/disk/to/measure]

For 1, 4 and 16 concurrent committers (each awaiting its commit before making the
next, as a name-server client does): commits/s, rows/s, transactions (= fsyncs)/s
and the mean batch size; then the time ``open()`` takes to load ``--open-rows``
entries (best and median of ``--repeat``), and its two big parts measured alone: the
SQL fetch and ``entries_from_rows``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import tempfile
import time

import trio

from pairns.namespace.entry import Entry, Kind, entries_from_rows
from pairns.namespace.stamps import Stamp
from pairns.storage import SqliteStorage
from pairns.storage.sqlite import DB_NAME

HLC = 1_700_000_000_000_000 << 16


def make_entry(i: int) -> Entry:
    return Entry(
        name=f":Default.bench.object{i}",
        kind=Kind.OBJECT,
        uri=f"PYRO://192.168.1.10:7766/{i:032x}",
        meta={"owner": "bench", "n": i} if i % 2 else None,
        created=1_700_000_000.0 + i,
        modified=1_700_000_000.0 + i,
        owner="0123456789abcdef",
        stamp=Stamp(HLC + i, "0123456789abcdef"),
    )


def fsync_latency(directory: str, count: int = 50) -> float:
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        return (time.perf_counter() - start) / count
    finally:
        os.close(fd)
        os.unlink(path)


async def commit_throughput(
    directory: str, committers: int, seconds: float, rows_per_commit: int
) -> None:
    storage = SqliteStorage(directory)
    async with storage.running():
        await storage.open()
        counter = [0]
        commits = [0]
        deadline = trio.current_time() + seconds

        async def committer() -> None:
            while trio.current_time() < deadline:
                changes = []
                for _ in range(rows_per_commit):
                    counter[0] += 1
                    changes.append((counter[0], make_entry(counter[0])))
                await storage.commit(changes)
                commits[0] += 1

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(committers):
                nursery.start_soon(committer)
        elapsed = time.perf_counter() - start
        stats = storage.statistics()
    print(
        f"{committers:>3} committers: {commits[0] / elapsed:9,.0f} commits/s "
        f"{stats.changes / elapsed:9,.0f} rows/s "
        f"{stats.transactions / elapsed:7,.0f} transactions/s "
        f"(mean batch {stats.commits / max(stats.transactions, 1):5.1f} commits)"
    )


async def open_time(directory: str, rows: int, repeat: int) -> None:
    storage = SqliteStorage(directory)
    async with storage.running():
        await storage.open()
        batch = 10_000
        for first in range(0, rows, batch):
            stop = min(first + batch, rows)
            await storage.commit([(i + 1, make_entry(i)) for i in range(first, stop)])
    size = os.path.getsize(os.path.join(directory, DB_NAME))
    times: list[float] = []
    for _ in range(repeat):
        storage = SqliteStorage(directory)
        async with storage.running():
            start = time.perf_counter()
            loaded = await storage.open()
            times.append(time.perf_counter() - start)
        assert len(loaded.rows) == rows
        del loaded

    # The two big parts of open(), measured alone (collector paused, as open() does).
    fetches: list[float] = []
    builds: list[float] = []
    for _ in range(repeat):
        conn = sqlite3.connect(os.path.join(directory, DB_NAME))
        gc.disable()
        start = time.perf_counter()
        fetched = conn.execute(
            "SELECT name, kind, uri, meta, created, modified, owner, hlc, node, deleted"
            " FROM entries"
        ).fetchall()
        fetches.append(time.perf_counter() - start)
        start = time.perf_counter()
        built = entries_from_rows(fetched)
        builds.append(time.perf_counter() - start)
        gc.enable()
        conn.close()
        del fetched, built
    build = min(builds)
    print(
        f"open() of {rows:,} entries ({size / 1e6:.1f} MB): best {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s of {repeat}; parts: SQL fetch "
        f"{min(fetches):.3f} s, entries_from_rows {build:.3f} s ({build / rows * 1e6:.1f} us/row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rows-per-commit", type=int, default=1)
    parser.add_argument("--open-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="open() timings to take")
    parser.add_argument("--dir", default=None, help="where to put the databases (default: tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"fsync of 4 KiB in {tmp}: {fsync_latency(tmp) * 1e3:.2f} ms")
        for committers in (1, 4, 16):
            directory = os.path.join(tmp, f"c{committers}")
            trio.run(commit_throughput, directory, committers, args.seconds, args.rows_per_commit)
        trio.run(open_time, os.path.join(tmp, "open"), args.open_rows, args.repeat)


if __name__ == "__main__":
    main()
