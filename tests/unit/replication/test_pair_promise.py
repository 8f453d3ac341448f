"""Regression tests for the ways the pair once broke its promise (issue 18).

Each test is one defect found by an adversarial run: two in-process nodes on loopback
with a short peer timeout. Before the fixes, each ended with both nodes ``paired`` and
no conflict reported, yet different digests, a lost acknowledged write, or a peer link
that trusted whoever spoke to it. Every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from pairns.config import Config
from pairns.errors import NamingError, StorageError
from pairns.namespace import Kind
from pairns.namespace.entry import Entry
from pairns.namespace.stamps import COUNTER_BITS, Stamp
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.node import Node, open_node
from pairns.replication import auth
from pairns.replication.link import PEER_OBJECT_ID
from pairns.replication.messages import Batch, Hello, Item, encode_contents
from pairns.rpc import AsyncProxy

HOST = "127.0.0.1"
TIMEOUT = 0.4


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def config(tmp: Path, name: str, port: int, role: int, twin: str, **kw: Any) -> Config:
    return Config(
        host=kw.pop("host", HOST),
        port=port,
        role=role,
        twin=twin,
        uri_file=str(tmp / f"{name}.uri"),
        peer_timeout=TIMEOUT,
        **kw,
    )


def persistent(tmp: Path, name: str) -> dict[str, Any]:
    return {"persistent": True, "database": str(tmp / f"{name}-db")}


async def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not check():
            await trio.sleep(0.02)


def link(node: Node) -> str:
    assert node.replicator is not None
    return str(node.replicator.status()["link"])


async def converged(a: Node, b: Node, seconds: float = 10.0) -> None:
    """Both paired, nothing unacknowledged either way, equal digests."""

    def done() -> bool:
        assert a.replicator is not None and b.replicator is not None
        return (
            link(a) == "paired"
            and link(b) == "paired"
            and a.replicator.status()["unacked_changes"] == 0
            and b.replicator.status()["unacked_changes"] == 0
            and a.namespace.digest() == b.namespace.digest()
        )

    await wait_for(done, seconds)


def client(node: Node, **kw: Any) -> AsyncNameServerProxy:
    return AsyncNameServerProxy(HOST, node.address[1], timeout=5.0, **kw)


class Ports:
    def __init__(self) -> None:
        self.p1, self.p2 = free_port(), free_port()

    def twin_of_1(self) -> str:
        return f"{HOST}:{self.p2}"

    def twin_of_2(self) -> str:
        return f"{HOST}:{self.p1}"


def ahead(seconds: float) -> Callable[[], float]:
    return lambda: time.time() + seconds


# -- 1. a restarted node's clock ------------------------------------------------------


@pytest.mark.parametrize("skew", [5.0, 30.0])
async def test_a_restarted_node_stamps_above_what_it_replaces(tmp_path: Path, skew: float) -> None:
    """The twin's clock runs ahead: after a restart, this node's unregister, setMeta and
    deleteGroup must still beat what they replace (they used to be dropped by the twin,
    and a resync then brought the unregistered name back)."""
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    async with open_node(c1, wall_clock=ahead(skew)) as n1:
        async with open_node(c2) as n2, client(n1) as a:
            await a.createGroup(":g")
            await a.register(":g.x", "PYRO://127.0.0.1:1/x")
            await a.register(":g.y", "PYRO://127.0.0.1:1/y")
            await a.createGroup(":h")
            await converged(n1, n2)
        async with open_node(c2) as n2, client(n2) as b:
            await converged(n1, n2)
            await b.unregister(":g.x")
            await b.setMeta(":g.y", {"set": "on the restarted node"})
            await b.deleteGroup(":h")
            await converged(n1, n2)
            for node in (n1, n2):
                assert not node.namespace.exists(":g.x")
                assert node.namespace.get_meta(":g.y") == {"set": "on the restarted node"}
                assert not node.namespace.exists(":h")


def test_the_clock_is_restored_from_the_stored_stamps() -> None:
    from pairns.namespace import HybridClock, Namespace

    future = int((time.time() + 3600) * 1000) << COUNTER_BITS
    row = Entry(":x", Kind.OBJECT, "PYRO://h:1/x", None, 1.0, 1.0, "B", Stamp(future, "B"))
    ns = Namespace("A", HybridClock("A"))
    ns.load([(1, row)], 1)
    assert ns.clock.last >= future
    changes = ns.unregister(":x")
    assert changes.entries[-1].stamp > row.stamp


def test_a_local_write_beats_the_entry_it_replaces_whatever_the_clock() -> None:
    from pairns.namespace import HybridClock, Namespace

    ns = Namespace("A", HybridClock("A", lambda: 1000.0))
    ns.bootstrap()
    later = (5000 * 1000) << COUNTER_BITS
    ns.merge(Entry(":o", Kind.OBJECT, "PYRO://h:1/o", None, 5.0, 5.0, "B", Stamp(later, "B")))
    ns.clock._last = 0  # a clock that lost track (the bug): the write must still win
    for change in (ns.set_meta(":o", 1), ns.unregister(":o")):
        assert change.entries[-1].stamp.hlc > later


# -- 2. a node restarted from an older copy of its database ------------------------


async def test_a_node_restored_from_an_old_copy_converges_both_ways(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **persistent(tmp_path, "n1"))
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    db2, backup = tmp_path / "n2-db", tmp_path / "n2-backup"
    async with open_node(c1) as n1:
        async with open_node(c2) as n2, client(n2) as b:
            await b.createGroup(":g")
            for i in range(5):
                await b.register(f":g.old{i}", f"PYRO://127.0.0.1:1/old{i}")
            await converged(n1, n2)
        shutil.copytree(db2, backup)  # the backup
        async with open_node(c2) as n2, client(n2) as b:
            await converged(n1, n2)
            for i in range(30):  # more than the backup's feed holds
                await b.register(f":g.after{i}", f"PYRO://127.0.0.1:1/after{i}")
            await b.unregister(":g.old0")
            await converged(n1, n2)
    shutil.rmtree(db2)
    shutil.copytree(backup, db2)  # restored
    async with open_node(c2) as n2, client(n2) as b:
        # Acknowledged on the restored node while its twin is away: its feed grows past
        # the position the twin claims, so only the history can tell the claim is false.
        for i in range(40):
            await b.register(f":g.new{i}", f"PYRO://127.0.0.1:1/new{i}")
        async with open_node(c1) as n1:
            await converged(n1, n2, 15.0)
            for node in (n1, n2):
                assert node.namespace.exists(":g.after29"), node.node_id
                assert node.namespace.exists(":g.new39"), node.node_id
                assert not node.namespace.exists(":g.old0"), node.node_id
                assert node.namespace.exists(":g.old1"), node.node_id
            assert n2.replicator is not None
            assert n2.replicator.counters.full_resyncs >= 1


async def test_a_copy_restored_after_a_wipe_gets_back_its_own_lost_changes(
    tmp_path: Path,
) -> None:
    """Found by the chaos suite (seed 11, round 46): node 2 deleted a name after a backup
    was taken, was then wiped (a new node id), then restored from that backup (its old
    node id again). The twin had the deletion, but as a change *from node 2*, which its
    echo filter never sends back: node 2 showed the deleted name for good. A twin whose
    node id changed is a full resync both ways, announced in the hello, and one that
    ends early is done again."""
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **persistent(tmp_path, "n1"))
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    db2, backup = tmp_path / "n2-db", tmp_path / "n2-backup"
    async with open_node(c1) as n1:
        async with open_node(c2) as n2, client(n2) as b:
            for i in range(5):
                await b.register(f":Default.x{i}", f"PYRO://127.0.0.1:1/x{i}")
            await converged(n1, n2)
        shutil.copytree(db2, backup)
        async with open_node(c2) as n2, client(n2) as b:
            await converged(n1, n2)
            await b.unregister(":Default.x0")  # on node 2, after the backup
            await converged(n1, n2)
        shutil.rmtree(db2)  # wiped: a new node id
        async with open_node(c2) as n2:
            await converged(n1, n2)
        shutil.rmtree(db2)
        shutil.copytree(backup, db2)  # restored: the old node id, without the deletion
        async with open_node(c2) as n2:
            await converged(n1, n2, 15.0)
            for node in (n1, n2):
                assert not node.namespace.exists(":Default.x0"), node.node_id
                assert node.namespace.exists(":Default.x1"), node.node_id


async def test_a_twin_restored_under_a_running_node_gets_back_what_it_lost(
    tmp_path: Path,
) -> None:
    """Found by the chaos suite (seed 41, round 6): node 2 deleted names after a backup
    was taken and was then restored from it, while node 1 kept running. Node 1's claim
    on node 2's feed went past the backup's end; cut to where node 2's history now
    forks, it looked true, so the link was incremental - and node 1's echo filter held
    back the deletions, which it had from node 2. Node 2 showed the names for good. A
    twin whose history forks below what this node holds of it is a full resync."""
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **persistent(tmp_path, "n1"))
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    db2, backup = tmp_path / "n2-db", tmp_path / "n2-backup"
    async with open_node(c1) as n1:
        async with open_node(c2) as n2, client(n2) as b:
            for i in range(10):
                await b.register(f":Default.x{i}", f"PYRO://127.0.0.1:1/x{i}")
            await converged(n1, n2)
            await trio.sleep(0.3)  # the positions are stored
            # A copy of the running node (no await: nothing runs meanwhile), so the
            # deletions below are in the same run of its feed as the copy's end.
            shutil.copytree(db2, backup)
            for i in range(5):
                await b.unregister(f":Default.x{i}")  # on node 2, after the backup
            await converged(n1, n2)
        shutil.rmtree(db2)
        shutil.copytree(backup, db2)  # restored: without the deletions
        async with open_node(c2) as n2:
            await converged(n1, n2, 15.0)
            for node in (n1, n2):
                assert not node.namespace.exists(":Default.x0"), node.node_id
                assert not node.namespace.exists(":Default.x4"), node.node_id
                assert node.namespace.exists(":Default.x5"), node.node_id


async def test_a_full_resync_is_owed_until_the_twin_acknowledged_it(tmp_path: Path) -> None:
    """While a full resync is not acknowledged, every link sends the twin its own
    earlier changes too (the twin may have lost them); a link that ends early does not
    end the obligation. Driven without sockets."""
    from pairns.namespace import HybridClock, Namespace
    from pairns.replication.link import Replicator
    from pairns.replication.state import LinkEvent
    from pairns.storage import open_storage

    async with open_storage(None) as storage:
        loaded = await storage.open()
        ns = Namespace(loaded.node_id, HybridClock(loaded.node_id))
        ns.bootstrap()
        rep = Replicator(
            namespace=ns, storage=storage, node_id=loaded.node_id, role=1,
            twin=(HOST, free_port()), identification=None, durable=False,
        )
        twin = Hello(node_id="ee" * 8, role=2, applied=0, expect="")

        def start(hello: Hello, *, full: bool) -> Any:
            rep.pairing.fire(LinkEvent.DIAL)
            rep.pairing.fire(LinkEvent.CONNECTED)
            return rep.pairing.start_link(hello, their_applied=hello.applied, full=full)

        async def end(link: Any) -> None:  # as the accepting side ends a session
            await rep.pairing.end_link(link)
            rep.pairing.down("link closed", 1)

        assert rep.pairing.full_reason(twin) == "a new twin"
        first = start(twin, full=True)
        assert first.full and rep.status()["link"] == "syncing"
        await end(first)  # before the twin acknowledged anything
        again = attrs.evolve(twin, applied=1, expect=rep.node_id)
        assert rep.pairing.full_reason(again) is None  # an incremental resync is fine...
        second = start(again, full=False)
        assert second.full  # ...but its echo filter still holds back only this link's
        second.positions.on_sent(ns.last_seq)
        assert second.positions.on_ack(ns.last_seq)
        rep.pairing.acked_moved(second)
        await end(second)
        third = start(attrs.evolve(again, applied=ns.last_seq), full=False)
        assert not third.full


def test_feed_history_vouches_only_for_positions_it_wrote() -> None:
    from pairns.replication.feed_history import FeedHistory

    h = FeedHistory().started("a", 1).started("b", 101)
    assert h.current == "b"
    assert h.vouches("a", 100, 150) and not h.vouches("a", 101, 150)
    assert h.vouches("b", 150, 150) and not h.vouches("b", 151, 150)
    assert not h.vouches("zzz", 5, 150)  # a run this copy never had: restored
    assert h.vouches("", 150, 150) and not h.vouches("", 151, 150)
    assert h.vouches("zzz", 0, 150)
    restored = FeedHistory().started("a", 1).started("c", 81)  # a copy taken at 80
    assert not restored.vouches("a", 100, 120) and not restored.vouches("b", 90, 120)
    assert FeedHistory.from_text(h.to_text()) == h
    assert FeedHistory.from_text("garbage") == FeedHistory()


# -- 3. an empty restart wipes the built-in groups' metadata -----------------------


async def test_an_empty_restart_keeps_the_metadata_of_the_built_in_groups(
    tmp_path: Path,
) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **persistent(tmp_path, "n1"))
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2())
    async with open_node(c1) as n1, client(n1) as a:
        async with open_node(c2) as n2:
            await converged(n1, n2)
            for name in (":", ":Pyro", ":Default"):
                await a.setMeta(name, {"kept": name})
            await converged(n1, n2)
        # n2 was in memory: it comes back empty, with a new node id, and later clocks.
        async with open_node(c2, wall_clock=ahead(20)) as n2:
            await converged(n1, n2)
            for node in (n1, n2):
                for name in (":", ":Pyro", ":Default"):
                    assert node.namespace.get_meta(name) == {"kept": name}, node.node_id


async def test_a_hello_before_the_accepting_side_runs_still_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The -1 node serves before its link task starts; a -2 node that dials in that
    window started a session, and the late start once reset the link to ``connecting``
    for good (both nodes synced, -1 never ``paired``). Found by the chaos suite."""
    from pairns.replication.link import Replicator

    original = Replicator.run
    hello_first = trio.Event()

    async def late_run(self: Replicator, **kw: Any) -> None:
        if self.role == 1:
            with trio.fail_after(10):
                while self.pairing.link is None:
                    await trio.sleep(0.01)
            hello_first.set()
        await original(self, **kw)

    monkeypatch.setattr(Replicator, "run", late_run)
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2())
    nodes: dict[int, Node] = {}

    async def start(c: Config, *, task_status: trio.TaskStatus[None]) -> None:
        async with open_node(c) as node:
            nodes[c.role] = node
            task_status.started()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: nursery.start(start, c2))
        await nursery.start(start, c1)
        await wait_for(lambda: 2 in nodes)
        assert hello_first.is_set()
        await converged(nodes[1], nodes[2])
        nursery.cancel_scope.cancel()


