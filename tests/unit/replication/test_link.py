"""Two in-process nodes paired over loopback: pairing, mirroring, drops, resync, refusals.

Real sockets on 127.0.0.1 with a short peer timeout (0.4 s), so these run in real time;
every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from pairns.config import Config
from pairns.errors import NamingError
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.naming.service import NAMESERVER_OBJECT_ID
from pairns.node import Node, open_node
from pairns.rpc import AsyncProxy
from pairns.testing.faultproxy import open_fault_proxy

HOST = "127.0.0.1"
TIMEOUT = 0.4


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def config(tmp: Path, name: str, port: int, role: int, twin: int, **kw: Any) -> Config:
    return Config(
        host=HOST,
        port=port,
        role=role,
        twin=f"{HOST}:{twin}",
        uri_file=str(tmp / f"{name}.uri"),
        peer_timeout=TIMEOUT,
        **kw,
    )


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not await check():
            await trio.sleep(0.02)


def link_state(node: Node) -> str:
    assert node.replicator is not None
    return str(node.replicator.status()["link"])


async def paired(a: Node, b: Node) -> None:
    async def both() -> bool:
        return link_state(a) == "paired" and link_state(b) == "paired"

    await wait_for(both)


@asynccontextmanager
async def pair(
    tmp: Path,
    kw1: dict[str, Any] | None = None,
    kw2: dict[str, Any] | None = None,
    *,
    via_proxy: bool = False,
) -> AsyncIterator[tuple[Node, Node, Any]]:
    p1, p2 = free_port(), free_port()
    async with open_node(config(tmp, "n1", p1, 1, p2, **(kw1 or {}))) as n1:
        if via_proxy:
            async with open_fault_proxy((HOST, p1)) as proxy:
                c2 = config(tmp, "n2", p2, 2, proxy.address[1], **(kw2 or {}))
                async with open_node(c2) as n2:
                    yield n1, n2, proxy
        else:
            async with open_node(config(tmp, "n2", p2, 2, p1, **(kw2 or {}))) as n2:
                yield n1, n2, None


def client(node: Node, **kw: Any) -> AsyncNameServerProxy:
    return AsyncNameServerProxy(HOST, node.address[1], timeout=5.0, **kw)


async def test_pairing_mirrors_writes_both_ways(tmp_path: Path) -> None:
    async with pair(tmp_path) as (n1, n2, _), client(n1) as c1, client(n2) as c2:
        await paired(n1, n2)
        await c1.createGroup(":g")
        await c2.register(":Default.x", "PYRO://127.0.0.1:1/x")

        async def visible() -> bool:
            return n2.namespace.exists(":g") and n1.namespace.exists(":Default.x")

        await wait_for(visible, 2.0)
        s1, s2 = await c1.status(), await c2.status()
        assert s1["digest"] == s2["digest"]
        assert s1["role"] == 1 and s2["role"] == 2
        assert s1["twin"] == f"{HOST}:{n2.address[1]}"

        async def all_acked() -> bool:
            return bool((await c1.status())["unacked_changes"] == 0)

        await wait_for(all_acked, 2.0)
        assert s1["full_resyncs"] == 1 and s1["entries_received"] >= 1
        assert str(await c1.twin()) == f"PYRO://{HOST}:{n2.address[1]}/Pyro.NameServer"


@pytest.mark.chaos
async def test_partition_drops_the_twin_then_resyncs_incrementally(tmp_path: Path) -> None:
    async with (
        pair(tmp_path, via_proxy=True) as (n1, n2, proxy),
        client(n1) as c1,
        client(n2) as c2,
    ):
        await paired(n1, n2)
        await c1.createGroup(":g")
        for i in range(30):
            await c1.register(f":g.o{i}", f"PYRO://127.0.0.1:1/o{i}")
        await wait_for(lambda: _true(n2.namespace.exists(":g.o29")), 2.0)
        received_before = n2.replicator.counters.entries_received  # type: ignore[union-attr]
        proxy.partition()

        async def both_dropped() -> bool:
            return link_state(n1) != "paired" and link_state(n2) != "paired"

        await wait_for(both_dropped, 3.0)
        assert n1.replicator is not None and n1.replicator.counters.drops >= 1
        # Writes go on on both sides, and conflict on :g.o0.
        with trio.fail_after(2.0):
            await c1.unregister(":g.o0")
            await c2.unregister(":g.o0")
            await c2.register(":g.o0", "PYRO://127.0.0.1:2/other")
            await c1.register(":g.only1", "PYRO://127.0.0.1:1/x")
        assert (await c1.status())["unacked_changes"] >= 2
        proxy.heal()
        await paired(n1, n2)

        async def converged() -> bool:
            return n1.namespace.digest() == n2.namespace.digest()

        await wait_for(converged, 5.0)
        assert n1.replicator is not None and n2.replicator is not None
        assert n2.replicator.counters.incremental_resyncs >= 1
        # Only the few changes made during the partition travelled, not the namespace.
        assert n2.replicator.counters.entries_received - received_before < 10
        assert n1.namespace.resolve(":g.o0") == n2.namespace.resolve(":g.o0")


def _true(value: bool) -> Awaitable[bool]:
    async def f() -> bool:
        return value

    return f()


async def test_identification_mismatch_is_refused_on_both_sides(tmp_path: Path) -> None:
    async with pair(tmp_path, {"identification": "alpha"}, {"identification": "beta"}) as (
        n1,
        n2,
        _,
    ):

        async def refused() -> bool:
            return (
                link_state(n1) == "refused: identification mismatch"
                and link_state(n2) == "refused: identification mismatch"
            )

        await wait_for(refused, 5.0)
        async with client(n1, identification="alpha") as c1:
            await c1.createGroup(":still_serving")
            assert (await c1.status())["link"] == "refused: identification mismatch"
        assert not n2.namespace.exists(":still_serving")


@pytest.mark.parametrize("role", [1, 2])
async def test_same_role_is_refused_and_stays_refused(tmp_path: Path, role: int) -> None:
    p1, p2 = free_port(), free_port()
    async with (
        open_node(config(tmp_path, "a", p1, role, p2)) as a,
        open_node(config(tmp_path, "b", p2, role, p1)) as b,
    ):

        async def refused() -> bool:
            return link_state(a) == "refused: same role" and link_state(b) == "refused: same role"

        await wait_for(refused, 5.0)
        seen = set()
        for _ in range(40):  # across several retries, the state shown stays the refusal
            await trio.sleep(0.025)
            seen.update({link_state(a).split(":")[0], link_state(b).split(":")[0]})
        assert seen == {"refused"}


async def test_request_id_is_applied_once_even_on_the_twin(tmp_path: Path) -> None:
    async with pair(tmp_path) as (n1, n2, _):
        await paired(n1, n2)
        p1 = AsyncProxy.for_address(HOST, n1.address[1], NAMESERVER_OBJECT_ID, timeout=5)
        p2 = AsyncProxy.for_address(HOST, n2.address[1], NAMESERVER_OBJECT_ID, timeout=5)
        async with p1, p2:
            args = (":Default.once", "PYRO://127.0.0.1:1/once")
            assert await p1.call("register", *args, request_id="rid-1") is None
            assert await p1.call("register", *args, request_id="rid-1") is None  # a retry
            with pytest.raises(NamingError, match="already exists"):
                await p1.call("register", *args, request_id="rid-2")  # a new write

            async def arrived() -> bool:
                return n2.namespace.exists(":Default.once")

            await wait_for(arrived, 2.0)
            # The retry after a failover lands on the twin: answered from its table.
            assert await p2.call("register", *args, request_id="rid-1") is None
            with pytest.raises(NamingError, match="already exists"):
                await p2.call("register", *args, request_id="rid-3")


async def test_resync_forces_a_full_exchange(tmp_path: Path) -> None:
    async with pair(tmp_path) as (n1, n2, _), client(n1) as c1:
        await paired(n1, n2)
        assert n1.replicator is not None
        before = n1.replicator.counters.full_resyncs
        await c1.resync()

        async def again() -> bool:
            return n1.replicator is not None and n1.replicator.counters.full_resyncs > before

        await wait_for(again, 5.0)
        await paired(n1, n2)


async def test_resync_on_a_single_node_raises(tmp_path: Path) -> None:
    cfg = Config(host=HOST, port=0, uri_file=str(tmp_path / "u"))
    async with open_node(cfg) as node, client(node) as c:
        with pytest.raises(NamingError, match="not paired"):
            await c.resync()
        assert await c.twin() is None


async def test_ack_twin_waits_for_the_twin_and_degrades_without_it(tmp_path: Path) -> None:
    p1, p2 = free_port(), free_port()
    async with open_node(config(tmp_path, "n1", p1, 1, p2, ack="twin")) as n1, client(n1) as c1:
        # No twin yet: acknowledged locally, reported as degraded.
        with trio.fail_after(2.0):
            await c1.createGroup(":alone")
        status = await c1.status()
        assert status["degraded"] is True and status["degraded_acks"] == 1
        async with open_node(config(tmp_path, "n2", p2, 2, p1)) as n2:
            await paired(n1, n2)
            await c1.createGroup(":together")
            # Acknowledged only once the twin applied it: it is there already.
            assert n2.namespace.exists(":together")
            status = await c1.status()
            assert status["degraded"] is False and status["twin_acks"] >= 1


async def test_batches_fit_a_small_frame_limit(tmp_path: Path) -> None:
    small = {"max_frame_size": 64 * 1024}
    async with pair(tmp_path, small, small) as (n1, n2, _), client(n1) as c1:
        await c1.createGroup(":big")
        for i in range(12):
            await c1.register(f":big.o{i}", f"PYRO://127.0.0.1:1/o{i}")
            await c1.setMeta(f":big.o{i}", "m" * 12_000)
        await paired(n1, n2)

        async def converged() -> bool:
            return n1.namespace.digest() == n2.namespace.digest()

        await wait_for(converged, 5.0)
        assert n2.namespace.get_meta(":big.o11") == "m" * 12_000


async def test_twins_with_the_same_identification_pair(tmp_path: Path) -> None:
    ident = {"identification": "shared secret"}
    async with pair(tmp_path, ident, ident) as (n1, n2, _):
        await paired(n1, n2)
        async with client(n2, identification="shared secret") as c2:
            await c2.createGroup(":authenticated")

        async def arrived() -> bool:
            return n1.namespace.exists(":authenticated")

        await wait_for(arrived, 2.0)


async def test_persistent_pair_with_ack_twin_survives_a_restart(tmp_path: Path) -> None:
    def durable(name: str) -> dict[str, Any]:
        return {"persistent": True, "database": str(tmp_path / name), "ack": "twin"}

    p1, p2 = free_port(), free_port()
    c1cfg = config(tmp_path, "n1", p1, 1, p2, **durable("db1"))
    c2cfg = config(tmp_path, "n2", p2, 2, p1, **durable("db2"))
    async with open_node(c1cfg) as n1, client(n1) as c1:
        async with open_node(c2cfg) as n2:
            await paired(n1, n2)
            await c1.createGroup(":d")
            for i in range(20):
                await c1.register(f":d.o{i}", f"PYRO://127.0.0.1:1/o{i}")
            # Acknowledged only once the twin applied (and stored) it.
            assert n2.namespace.exists(":d.o19")
            assert (await c1.status())["twin_acks"] >= 21
        for i in range(5):  # the twin is gone: acknowledged locally, degraded
            await c1.register(f":d.late{i}", f"PYRO://127.0.0.1:1/l{i}")
        assert (await c1.status())["degraded"] is True
        async with open_node(c2cfg) as n2:  # same database: an incremental resync
            await paired(n1, n2)
            assert n2.replicator is not None
            assert n2.replicator.counters.incremental_resyncs == 1
            assert n2.replicator.counters.entries_received < 15

            async def converged() -> bool:
                return n1.namespace.digest() == n2.namespace.digest()

            await wait_for(converged, 5.0)
