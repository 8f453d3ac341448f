"""The storage contract: every backend passes every test here (see conftest.backend)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairns.errors import StorageError
from pairns.namespace.entry import Kind
from pairns.storage import MemoryStorage, SqliteStorage, open_storage
from pairns.storage.base import RESTORED_REQUESTS

from ._helpers import Backend, entry


async def test_open_empty(backend: Backend) -> None:
    async with backend.opened() as (storage, loaded):
        assert re.fullmatch(r"[0-9a-f]{16}", loaded.node_id)
        assert loaded.rows == []
        assert loaded.last_seq == 0
        assert loaded.kv == {}
        assert storage.last_seq == 0
        assert await storage.entries_since(0) == []


async def test_reopen_sees_everything_including_tombstones_and_kv(backend: Backend) -> None:
    group = entry(":Default", 1, kind=Kind.GROUP)
    obj = entry(":Default.obj", 2, meta={"nested": [1, "two", None]})
    tomb = entry(":Default.gone", 3, deleted=True)
    async with backend.opened() as (storage, first):
        await storage.commit([(1, group), (2, obj)])
        await storage.commit([(3, tomb)])
        await storage.set_kv("peer:abc", "17")
        assert storage.last_seq == 3
    async with backend.opened() as (storage, loaded):
        assert loaded.node_id == first.node_id
        assert loaded.rows == [(1, group), (2, obj), (3, tomb)]
        assert loaded.rows[2][1].deleted
        assert loaded.last_seq == 3
        assert loaded.kv == {"peer:abc": "17"}
        assert await storage.get_kv("peer:abc") == "17"


async def test_a_request_id_is_stored_with_the_last_row_of_its_write(backend: Backend) -> None:
    group = entry(":g", 1, kind=Kind.GROUP)
    obj = entry(":g.obj", 2)
    async with backend.opened() as (storage, _):
        await storage.commit([(1, group), (2, obj)], request_id="r-both")
        done: list[StorageError | None] = []
        storage.commit_soon([(3, entry(":x", 3))], done.append, request_id="r-soon")
        await storage.commit([(4, entry(":y", 4))])  # no id
        await storage.commit([(5, entry(":z", 5))], request_id="r-z")
        await storage.commit([(6, entry(":z", 6))])  # replaces :z, and drops its id
        with pytest.raises(TypeError, match="request id must be a string"):
            await storage.commit([(7, entry(":w", 7))], request_id=17)  # type: ignore[arg-type]
        assert done == [None]
    async with backend.opened() as (_, loaded):
        assert loaded.requests == [
            ("r-both", 2, obj.modified),
            ("r-soon", 3, entry(":x", 3).modified),
        ]


async def test_only_the_latest_request_ids_are_handed_back(backend: Backend) -> None:
    extra = 5
    async with backend.opened() as (storage, _):
        done: list[StorageError | None] = []
        for seq in range(1, RESTORED_REQUESTS + extra + 1):
            storage.commit_soon([(seq, entry(f":n{seq}", seq))], done.append, request_id=f"r{seq}")
        with trio.fail_after(60):
            while len(done) < RESTORED_REQUESTS + extra:
                await trio.sleep(0.01)
        assert set(done) == {None}
    async with backend.opened() as (_, loaded):
        assert len(loaded.requests) == RESTORED_REQUESTS
        assert loaded.requests[0][:2] == (f"r{extra + 1}", extra + 1)  # the oldest went
        assert loaded.requests[-1][:2] == (
            f"r{RESTORED_REQUESTS + extra}",
            RESTORED_REQUESTS + extra,
        )


async def test_request_ids_learnt_from_the_twin_survive_a_reopen(backend: Backend) -> None:
    """Ids learnt from the twin come back before this node's own, with seq 0, the
    latest RESTORED_REQUESTS of them; a commit of learnt ids alone is written too."""
    extra = 3
    learnt = [(f"t{i}", 1000.0 + i) for i in range(RESTORED_REQUESTS + extra)]
    async with backend.opened() as (storage, _):
        await storage.commit([(1, entry(":a", 1))], learnt=learnt[:10])
        await storage.commit([], learnt=learnt[10:])  # no change: still stored
        await storage.commit([(2, entry(":b", 2))], request_id="own")
        with pytest.raises(TypeError, match="request id must be a string"):
            await storage.commit([], learnt=[(5, 1.0)])  # type: ignore[list-item]
    async with backend.opened() as (_, loaded):
        twins = [r for r in loaded.requests if r[1] == 0]
        assert len(twins) == RESTORED_REQUESTS
        assert twins[0] == (f"t{extra}", 0, 1000.0 + extra)  # the oldest went
        last = RESTORED_REQUESTS + extra - 1
        assert twins[-1] == (f"t{last}", 0, 1000.0 + last)
        assert loaded.requests[-1] == ("own", 2, entry(":b", 2).modified)
        assert len(loaded.requests) == RESTORED_REQUESTS + 1


async def test_later_seq_overwrites_the_name(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        await storage.commit([(1, entry(":a", 1)), (2, entry(":b", 1))])
        await storage.commit([(3, entry(":a", 2))])
        # Within one call, too: order is preserved and the last change wins.
        await storage.commit([(4, entry(":c", 1)), (5, entry(":c", 2, deleted=True))])
    async with backend.opened() as (storage, loaded):
        assert loaded.rows == [
            (2, entry(":b", 1)),
            (3, entry(":a", 2)),
            (5, entry(":c", 2, deleted=True)),
        ]
        assert loaded.last_seq == 5


async def test_a_stale_row_committed_late_does_not_replace_a_newer_one(backend: Backend) -> None:
    """A merge from the twin is committed after the local write that replaced it in
    memory (seq 7 arrives after seq 8): the stored row stays the newer one. Found by the
    chaos suite: a node restarted after this held the older entry on disk."""
    async with backend.opened() as (storage, _):
        await storage.commit([(8, entry(":o", 8, deleted=True))])
        await storage.commit([(7, entry(":o", 7)), (6, entry(":p", 6))])
        # Within one call too: the higher seq wins, not the later position.
        await storage.commit([(10, entry(":q", 10)), (9, entry(":q", 9, deleted=True))])
    async with backend.opened() as (storage, loaded):
        assert loaded.rows == [
            (6, entry(":p", 6)),
            (8, entry(":o", 8, deleted=True)),
            (10, entry(":q", 10)),
        ]
        assert loaded.last_seq == 10


async def test_entries_since_is_ordered_by_seq_and_pages(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        # Names in an order unrelated to their seqs.
        await storage.commit([(seq, entry(f":n{100 - seq}", seq)) for seq in range(1, 21)])
        await storage.commit([(21, entry(":n95", 21, deleted=True))])  # seq 5's name again
        everything = await storage.entries_since(0)
        assert [seq for seq, _ in everything] == [*range(1, 5), *range(6, 22)]
        assert everything[-1][1].deleted
        assert [seq for seq, _ in await storage.entries_since(17)] == [18, 19, 20, 21]
        assert await storage.entries_since(21) == []
        pages, since = [], 0
        while page := await storage.entries_since(since, limit=6):
            pages.append(page)
            since = page[-1][0]
        assert [len(p) for p in pages] == [6, 6, 6, 2]
        assert [row for page in pages for row in page] == everything
        with pytest.raises(ValueError):
            await storage.entries_since(0, limit=-1)


async def test_concurrent_commits_from_50_tasks_are_all_durable(backend: Backend) -> None:
    async with backend.opened() as (storage, _):

        async def writer(task: int) -> None:
            for i in range(3):
                seq = task * 3 + i + 1
                await storage.commit([(seq, entry(f":t{task}.{i}", seq))])

        async with trio.open_nursery() as nursery:
            for task in range(50):
                nursery.start_soon(writer, task)
        stats = storage.statistics()
        assert stats.commits == 150
        assert stats.changes == 150
    async with backend.opened() as (_, loaded):
        assert [seq for seq, _ in loaded.rows] == list(range(1, 151))
        assert loaded.last_seq == 150


async def test_entries_since_while_commits_run(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        done = trio.Event()

        async def writers() -> None:
            async with trio.open_nursery() as nursery:
                for seq in range(1, 101):
                    nursery.start_soon(storage.commit, [(seq, entry(f":w{seq}", seq))])
            done.set()

        async def reader() -> None:
            while not done.is_set():
                seqs = [seq for seq, _ in await storage.entries_since(0)]
                assert seqs == sorted(set(seqs))
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writers)
            for _ in range(4):
                nursery.start_soon(reader)
        assert [seq for seq, _ in await storage.entries_since(0)] == list(range(1, 101))


async def test_group_commit_shares_transactions(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        before = storage.statistics()
        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(storage.commit, [(i + 1, entry(f":g{i}", i))])
        stats = storage.statistics()
        assert stats.commits - before.commits == 16
        assert stats.transactions - before.transactions < 16
        assert stats.failed_transactions == 0


async def test_empty_commit_returns_without_a_transaction(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        await storage.commit([])
        assert storage.statistics().transactions == 0


async def test_kv_set_get_and_overwrite(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        assert await storage.get_kv("k") is None
        assert await storage.get_kv("k", "default") == "default"
        await storage.set_kv("k", "1")
        await storage.set_kv("k", "2")
        await storage.set_kv("other", "")
        assert await storage.get_kv("k") == "2"
        with pytest.raises(TypeError):
            await storage.set_kv("k", 3)  # type: ignore[arg-type]
    async with backend.opened() as (storage, loaded):
        assert loaded.kv == {"k": "2", "other": ""}


async def test_a_bad_change_fails_only_its_own_caller(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        with pytest.raises(TypeError):
            await storage.commit([(1, "not an entry")])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await storage.commit([(0, entry(":zero"))])
        await storage.commit([(1, entry(":good", 1))])
        assert [seq for seq, _ in await storage.entries_since(0)] == [1]


async def test_commit_after_close_raises(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        await storage.commit([(1, entry(":a"))])
        await storage.close()
        with pytest.raises(StorageError, match="closed"):
            await storage.commit([(2, entry(":b"))])
        with pytest.raises(StorageError, match="closed"):
            await storage.set_kv("k", "v")
        with pytest.raises(StorageError, match="closed"):
            await storage.entries_since(0)
        await storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await storage.commit([(2, entry(":b"))])


async def test_commit_before_open_and_double_open_raise(backend: Backend) -> None:
    async with backend.create().running() as storage:
        with pytest.raises(StorageError, match="not open"):
            await storage.commit([(1, entry(":a"))])
        await storage.open()
        with pytest.raises(StorageError, match="already open"):
            await storage.open()


async def test_commit_without_running_committer_raises(backend: Backend) -> None:
    storage = backend.create()
    await storage.open()
    try:
        with pytest.raises(StorageError, match="no committer running"):
            await storage.commit([(1, entry(":a"))])
    finally:
        await storage.close()


async def test_close_waits_for_queued_commits(backend: Backend) -> None:
    async with backend.opened() as (storage, _), trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(storage.commit, [(i + 1, entry(f":q{i}", i))])
        await trio.testing.wait_all_tasks_blocked()
        await storage.close()
    async with backend.opened() as (_, loaded):
        assert len(loaded.rows) == 10


async def test_cancelled_caller_still_waits_for_its_commit(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        with trio.CancelScope() as scope:
            scope.cancel()
            await storage.commit([(1, entry(":cancelled", 1))])
            await trio.lowlevel.checkpoint()  # the cancellation lands here, not before
        assert scope.cancelled_caught
        assert [seq for seq, _ in await storage.entries_since(0)] == [1]


async def test_cancelling_the_storage_block_never_hangs_or_lies(backend: Backend) -> None:
    acknowledged: list[int] = []
    refused: list[int] = []
    with trio.CancelScope() as outer:
        async with backend.opened() as (storage, _), trio.open_nursery() as nursery:

            async def writer(seq: int) -> None:
                try:
                    await storage.commit([(seq, entry(f":c{seq}", seq))])
                except StorageError:
                    refused.append(seq)
                else:
                    acknowledged.append(seq)

            for seq in range(1, 16):
                nursery.start_soon(writer, seq)
            await trio.testing.wait_all_tasks_blocked()
            # These queue up behind (or after) the first batch, then the block is
            # cancelled. A Trio committer is cancelled before it can write them, so
            # they are refused; a committer thread is never cancelled and writes
            # everything queued before the close.
            for seq in range(16, 31):
                nursery.start_soon(writer, seq)
            outer.cancel()
    assert len(acknowledged) + len(refused) == 30
    late = set(range(16, 31))
    if backend.kind == "sqlite":  # WRITES_IN_THREAD
        assert late <= set(acknowledged)
    else:
        assert late <= set(refused)
    async with backend.opened() as (_, loaded):
        stored = {seq for seq, _ in loaded.rows}
        assert set(acknowledged) <= stored
        assert not set(refused) & stored  # refused means not written


async def test_open_storage_picks_the_backend_by_directory(tmp_path: Path) -> None:
    async with open_storage(None) as storage:
        assert isinstance(storage, MemoryStorage)
        assert (await storage.open()).rows == []
        assert storage.describe() == "memory"
    async with open_storage(tmp_path) as storage:
        assert isinstance(storage, SqliteStorage)
        await storage.open()
        assert storage.describe() == str(tmp_path / "pairns.sqlite3")


# A random history of batches over a few names; the store must equal the model.
_batches = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.booleans()),
        min_size=1,
        max_size=5,
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_batches, since=st.integers(min_value=0, max_value=45))
async def test_store_matches_a_last_writer_wins_model(
    kind: str, batches: list[list[tuple[str, bool]]], since: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(kind, Path(tmp) / "data")
        model = {}
        seq = 0
        async with backend.opened() as (storage, _), trio.open_nursery() as nursery:
            for batch in batches:
                changes = []
                for name, deleted in batch:
                    seq += 1
                    change = (seq, entry(f":{name}", seq, deleted=deleted))
                    changes.append(change)
                    model[f":{name}"] = change
                # Concurrent callers, queued in order: order must still hold.
                nursery.start_soon(storage.commit, changes)
                await trio.testing.wait_all_tasks_blocked()
        async with backend.opened() as (storage, loaded):
            expected = sorted(model.values(), key=lambda row: row[0])
            assert loaded.rows == expected
            assert loaded.last_seq == seq
            assert await storage.entries_since(since) == [r for r in expected if r[0] > since]


async def test_commit_soon_calls_back_once_durable_in_order(backend: Backend) -> None:
    """The task-less commit: callbacks run once written, batches pipeline behind each
    other, and what was called back as written is there after a reopen."""
    async with backend.opened() as (storage, _):
        called: list[tuple[int, object]] = []
        everything = trio.Event()

        def callback_for(seq: int) -> Callable[[StorageError | None], None]:
            def done(error: StorageError | None) -> None:
                assert seq <= storage.last_seq  # written before we are told
                called.append((seq, error))
                if len(called) == 40:
                    everything.set()

            return done

        for seq in range(1, 41):
            storage.commit_soon([(seq, entry(f":s{seq % 7}", seq))], callback_for(seq))
            if seq % 9 == 0:
                await trio.sleep(0)  # some arrive while a batch is being written
        with trio.fail_after(10):
            await everything.wait()
        assert called == [(seq, None) for seq in range(1, 41)]
        assert storage.statistics().transactions < 40  # they shared transactions
        empty: list[object] = []
        storage.commit_soon([], empty.append)
        assert empty == [None]
        with pytest.raises(TypeError):
            storage.commit_soon([(0, entry(":bad", 1))], empty.append)
        assert empty == [None]
    async with backend.opened() as (storage, loaded):
        assert sorted(seq for seq, _ in loaded.rows) == list(range(34, 41))


async def test_flush_returns_after_every_commit_asked_for_before_it(backend: Backend) -> None:
    """``flush`` is a barrier: the callbacks of earlier commits have run when it returns,
    and a flush alone writes nothing (no transaction is counted)."""
    async with backend.opened() as (storage, _):
        await storage.flush()
        assert storage.statistics().transactions == 0
        called: list[int] = []
        for seq in range(1, 6):
            storage.commit_soon([(seq, entry(f":f{seq}", seq))], lambda _e, s=seq: called.append(s))
        await storage.flush()
        assert called == [1, 2, 3, 4, 5]
        assert storage.last_seq == 5


async def test_commit_soon_on_a_closing_storage_is_refused_or_called_back(
    backend: Backend,
) -> None:
    errors: list[StorageError | None] = []
    async with backend.opened() as (storage, _):
        storage.commit_soon([(1, entry(":a", 1))], errors.append)
    # Leaving the block waited for the queued change: it was written, then closed.
    assert errors == [None]
    with pytest.raises(StorageError, match="closed"):
        storage.commit_soon([(2, entry(":b", 2))], errors.append)
    assert errors == [None]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=25, deadline=None)
@given(batches=_batches, order=st.randoms(use_true_random=False))
async def test_store_keeps_the_highest_seq_per_name_in_any_commit_order(
    kind: str, batches: list[list[tuple[str, bool]]], order: Any
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(kind, Path(tmp) / "data")
        model: dict[str, tuple[int, Any]] = {}
        calls = []
        seq = 0
        for batch in batches:
            changes = []
            for name, deleted in batch:
                seq += 1
                change = (seq, entry(f":{name}", seq, deleted=deleted))
                changes.append(change)
                if f":{name}" not in model or model[f":{name}"][0] < seq:
                    model[f":{name}"] = change
            calls.append(changes)
        order.shuffle(calls)
        async with backend.opened() as (storage, _):
            for changes in calls:
                await storage.commit(changes)
        async with backend.opened() as (storage, loaded):
            assert loaded.rows == sorted(model.values(), key=lambda row: row[0])


async def test_collect_deletes_the_rows_of_collected_tombstones(backend: Backend) -> None:
    live = entry(":Default.kept", 1)
    tomb = entry(":Default.gone", 2, deleted=True)
    again = entry(":Default.back", 3, deleted=True)
    async with backend.opened() as (storage, _):
        await storage.commit([(1, live), (2, tomb), (3, again)])
        # :Default.back was registered again after the collection took its tombstone:
        # the new row stays (the drop names the old seq).
        await storage.commit([(4, entry(":Default.back", 4))])
        await storage.collect([(":Default.gone", 2), (":Default.back", 3)], {"h": "7 x"})
        assert [seq for seq, _ in await storage.entries_since(0)] == [1, 4]
    async with backend.opened() as (storage, loaded):
        assert [seq for seq, _ in loaded.rows] == [1, 4]
        assert loaded.kv["h"] == "7 x"
        assert loaded.last_seq == 4
        # a name collected and registered again later replaces nothing on disk
        await storage.commit([(5, entry(":Default.gone", 5))])
        assert [seq for seq, _ in await storage.entries_since(0)] == [1, 4, 5]


async def test_a_collect_in_the_batch_that_rewrites_the_name_keeps_the_new_row(
    backend: Backend,
) -> None:
    async with backend.opened() as (storage, _):
        await storage.commit([(1, entry(":x", 1, deleted=True))])
        async with trio.open_nursery() as nursery:  # one transaction for both
            nursery.start_soon(storage.commit, [(2, entry(":x", 2))])
            nursery.start_soon(storage.collect, [(":x", 1)])
        assert [seq for seq, _ in await storage.entries_since(0)] == [2]
    async with backend.opened() as (_, loaded):
        assert [seq for seq, _ in loaded.rows] == [2]


async def test_the_feed_end_survives_the_collection_of_its_last_row(backend: Backend) -> None:
    async with backend.opened() as (storage, _):
        await storage.commit([(1, entry(":a", 1)), (2, entry(":b", 2, deleted=True))])
        await storage.collect([(":b", 2)])
    async with backend.opened() as (_, loaded):
        assert [seq for seq, _ in loaded.rows] == [1]
        assert loaded.last_seq == 2  # new changes must not reuse position 2