# -- 4. a failed commit on the receiving twin ----------------------------------------


async def test_a_failed_commit_on_the_receiving_twin_loses_nothing(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    count = 3000
    async with open_node(c1) as n1, client(n1) as a:
        async with open_node(c2) as n2:
            await converged(n1, n2)
            assert n2.replicator is not None
            storage = n2.replicator.storage
            real = storage._backend_write_blocking  # type: ignore[attr-defined]
            full = True

            def disk(changes: Any, kv: Any, learnt: Any, drops: Any = ()) -> int:
                if full and changes:
                    time.sleep(0.002)  # a slow failing disk: batches pile up meanwhile
                    raise StorageError("database or disk is full (test)")
                return int(real(changes, kv, learnt, drops))

            storage._backend_write_blocking = disk  # type: ignore[attr-defined]
            await a.createGroup(":bulk")

            async def register(lo: int, hi: int) -> None:
                for i in range(lo, hi):
                    await a.register(f":bulk.n{i}", f"PYRO://127.0.0.1:1/n{i}")

            async with trio.open_nursery() as nursery:
                for k in range(8):
                    nursery.start_soon(register, k * count // 8, (k + 1) * count // 8)
            await trio.sleep(0.5)
            full = False  # space is back
            await converged(n1, n2, 20.0)
        async with open_node(c2) as n2:  # what is on n2's disk
            await converged(n1, n2, 20.0)
            missing = [i for i in range(count) if not n2.namespace.exists(f":bulk.n{i}")]
            assert missing == []


async def test_reads_do_not_go_back_when_the_link_drops_before_a_merge_is_durable(
    tmp_path: Path,
) -> None:
    """What a node merged stays visible when its link ends before the merge reached the
    disk, and is still made durable. Dropping it (as the link once did for batches its
    committer had not picked up yet) made reads on the node go back until the twin sent
    it again: the chaos suite saw a checkpoint's two states differ.

    Driven without sockets: a link merges a batch, and ends before any committer ran.
    """
    from pairns.namespace import HybridClock, Namespace
    from pairns.replication.link import Replicator
    from pairns.replication.state import LinkEvent
    from pairns.storage import open_storage

    kept = Entry(
        ":Default.kept", Kind.OBJECT, "PYRO://h:1/k", None, 1.0, 1.0, "ee", Stamp(1 << 16, "ee")
    )
    async with open_storage(tmp_path / "db") as storage:
        loaded = await storage.open()
        ns = Namespace(loaded.node_id, HybridClock(loaded.node_id))
        ns.load(loaded.rows, loaded.last_seq)
        await storage.commit(ns.bootstrap().rows)
        rep = Replicator(
            namespace=ns, storage=storage, node_id=loaded.node_id, role=1,
            twin=(HOST, free_port()), identification=None, durable=True,
        )
        rep.pairing.fire(LinkEvent.DIAL)
        rep.pairing.fire(LinkEvent.CONNECTED)  # hellos exchanged, as accept_hello does
        link = rep.pairing.start_link(
            Hello(node_id="ee" * 8, role=2, applied=0, expect=""), their_applied=0, full=True
        )
        link.receive(Batch(start=0, upto=1, ack=0, items=(Item(1, kept),)))
        assert ns.exists(":Default.kept")
        await rep.pairing.end_link(link)  # the link ends before any committer ran
        assert ns.exists(":Default.kept")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rep.pairing.committer.run)
            await wait_for(lambda: not rep.merges_pending(), 5.0)
            nursery.cancel_scope.cancel()
    async with open_storage(tmp_path / "db") as storage:
        loaded = await storage.open()
        assert [e.name for _, e in loaded.rows if e.name == ":Default.kept"]


async def test_a_merge_that_lost_to_a_local_write_comes_again_if_that_write_is_undone(
    tmp_path: Path,
) -> None:
    """A twin's change that loses to a local write not yet durable is not applied here;
    if that write's commit then fails and is undone, the twin's change must still
    arrive. The link once acknowledged it anyway: the twin never sent it again and the
    pair stayed apart (the chaos suite, seed 2: a restarted node on a full disk, whose
    clients' writes failed while the twin's changes to the same names came in).

    Driven without sockets: a local unregister is pending, the twin's older tombstone
    for the name is merged (and loses), the local commit fails.
    """
    from pairns.namespace import HybridClock, Namespace
    from pairns.replication.link import Replicator
    from pairns.replication.state import LinkEvent
    from pairns.storage import open_storage

    name = ":Default.x"
    async with open_storage(tmp_path / "db") as storage:
        loaded = await storage.open()
        ns = Namespace(loaded.node_id, HybridClock(loaded.node_id))
        ns.load(loaded.rows, loaded.last_seq)
        await storage.commit(ns.bootstrap().rows)
        await storage.commit(ns.register(name, "PYRO://h:1/v").rows)
        before = ns.entry(name)
        time.sleep(0.01)  # the local write's stamp is then well above the registration's
        rep = Replicator(
            namespace=ns, storage=storage, node_id=loaded.node_id, role=1,
            twin=(HOST, free_port()), identification=None, durable=True,
        )
        rep.pairing.fire(LinkEvent.DIAL)
        rep.pairing.fire(LinkEvent.CONNECTED)
        link = rep.pairing.start_link(
            Hello(node_id="ee" * 8, role=2, applied=0, expect=""), their_applied=0, full=False
        )
        real = storage._backend_write_blocking  # type: ignore[attr-defined]
        full = True

        def disk(changes: Any, kv: Any, learnt: Any, drops: Any = ()) -> int:
            if full and changes:
                raise StorageError("database or disk is full (test)")
            return int(real(changes, kv, learnt, drops))

        storage._backend_write_blocking = disk  # type: ignore[attr-defined]
        local = ns.unregister(name)
        undone: list[BaseException | None] = []

        def committed(error: BaseException | None) -> None:
            undone.append(error)
            if error is not None:
                ns.undo(local)

        storage.commit_soon(local.rows, committed)
        mine = local.entries[-1].stamp
        assert before is not None and before.stamp.hlc < mine.hlc - 1
        theirs = attrs.evolve(
            before, uri=None, deleted=True, owner="ee" * 8, stamp=Stamp(mine.hlc - 1, "ee" * 8)
        )
        link.receive(Batch(start=0, upto=1, ack=0, items=(Item(1, theirs),)))
        assert ns.entry(name) is local.entries[-1]  # the local write won, for now
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rep.pairing.committer.run)
            await wait_for(lambda: bool(undone) and not rep.merges_pending(), 5.0)
            nursery.cancel_scope.cancel()
        full = False
        assert isinstance(undone[0], StorageError)
        assert ns.entry(name) is before  # the failed write is gone ...
        # ... and the twin's tombstone is not acknowledged: the twin sends it again.
        assert link.positions.applied == 0
        assert link.closed


