"""The name service's write path: which strategy a node gets, and that a write retried
with the same request id is applied once and answered like the first, in every strategy."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from pairns.errors import NamingError
from pairns.namespace import Entry, HybridClock, Namespace
from pairns.naming.requests import RequestTable
from pairns.naming.service import NameServer
from pairns.naming.writes import (
    AckTwinWrites,
    GroupCommitWrites,
    InMemoryWrites,
    WritePath,
    choose_writes,
)
from pairns.rpc import Deferred, current_request_id
from pairns.storage import open_storage
from pairns.storage.base import Storage
from pairns.storage.memory import MemoryStorage

URI_A = "PYRO://h:1/a"
URI_B = "PYRO://h:1/b"


class FakeTwin:
    """A peer link whose twin acknowledges only when the test says so."""

    def __init__(self, ack_mode: str = "twin") -> None:
        self.ack_mode = ack_mode
        self.twin = ("127.0.0.1", 9091)
        self.woken = 0
        self.waits: list[int] = []
        self.acked = trio.Event()

    def changed(self) -> None:
        self.woken += 1

    async def wait_twin(self, seq: int) -> bool:
        self.waits.append(seq)
        await self.acked.wait()
        return True

    def request_resync(self) -> None:
        raise AssertionError("not used here")

    def status(self) -> dict[str, Any]:
        return {}


class CountingStorage:
    """A real storage that counts the commits of each name."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.committed: list[str] = []

    def commit_soon(
        self,
        changes: Sequence[tuple[int, Entry]],
        callback: Callable[[Any], None],
        *,
        request_id: str | None = None,
    ) -> None:
        self.committed.extend(entry.name for _, entry in changes)
        self.inner.commit_soon(changes, callback, request_id=request_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def counting_storage() -> AsyncIterator[CountingStorage]:
    async with open_storage(None) as inner:
        await inner.open()
        yield CountingStorage(inner)


@contextmanager
def request(request_id: str | None) -> Iterator[None]:
    """Serve the calls in the block as the daemon serves a call carrying *request_id*."""
    token = current_request_id.set(request_id)
    try:
        yield
    finally:
        current_request_id.reset(token)


async def settle(answer: Any) -> Any:
    """What the remote caller gets: the answer, or what its Deferred is finished with."""
    if not isinstance(answer, Deferred):
        return answer
    done = trio.Event()
    box: list[outcome.Outcome[Any]] = []
    answer.add_done_callback(lambda result: (box.append(result), done.set()))
    await done.wait()
    return box[0].unwrap()


def namespace() -> Namespace:
    ns = Namespace("n1", HybridClock("n1"))
    ns.bootstrap()
    return ns


# -- which strategy -----------------------------------------------------------------


def _chosen(*, durable: bool, link: FakeTwin | None, nursery: Any = None) -> WritePath:
    return choose_writes(
        namespace(), MemoryStorage(), RequestTable(), link, durable=durable, nursery=nursery
    )


async def test_the_strategy_follows_the_mode_and_the_ack_setting() -> None:
    assert type(_chosen(durable=False, link=None)) is InMemoryWrites
    assert type(_chosen(durable=False, link=FakeTwin("local"))) is InMemoryWrites
    assert type(_chosen(durable=True, link=None)) is GroupCommitWrites
    assert type(_chosen(durable=True, link=FakeTwin("local"))) is GroupCommitWrites
    async with trio.open_nursery() as nursery:
        for durable in (False, True):
            chosen = _chosen(durable=durable, link=FakeTwin("twin"), nursery=nursery)
            assert type(chosen) is AckTwinWrites


def test_ack_twin_needs_a_nursery_to_wait_in() -> None:
    with pytest.raises(ValueError, match="nursery"):
        _chosen(durable=True, link=FakeTwin("twin"))


async def test_the_write_methods_are_plain_methods_of_the_class_in_every_mode() -> None:
    """The daemon answers them inline or through a Deferred: never as a task, and no
    instance attribute replaces them."""
    async with trio.open_nursery() as nursery:
        for durable, link in ((False, None), (True, None), (True, FakeTwin("twin"))):
            service = NameServer(
                namespace(),
                MemoryStorage(),
                durable=durable,
                node_info=dict,
                replicator=link,
                nursery=nursery,
            )
            for method in ("register", "unregister", "createGroup", "deleteGroup", "setMeta"):
                assert method not in vars(service), method
                assert not inspect.iscoroutinefunction(getattr(service, method)), method


# -- in memory ------------------------------------------------------------------------


def test_in_memory_a_retried_write_is_applied_once() -> None:
    ns = namespace()
    link = FakeTwin("local")
    service = NameServer(ns, MemoryStorage(), durable=False, node_info=dict, replicator=link)
    with request("req-1"):
        assert service.register(":Default.x", URI_A) is None
    seq = ns.last_seq
    with request("req-1"):
        assert service.register(":Default.x", URI_A) is None  # not "name already exists"
    assert ns.last_seq == seq and link.woken == 1
    # Another id is another write.
    with request("req-2"), pytest.raises(NamingError, match="already exists"):
        service.register(":Default.x", URI_B)
    with request(None), pytest.raises(NamingError, match="already exists"):
        service.register(":Default.x", URI_A)
    assert service.resolve(":Default.x") == URI_A


def test_in_memory_a_failed_write_leaves_its_request_id_unknown() -> None:
    ns = namespace()
    service = NameServer(ns, MemoryStorage(), durable=False, node_info=dict)
    with request("req-1"), pytest.raises(NamingError, match="not found"):
        service.unregister(":Default.nothing")
    with request("req-1"):
        assert service.register(":Default.nothing", URI_A) is None
    assert service.resolve(":Default.nothing") == URI_A


# -- group commit ---------------------------------------------------------------------


async def test_group_commit_a_retry_during_and_after_the_commit_is_applied_once() -> None:
    async with counting_storage() as storage:
        ns = namespace()
        service = NameServer(ns, storage, durable=True, node_info=dict)
        with request("req-1"):
            first = service.setMeta(":Default", {"v": 1})
            during = service.setMeta(":Default", {"v": 1})
        assert isinstance(first, Deferred) and isinstance(during, Deferred)
        assert not first.done and not during.done  # both wait for the commit
        assert await settle(first) is None
        assert await settle(during) is None
        with request("req-1"):
            after = service.setMeta(":Default", {"v": 1})
        assert after is None  # known: answered at once, nothing to commit
        assert storage.committed.count(":Default") == 1


async def test_group_commit_answers_only_once_durable() -> None:
    async with counting_storage() as storage:
        service = NameServer(namespace(), storage, durable=True, node_info=dict)
        with request("req-1"):
            answer = service.createGroup(":G")
        assert isinstance(answer, Deferred) and not answer.done
        await settle(answer)
        assert storage.inner.last_seq >= 1
        assert storage.committed == [":G"]


# -- ack twin ---------------------------------------------------------------------------


@pytest.mark.parametrize("durable", [False, True])
async def test_ack_twin_a_retried_write_is_applied_once_and_answered_after_the_twin(
    durable: bool,
) -> None:
    async with counting_storage() as storage, trio.open_nursery() as nursery:
        ns = namespace()
        link = FakeTwin("twin")
        service = NameServer(
            ns,
            storage,
            durable=durable,
            node_info=dict,
            replicator=link,
            nursery=nursery,
        )
        with request("req-1"):
            first = service.register(":Default.x", URI_A)
            retry = service.register(":Default.x", URI_A)
        assert isinstance(first, Deferred)
        await trio.testing.wait_all_tasks_blocked()
        # Durable here (and remembered), not yet applied by the twin: no answer yet.
        assert not first.done and link.waits == [ns.last_seq]
        with request("req-1"):
            late = service.register(":Default.x", URI_A)
        link.acked.set()
        assert [await settle(a) for a in (first, retry, late)] == [None, None, None]
        assert link.waits == [ns.last_seq] and link.woken == 1
        assert storage.committed.count(":Default.x") == (1 if durable else 0)
        assert service.resolve(":Default.x") == URI_A


async def test_ack_twin_without_request_ids_each_write_waits_for_the_twin() -> None:
    async with counting_storage() as storage, trio.open_nursery() as nursery:
        link = FakeTwin("twin")
        service = NameServer(
            namespace(),
            storage,
            durable=True,
            node_info=dict,
            replicator=link,
            nursery=nursery,
        )
        answers = [service.createGroup(":A"), service.createGroup(":B")]
        await trio.testing.wait_all_tasks_blocked()
        assert len(link.waits) == 2 and not any(a.done for a in answers if a is not None)
        link.acked.set()
        assert [await settle(a) for a in answers] == [None, None]
        assert storage.committed == [":A", ":B"]
