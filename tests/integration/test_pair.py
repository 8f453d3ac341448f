"""Paired mode with two real ``pairns`` processes on 127.0.0.1 (issue 12).

A pair must know each other's ports before they start, so ports come from binding port-0
sockets and closing them; a start that loses the port to someone else is retried with
fresh ports. Every wait is bounded; only processes started here are signalled, by pid.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import HOST, NodeProcess, free_ports, wait_until

from pairns.errors import NamingError
from pairns.naming.proxy import NameServerProxy
from pairns.naming.service import NAMESERVER_OBJECT_ID
from pairns.rpc import Proxy
from pairns.testing.faultproxy import FaultProxyProcess

#: A short peer timeout keeps drop-and-reconnect tests quick.
PEER_TIMEOUT = "1.0"
PAIR_TIMEOUT = 15.0


class Pair:
    """Starts and tracks the nodes of one test; kills what is left at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.nodes: list[NodeProcess] = []

    def start(
        self,
        name: str,
        port: int,
        role_args: list[str],
        *extra: str,
        wait: bool = True,
    ) -> NodeProcess:
        node = NodeProcess(
            ["-n", HOST, "-p", str(port), *role_args, *extra],
            workdir=self.tmp / "logs",
            storage=self.tmp / name,
            env={"PYRO_NS_PEER_TIMEOUT": PEER_TIMEOUT},
            name=name,
        )
        self.nodes.append(node)
        if wait:
            node.wait_started()
        return node

    def start_pair(
        self,
        *extra: str,
        first: str = "1",
        args1: tuple[str, ...] = (),
        args2: tuple[str, ...] = (),
        twin_of_2: Callable[[int], int] | None = None,
    ) -> tuple[NodeProcess, NodeProcess]:
        """A -1 and a -2 node on fresh ports (retried if a port was taken meanwhile)."""
        for _ in range(3):
            p1, p2 = free_ports(2)
            target = twin_of_2(p1) if twin_of_2 is not None else p1
            specs = {
                "1": ("n1", p1, ["-1", f"{HOST}:{p2}"], (*extra, *args1)),
                "2": ("n2", p2, ["-2", f"{HOST}:{target}"], (*extra, *args2)),
            }
            order = [first, "2" if first == "1" else "1"]
            try:
                started = {k: self.start(*specs[k][:3], *specs[k][3]) for k in order}
            except AssertionError as exc:
                if "address already in use" not in str(exc).lower():
                    raise
                for node in self.nodes:
                    node.kill()
                continue
            return started["1"], started["2"]
        raise AssertionError("could not find two free ports")

    def kill_all(self) -> None:
        for node in self.nodes:
            if node.running:
                try:
                    os.kill(node.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            node.kill()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    yield p
    p.kill_all()


def ns(node: NodeProcess, ident: str | None = None, timeout: float = 5.0) -> NameServerProxy:
    return NameServerProxy(HOST, node.port, identification=ident, timeout=timeout)


def status(node: NodeProcess, ident: str | None = None) -> dict[str, Any]:
    with ns(node, ident) as proxy:
        return proxy.status()


def wait_link(node: NodeProcess, text: str, timeout: float = PAIR_TIMEOUT, **kw: Any) -> None:
    last: dict[str, Any] = {}

    def check() -> bool:
        last.update(status(node, **kw))
        return bool(last["link"] == text)

    assert wait_until(check, timeout, 0.05), (
        f"{node.args}: link is {last.get('link')!r}, not {text!r}\n{node.stderr()[-3000:]}"
    )


def wait_converged(a: NodeProcess, b: NodeProcess, timeout: float = PAIR_TIMEOUT) -> None:
    digests: list[str] = []

    def check() -> bool:
        digests[:] = [status(a)["digest"], status(b)["digest"]]
        return digests[0] == digests[1]

    assert wait_until(check, timeout, 0.05), f"digests differ: {digests}"


def wait_visible(node: NodeProcess, name: str, timeout: float) -> float:
    """Seconds until *name* resolves on *node*."""
    start = time.monotonic()
    with ns(node) as proxy:
        deadline = start + timeout
        while True:
            try:
                proxy.resolve(name)
                return time.monotonic() - start
            except NamingError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not visible within {timeout} s") from None
                time.sleep(0.002)


@pytest.mark.parametrize("first", ["1", "2"])
def test_pairing_in_either_start_order_mirrors_writes_fast(pair: Pair, first: str) -> None:
    n1, n2 = pair.start_pair(first=first)
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    s1, s2 = status(n1), status(n2)
    assert (s1["role"], s2["role"]) == (1, 2)
    assert s1["twin"] == f"{HOST}:{n2.port}" and s2["twin"] == f"{HOST}:{n1.port}"
    with ns(n1) as c1, ns(n2) as c2:
        assert str(c1.twin()) == f"PYRO://{HOST}:{n2.port}/{NAMESERVER_OBJECT_ID}"
        c1.register(":Default.from1", "PYRO://127.0.0.1:1/a")
        lag12 = wait_visible(n2, ":Default.from1", 1.0)
        c2.createGroup(":from2")
        c2.register(":from2.x", "PYRO://127.0.0.1:1/b")
        lag21 = wait_visible(n1, ":from2.x", 1.0)
    assert lag12 < 0.5 and lag21 < 0.5
    wait_converged(n1, n2)
    assert "twin link: syncing -> paired" in n1.stderr()
    assert "twin link: syncing -> paired" in n2.stderr()
    assert "serving alone" in (n1 if first == "1" else n2).stderr()


@pytest.mark.chaos
@pytest.mark.parametrize("frozen_role", [1, 2])
def test_frozen_twin_does_not_stall_writes_and_is_resynced(pair: Pair, frozen_role: int) -> None:
    n1, n2 = pair.start_pair()
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    frozen, healthy = (n1, n2) if frozen_role == 1 else (n2, n1)
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        start = time.monotonic()
        with ns(healthy) as client:
            client.createGroup(":during")
            for i in range(200):
                t = time.monotonic()
                client.register(f":during.o{i}", f"PYRO://127.0.0.1:1/o{i}")
                slowest = max(slowest, time.monotonic() - t)
        elapsed = time.monotonic() - start
        # Generous bounds (a loaded CI machine): a write that waited for the frozen twin
        # would take at least the peer timeout (1 s), or for ever.
        assert slowest < 0.8, f"a write took {slowest:.3f} s while the twin was frozen"
        assert elapsed < 5.0
        assert wait_until(lambda: status(healthy)["link"] != "paired", 5.0)
        assert status(healthy)["unacked_changes"] >= 200
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    wait_converged(n1, n2)
    assert status(frozen)["entries"] >= 202
    assert wait_until(lambda: status(healthy)["unacked_changes"] == 0, 5.0)


def test_sigkill_then_restart_converges_and_resyncs_incrementally(pair: Pair) -> None:
    n1, n2 = pair.start_pair("-d")
    wait_link(n2, "paired")
    with ns(n1) as c1:
        c1.createGroup(":bulk")
        for i in range(300):
            c1.register(f":bulk.o{i}", f"PYRO://127.0.0.1:1/o{i}")
    wait_converged(n1, n2)
    time.sleep(0.6)  # positions are stored every heartbeat (peer timeout / 4)
    n2.kill()  # SIGKILL
    with ns(n1) as c1:
        for i in range(20):
            c1.register(f":bulk.late{i}", f"PYRO://127.0.0.1:1/l{i}")
        c1.unregister(":bulk.o0")
    assert status(n1)["link"] != "paired"
    restarted = pair.start("n2", n2.port, ["-2", f"{HOST}:{n1.port}"], "-d")
    wait_link(restarted, "paired")
    wait_converged(n1, restarted)
    s = status(restarted)
    assert s["entries"] > 300
    assert s["incremental_resyncs"] == 1 and s["full_resyncs"] == 0
    # Only what it missed travelled (21 changes, plus a little slack), not 300+ names.
    assert s["entries_received"] < 60, s


@pytest.mark.chaos
def test_partition_with_conflicting_writes_heals_to_identical_namespaces(pair: Pair) -> None:
    p1 = free_ports(1)[0]
    with FaultProxyProcess((HOST, p1)) as proxy:
        # The -2 node reaches its twin only through the proxy.
        for _ in range(3):
            p2 = free_ports(1)[0]
            try:
                n1 = pair.start("n1", p1, ["-1", f"{HOST}:{p2}"])
                n2 = pair.start("n2", p2, ["-2", f"{HOST}:{proxy.address[1]}"])
                break
            except AssertionError as exc:
                if "address already in use" not in str(exc).lower():
                    raise
        wait_link(n2, "paired")
        with ns(n1) as c1:
            c1.createGroup(":g")
            c1.register(":g.shared", "PYRO://127.0.0.1:1/original")
        wait_converged(n1, n2)
        conflicts_before = status(n1)["conflicts"] + status(n2)["conflicts"]
        proxy.partition()
        assert wait_until(lambda: status(n2)["link"] != "paired", 5.0)
        assert wait_until(lambda: status(n1)["link"] != "paired", 5.0)
        with ns(n1) as c1, ns(n2) as c2:
            c1.unregister(":g.shared")
            c1.register(":g.shared", "PYRO://127.0.0.1:1/from-n1")
            c2.unregister(":g.shared")
            c2.register(":g.shared", "PYRO://127.0.0.1:2/from-n2")
            c1.setMeta(":g", {"by": "n1"})
            c2.deleteGroup(":g")  # a deletion concurrent with n1's writes under it
            c2.createGroup(":only2")
            c1.createGroup(":only1")
        assert status(n1)["digest"] != status(n2)["digest"]
        proxy.heal()
        wait_link(n2, "paired")
        wait_converged(n1, n2)
        with ns(n1) as c1, ns(n2) as c2:
            # Equal but for each node's own :Pyro.NameServer entry.
            mine = {":Pyro.NameServer"}
            assert [e for e in c1.flatlist() if e[0] not in mine] == [
                e for e in c2.flatlist() if e[0] not in mine
            ]
            assert {"only1", "only2"} <= {name for name, _ in c1.list(":")}
        # The side whose writes lost reports them (both versions are in its log).
        assert status(n1)["conflicts"] + status(n2)["conflicts"] > conflicts_before
        assert "conflict (" in n1.stderr() + n2.stderr()


def test_identification_mismatch_is_refused_and_both_keep_serving(pair: Pair) -> None:
    n1, n2 = pair.start_pair(args1=("-i", "alpha"), args2=("-i", "beta"))
    wait_link(n1, "refused: identification mismatch", ident="alpha")
    wait_link(n2, "refused: identification mismatch", ident="beta")
    with ns(n1, "alpha") as c1, ns(n2, "beta") as c2:
        c1.createGroup(":one")
        c2.createGroup(":two")
        assert c1.ping() and c2.ping()
    assert "identification mismatch" in n1.stderr()
    assert "identification mismatch" in n2.stderr()


def test_two_nodes_with_the_same_role_refuse_to_pair(pair: Pair) -> None:
    for _ in range(3):
        pa, pb = free_ports(2)
        try:
            a = pair.start("a", pa, ["-2", f"{HOST}:{pb}"])
            b = pair.start("b", pb, ["-2", f"{HOST}:{pa}"])
            break
        except AssertionError as exc:
            if "address already in use" not in str(exc).lower():
                raise
    wait_link(a, "refused: same role")
    wait_link(b, "refused: same role")
    assert "both nodes were started with -2" in a.stderr()
    with ns(a) as client:
        client.createGroup(":alone")


def test_duplicate_request_id_is_applied_once_even_after_failover(pair: Pair) -> None:
    n1, n2 = pair.start_pair()
    wait_link(n2, "paired")
    rid = uuid.uuid4().hex
    args = (":Default.once", "PYRO://127.0.0.1:1/once")
    with Proxy.for_address(HOST, n1.port, NAMESERVER_OBJECT_ID, timeout=5) as p1:
        assert p1.call("register", *args, request_id=rid) is None
        assert p1.call("register", *args, request_id=rid) is None  # the retry
        with pytest.raises(NamingError, match="already exists"):
            p1.call("register", *args, request_id=uuid.uuid4().hex)
    wait_visible(n2, args[0], 2.0)
    with Proxy.for_address(HOST, n2.port, NAMESERVER_OBJECT_ID, timeout=5) as p2:
        assert p2.call("register", *args, request_id=rid) is None  # retried on the twin
        with pytest.raises(NamingError, match="already exists"):
            p2.call("register", *args, request_id=uuid.uuid4().hex)
    wait_converged(n1, n2)


def test_a_resync_of_large_unicode_metadata_fits_the_frames(pair: Pair) -> None:
    """30 names with 64,000 bytes of emoji metadata each: counted in characters, they
    made a 1.4 MB batch, over the 1 MiB frame limit, and the pair never formed."""
    p1, p2 = free_ports(2)
    n1 = pair.start("n1", p1, ["-1", f"{HOST}:{p2}"])
    meta = "\U0001f600" * 16_000
    with ns(n1) as c1:
        for i in range(30):
            c1.register(f":Default.big{i}", f"PYRO://127.0.0.1:1/o{i}")
            c1.setMeta(f":Default.big{i}", meta)
    n2 = pair.start("n2", p2, ["-2", f"{HOST}:{p1}"])
    wait_link(n2, "paired")
    wait_converged(n1, n2)
    with ns(n2) as c2:
        assert c2.getMeta(":Default.big29") == meta


def test_each_node_resolves_the_name_server_to_itself_also_after_a_restart(pair: Pair) -> None:
    """As in Pyro 3, ``:Pyro.NameServer`` is each node's own entry: not replicated,
    never a conflict, outside the digest; ``twin()`` names the other node."""
    n1, n2 = pair.start_pair("-d")
    wait_link(n1, "paired")
    wait_link(n2, "paired")
    wait_converged(n1, n2)

    def own(node: NodeProcess) -> str:
        return f"PYRO://{HOST}:{node.port}/{NAMESERVER_OBJECT_ID}"

    def check(a: NodeProcess, b: NodeProcess) -> None:
        for node, other in ((a, b), (b, a)):
            with ns(node) as client:
                assert str(client.resolve(":Pyro.NameServer")) == own(node)
                assert (":Pyro.NameServer", own(node)) in [
                    (name, str(uri)) for name, uri in client.flatlist()
                ]
                assert str(client.twin()) == own(other)
                with pytest.raises(NamingError):
                    client.unregister(":Pyro.NameServer")
            assert status(node)["conflicts"] == 0
            assert "conflict" not in node.stderr()

    check(n1, n2)
    n2.kill()
    restarted = pair.start("n2", n2.port, ["-2", f"{HOST}:{n1.port}"], "-d")
    wait_link(restarted, "paired")
    wait_converged(n1, restarted)
    check(n1, restarted)