# -- 5. identification on the peer link ------------------------------------------------


async def test_a_twin_without_identification_is_refused_by_one_with(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), identification="s3cret")
    async with open_node(c1) as n1, open_node(c2) as n2, client(n1) as a:
        await a.createGroup(":private")
        await wait_for(
            lambda: link(n1).startswith("refused: identification mismatch")
            and link(n2).startswith("refused: identification mismatch"),
            5.0,
        )
        await trio.sleep(0.3)
        assert not n2.namespace.exists(":private")


async def test_an_impostor_at_the_twin_address_gets_nothing(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), identification="s3cret")
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), identification="s3cret")
    impostor = config(tmp_path, "imp", ports.p1, 1, ports.twin_of_1())
    async with open_node(c2) as n2:
        async with open_node(c1) as n1, client(n1, identification="s3cret") as a:
            await a.createGroup(":secret")
            await converged(n1, n2)
        async with open_node(impostor) as imp:
            await wait_for(lambda: link(n2).startswith("refused: "), 5.0)
            await trio.sleep(0.3)
            assert not imp.namespace.exists(":secret")
            assert n2.namespace.exists(":secret")


# -- 6. the peer object is not open to clients ----------------------------------------


async def _peer(port: int, **kw: Any) -> AsyncProxy:
    return AsyncProxy.for_address(HOST, port, PEER_OBJECT_ID, timeout=3.0, **kw)


