"""The peer link's parts, driven directly: the state table as the only authority, a
stale connection's events dropped, the merge committer's order and undo.

No sockets: the acceptor is called as the daemon would call it, and time is virtual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from pairns.errors import LocalProtocolError, NamingError, StorageError
from pairns.namespace import HybridClock, Kind, Namespace
from pairns.namespace.entry import Entry
from pairns.namespace.stamps import Stamp
from pairns.naming.requests import RequestRecord
from pairns.replication import auth
from pairns.replication.acceptor import Acceptor
from pairns.replication.durability import MergeCommitter
from pairns.replication.link import Replicator
from pairns.replication.messages import Batch, Hello, Item
from pairns.replication.pairing import Refused
from pairns.replication.session import Link
from pairns.replication.state import LinkEvent, LinkState
from pairns.rpc.context import ConnectionInfo
from pairns.storage import MemoryStorage

KEY = b"pair secret"
TWIN = "ee" * 8


@asynccontextmanager
async def replicator(role: int = 1, **kw: Any) -> AsyncIterator[Replicator]:
    storage = MemoryStorage()
    async with storage.running():
        await storage.open()
        ns = Namespace("aa" * 8, HybridClock("aa" * 8))
        ns.bootstrap()
        yield Replicator(
            namespace=ns,
            storage=storage,
            node_id="aa" * 8,
            role=role,
            twin=("127.0.0.1", 9),
            identification=None,
            durable=False,
            pair_secret=KEY.decode(),
            **kw,
        )


def entry(name: str, ms: int) -> Entry:
    return Entry(name, Kind.OBJECT, f"PYRO://h:1/{ms}", None, 1.0, 1.0, TWIN, Stamp(ms << 16, TWIN))


def start(rep: Replicator, *, applied: int = 0) -> Link:
    """A link after hellos, as the accepting side starts one."""
    rep.pairing.fire(LinkEvent.DIAL)
    rep.pairing.fire(LinkEvent.CONNECTED)
    hello = Hello(node_id=TWIN, role=2, applied=applied, expect="")
    return rep.pairing.start_link(hello, their_applied=applied, full=True)


async def proven_hello(acceptor: Acceptor, hello: Hello) -> dict[str, Any]:
    """Call ``challenge`` then ``hello`` as the -2 twin does, on a fresh connection."""
    info = ConnectionInfo(("127.0.0.1", 40000), False)
    nonce = auth.new_nonce()
    answer = acceptor.answer_challenge(info, nonce, True)
    proof = auth.client_proof(KEY, 2, answer["nonce"], nonce)
    return await acceptor.accept_hello(info, hello.to_wire(), proof)


# -- the state table is the only authority ---------------------------------------------


async def test_an_event_the_table_refuses_raises_and_changes_nothing() -> None:
    async with replicator() as rep:
        pairing = rep.pairing
        for event in (LinkEvent.CAUGHT_UP, LinkEvent.HELLO, LinkEvent.CONNECTED):
            with pytest.raises(LocalProtocolError, match="not allowed in state down"):
                pairing.fire(event)
            assert rep.machine.state is LinkState.DOWN
        link = start(rep)
        with pytest.raises(LocalProtocolError, match="not allowed in state syncing"):
            pairing.fire(LinkEvent.DIAL)
        assert rep.status()["link"] == "syncing" and pairing.link is link


async def test_a_refusal_from_another_connection_does_not_cover_a_live_link() -> None:
    async with replicator() as rep:
        pairing = rep.pairing
        link = start(rep)
        pairing.refuse_other(Refused("same role", "a stranger"))
        assert rep.status()["link"] == "syncing"
        link.sent_caught_up = link.received_caught_up = True
        pairing.caught_up(link)
        assert rep.status()["link"] == "paired"  # once stuck at 'refused' for good
        await pairing.end_link(link)
        pairing.down("link closed", 1)
        pairing.refuse_other(Refused("same role", "a stranger"))
        assert rep.status()["link"] == "refused: same role"


# -- a stale connection's events are dropped ---------------------------------------------


async def test_a_replaced_links_news_is_dropped() -> None:
    async with replicator() as rep:
        pairing = rep.pairing
        old = start(rep)
        await pairing.end_link(old)
        pairing.down("the twin reconnected", 1)
        new = start(rep)
        old.sent_caught_up = old.received_caught_up = True
        pairing.caught_up(old)  # a late task of the old connection
        assert rep.status()["link"] == "syncing"
        new.sent_caught_up = new.received_caught_up = True
        pairing.caught_up(new)
        assert rep.status()["link"] == "paired"


async def test_pushes_and_polls_on_a_stale_session_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with replicator() as rep:
        acceptor = Acceptor(rep.pairing, pair_key=KEY)
        hello = Hello(node_id=TWIN, role=2, applied=0, expect="")
        first = await proven_hello(acceptor, hello)
        assert rep.status()["link"] == "syncing"
        second = await proven_hello(acceptor, hello)  # the first session never ran
        assert first["session"] != second["session"]
        assert rep.status()["link"] == "syncing"
        stale = Batch(start=0, upto=1, ack=0, items=(Item(1, entry(":Default.stale", 1)),))
        acceptor.on_push(first["session"], stale.to_wire())
        assert not rep.namespace.exists(":Default.stale")
        with pytest.raises(NamingError, match="peer session closed"):
            await acceptor.on_poll(first["session"], 0, 0.0)
        acceptor.on_push(second["session"], stale.to_wire())
        assert rep.namespace.exists(":Default.stale")


async def test_a_hello_replacing_a_link_that_did_not_end_reports_its_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with replicator() as rep:
        acceptor = Acceptor(rep.pairing, pair_key=KEY)
        hello = Hello(node_id=TWIN, role=2, applied=0, expect="")
        await proven_hello(acceptor, hello)
        old = rep.pairing.link
        assert old is not None
        old.sent_caught_up = old.received_caught_up = True
        rep.pairing.caught_up(old)
        assert rep.status()["link"] == "paired"
        before = trio.current_time()
        await proven_hello(acceptor, hello)  # the old session never finishes
        assert trio.current_time() - before >= rep.peer_timeout  # it waited for it
        assert old.closed and old.error == "the twin reconnected"
        assert rep.pairing.link is not old
        assert rep.status()["link"] == "syncing"


# -- the merge committer -----------------------------------------------------------------


class Disk:
    """Stands in for the storage: records each commit; fails while ``full``."""

    def __init__(self) -> None:
        self.commits: list[list[Any]] = []
        self.learnt: list[str] = []
        self.full = False
        self.gate = trio.Event()

    async def commit(self, rows: list[Any], learnt: Sequence[tuple[str, float]] = ()) -> None:
        await self.gate.wait()
        if self.full:
            raise StorageError("disk full (test)")
        self.commits.append(list(rows))
        self.learnt.extend(rid for rid, _ in learnt)


async def test_merged_batches_become_durable_in_merge_order() -> None:
    async with replicator() as rep:
        ns = rep.namespace
        disk = Disk()
        woken: list[None] = []
        committer = MergeCommitter(ns, disk, durable=True, on_durable=lambda: woken.append(None))  # type: ignore[arg-type]
        a, b = start(rep), None
        changes = [ns.merge_pairs([(entry(f":Default.n{i}", i + 1), None)]) for i in range(3)]
        committer.merged(a, 1, changes[0])
        assert a.positions.applied == 0 and committer.pending()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer.run)
            await trio.testing.wait_all_tasks_blocked()
            committer.merged(a, 2, changes[1])  # queued behind the commit in flight
            await rep.pairing.end_link(a)
            rep.pairing.down("gone", 1)
            b = start(rep)
            committer.merged(b, 3, changes[2])  # a new connection: still behind a's
            disk.gate.set()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert disk.commits == [list(changes[0].rows), [*changes[1].rows, *changes[2].rows]]
        assert a.positions.applied == 0  # it ended: its applied does not move
        assert b.positions.applied == 3 and woken
        assert not committer.pending()


async def test_request_ids_learnt_with_a_batch_are_stored_with_it() -> None:
    """The twin's request records ride in the batch's commit, also a batch that brings
    no new entry; applied moves only once they are stored."""
    async with replicator() as rep:
        ns = rep.namespace
        disk = Disk()
        committer = MergeCommitter(ns, disk, durable=True, on_durable=lambda: None)  # type: ignore[arg-type]
        a = start(rep)
        first = ns.merge_pairs([(entry(":Default.r", 1), None)])
        committer.merged(a, 1, first, [RequestRecord("rid-1", None, 0.5)])
        nothing_new = ns.merge_pairs([(entry(":Default.r", 1), None)])
        committer.merged(a, 2, nothing_new, [RequestRecord("rid-2", None, 0.0)])
        assert a.positions.applied == 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer.run)
            disk.gate.set()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert disk.learnt == ["rid-1", "rid-2"]
        assert a.positions.applied == 2


async def test_a_failed_commit_undoes_every_merge_not_durable_and_fails_the_links() -> None:
    async with replicator() as rep:
        ns = rep.namespace
        disk = Disk()
        disk.full = True
        committer = MergeCommitter(ns, disk, durable=True, on_durable=lambda: None)  # type: ignore[arg-type]
        link = start(rep)
        link.positions.on_received(2)
        first = ns.merge_pairs([(entry(":Default.first", 1), None)])
        committer.merged(link, 1, first)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer.run)
            await trio.testing.wait_all_tasks_blocked()
            second = ns.merge_pairs([(entry(":Default.second", 2), None)])
            committer.merged(link, 2, second)  # merged while the commit runs
            disk.gate.set()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert not ns.exists(":Default.first") and not ns.exists(":Default.second")
        assert link.closed and "cannot store what the twin sent" in link.error
        assert link.positions.received == link.positions.applied == 0
        assert not committer.pending() and disk.commits == []


async def test_in_memory_a_merge_is_durable_at_once() -> None:
    async with replicator() as rep:
        ns = rep.namespace
        committer = MergeCommitter(ns, Disk(), durable=False, on_durable=lambda: None)  # type: ignore[arg-type]
        link = start(rep)
        committer.merged(link, 1, ns.merge_pairs([(entry(":Default.m", 1), None)]))
        assert link.positions.applied == 1 and not committer.pending()