def _hello(node_id: str = "ff" * 16) -> dict[str, Any]:
    return Hello(node_id=node_id, role=2, applied=0, expect="").to_wire()


async def test_a_client_cannot_displace_the_twin_without_the_pair_secret(
    tmp_path: Path,
) -> None:
    ports = Ports()
    kw = {"identification": "clients", "pair_secret": "twins-only"}
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **kw)
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **kw)
    async with open_node(c1) as n1, open_node(c2) as n2:
        await converged(n1, n2)
        async with await _peer(ports.p1, identification="clients") as peer:
            with pytest.raises(NamingError, match="refused"):
                await peer.call("hello", _hello(), None)
            answer = await peer.call("challenge", auth.new_nonce(), True)
            with pytest.raises(NamingError, match="twin proof failed"):
                await peer.call("hello", _hello(), "00" * 32)
            with pytest.raises(NamingError, match="not proved"):
                await peer.call("poll", "nosession", 0, 0.1)
            await peer.oneway("push", "nosession", {"start": 0, "upto": 0, "ack": 0})
            assert answer["has_secret"] is True
        await trio.sleep(0.2)
        assert link(n1) == "paired"
        assert n1.replicator is not None
        assert n1.replicator.status()["refused_peer_calls"] >= 2


async def test_without_any_secret_only_the_twin_address_may_pair(tmp_path: Path) -> None:
    # The twin is configured at 127.0.0.2: a client on 127.0.0.1 is not the twin.
    p1 = free_port()
    c1 = config(tmp_path, "n1", p1, 1, "127.0.0.2:1")
    async with open_node(c1) as n1, await _peer(p1) as peer:
        await peer.call("challenge", auth.new_nonce(), False)
        with pytest.raises(NamingError, match="not the twin's address"):
            await peer.call("hello", _hello(), None)
        assert n1.replicator is not None
        assert n1.replicator.status()["refused_peer_calls"] == 1


@asynccontextmanager
async def proven_twin(node: Node, secret: str) -> AsyncIterator[tuple[AsyncProxy, str]]:
    """A connection to *node*'s peer object that proved the pair secret, as a -2 node:
    what a buggy or hostile twin could send on it."""
    key = secret.encode()
    async with await _peer(node.address[1], identification=secret) as peer:
        nonce = auth.new_nonce()
        answer = await peer.call("challenge", nonce, True)
        theirs, _, _ = auth.parse_challenge_answer(answer)
        proof = auth.client_proof(key, 2, theirs, nonce)
        reply = await peer.call("hello", _hello(), proof)
        yield peer, reply["session"]


def _text_batch(contents: dict[str, Any], upto: int = 1) -> dict[str, Any]:
    # Written by hand: json.dumps writes Infinity, which no pairns node sends.
    return {"start": 0, "upto": upto, "ack": 0, "changes": json.dumps(contents)}


def _contents(entry: Entry, **override: Any) -> dict[str, Any]:
    contents: dict[str, Any] = json.loads(encode_contents([Item(1, entry)], []))
    for key, value in override.items():
        contents[key] = [value]
    return contents


GOOD = Entry(
    ":Default.evil", Kind.OBJECT, "PYRO://h:1/e", None, 1.0, 1.0, "ee", Stamp(1 << 16, "ee")
)


@pytest.mark.parametrize(
    ("case", "batch"),
    [
        (
            "ten years ahead",
            lambda now: _text_batch(
                _contents(
                    Entry(
                        ":Default.x", Kind.OBJECT, None, None, 1.0, 1.0, "ee",
                        Stamp(int((now + 10 * 365 * 86400) * 1000) << COUNTER_BITS, "ee"),
                        deleted=True,
                    )
                )
            ),
        ),
        ("URI with whitespace", lambda now: _text_batch(_contents(GOOD, uri="PYRO://h:1/a b"))),
        ("created = +Infinity", lambda now: _text_batch(_contents(GOOD, created=float("inf")))),
        ("invalid name", lambda now: _text_batch(_contents(GOOD, name=":Default..x"))),
        ("huge metadata", lambda now: _text_batch(_contents(GOOD, meta="m" * 70_000))),
    ],
)
async def test_a_proven_twin_cannot_push_what_no_client_could_write(
    tmp_path: Path, case: str, batch: Callable[[float], dict[str, Any]]
) -> None:
    p1 = free_port()
    c1 = config(tmp_path, "n1", p1, 1, f"{HOST}:{free_port()}", identification="s")
    async with open_node(c1) as n1, client(n1, identification="s") as a:
        await a.register(":Default.x", "PYRO://127.0.0.1:1/x")
        digest = n1.namespace.digest()
        clock_before = n1.namespace.clock.last
        async with proven_twin(n1, "s") as (peer, session):
            await peer.oneway("push", session, batch(time.time()))
            await wait_for(lambda: link(n1).startswith(("down", "connecting")), 3.0)
        assert n1.namespace.digest() == digest, case
        assert n1.namespace.exists(":Default.x")
        limit = int((time.time() + 61) * 1000) << COUNTER_BITS
        assert clock_before <= n1.namespace.clock.last < limit
        assert n1.replicator is not None
        if case == "ten years ahead":
            assert n1.replicator.status()["skew_refusals"] == 1
        # The client view is intact.
        assert all(isinstance(uri, str) for _, uri in n1.namespace.flatlist())


async def test_a_twin_within_the_skew_bound_is_accepted(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2())
    async with open_node(c1) as n1, open_node(c2, wall_clock=ahead(50)) as n2:
        async with client(n2) as b:
            await b.createGroup(":fast")
        await converged(n1, n2)
        assert n1.namespace.exists(":fast")


async def test_a_twin_beyond_the_skew_bound_is_refused_and_said_so(tmp_path: Path) -> None:
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), max_clock_skew=10.0)
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2())
    async with open_node(c1) as n1, open_node(c2, wall_clock=ahead(600)) as n2:
        async with client(n2) as b:
            await b.createGroup(":future")
        assert n1.replicator is not None
        await wait_for(lambda: n1.replicator is not None
                       and n1.replicator.status()["skew_refusals"] >= 1, 5.0)
        assert not n1.namespace.exists(":future")
        assert n1.namespace.clock.last < int((time.time() + 11) * 1000) << COUNTER_BITS


# -- exactly once across a failover and a restart (issue 20) --------------------------


async def test_a_restarted_twin_still_knows_the_request_ids_it_learnt(tmp_path: Path) -> None:
    """A write applied on node 1 reaches node 2 with its request id; node 2 restarts
    (persistent) while node 1 is gone. The client's retry of that write, now on node
    2, must be answered as applied - it used to fail with "name already exists", since
    request ids learnt from the twin lived in memory only."""
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1())
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    args = (":Default.once", "PYRO://127.0.0.1:1/once")
    async with open_node(c1) as n1, open_node(c2) as n2:
        p1 = AsyncProxy.for_address(HOST, n1.address[1], "Pyro.NameServer", timeout=5)
        async with p1:
            assert await p1.call("register", *args, request_id="rid-once") is None
            await p1.call("createGroup", ":Default.g", request_id="rid-group")
        await converged(n1, n2)
    async with open_node(c2) as n2:  # alone: nothing can come from the twin
        p2 = AsyncProxy.for_address(HOST, n2.address[1], "Pyro.NameServer", timeout=5)
        async with p2:
            assert await p2.call("register", *args, request_id="rid-once") is None
            assert await p2.call("createGroup", ":Default.g", request_id="rid-group") is None
            with pytest.raises(NamingError, match="already exists"):
                await p2.call("register", *args, request_id="rid-new")  # a new write


# -- issue 22: tombstones collected while the twin keeps an older copy -------------------


async def test_a_twin_restored_after_collection_does_not_bring_names_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node 2 is backed up with names that node 1 then unregisters; both nodes collect
    the tombstones; node 2 comes back from the backup. Its stale names must be deleted
    again (not merged back), and what it wrote after the restore must stay."""
    monkeypatch.setenv("PAIRNS_TOMBSTONE_GRACE", "0")
    ports = Ports()
    c1 = config(tmp_path, "n1", ports.p1, 1, ports.twin_of_1(), **persistent(tmp_path, "n1"))
    c2 = config(tmp_path, "n2", ports.p2, 2, ports.twin_of_2(), **persistent(tmp_path, "n2"))
    db2, backup = tmp_path / "n2-db", tmp_path / "n2-backup"
    async with open_node(c1) as n1, client(n1) as a:
        async with open_node(c2) as n2:
            await a.createGroup(":g")
            for i in range(20):
                await a.register(f":g.x{i}", f"PYRO://127.0.0.1:1/x{i}")
            await converged(n1, n2)
        shutil.copytree(db2, backup)
        async with open_node(c2) as n2:
            for i in range(10):
                await a.unregister(f":g.x{i}")
            await a.deleteGroup(":g")  # the group and the rest of its names
            await converged(n1, n2)
            await wait_for(
                lambda: n1.namespace.tombstone_count == 0 and n2.namespace.tombstone_count == 0
            )
            assert n1.namespace.collected_count >= 21
        shutil.rmtree(db2)
        shutil.copytree(backup, db2)  # restored: it still holds :g and its names
        async with open_node(c2) as n2, client(n2) as b:
            assert n2.namespace.exists(":g.x3")  # the old copy, before the resync
            await b.register(":Default.after", "PYRO://127.0.0.1:1/after")
            await converged(n1, n2, 15.0)
            for node in (n1, n2):
                assert not node.namespace.exists(":g"), node.node_id
                assert not node.namespace.exists(":g.x3"), node.node_id
                assert not node.namespace.exists(":g.x15"), node.node_id
                assert node.namespace.exists(":Default.after"), node.node_id
            assert n1.replicator is not None
            assert n1.replicator.status()["deletions_resent"] >= 21
            assert n1.namespace.digest() == n2.namespace.digest()


async def test_a_single_node_collects_what_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single node has no twin to wait for, and no grace period by default: it
    collects a deletion once it is durable."""
    monkeypatch.delenv("PAIRNS_TOMBSTONE_GRACE", raising=False)
    cfg = Config(host=HOST, port=0, uri_file=str(tmp_path / "n.uri"), **persistent(tmp_path, "n"))
    async with open_node(cfg) as node, client(node) as a:
        for i in range(50):
            await a.register(f":Default.c{i}", f"PYRO://127.0.0.1:1/c{i}")
            await a.unregister(f":Default.c{i}")
        await wait_for(lambda: node.namespace.tombstone_count == 0)
        status = await a.status()
        assert status["tombstones"] == 0 and status["collected_tombstones"] == 50
    async with open_node(cfg) as node:  # gone from disk too, and nothing came back
        assert node.namespace.tombstone_count == 0
        assert not node.namespace.exists(":Default.c7")
