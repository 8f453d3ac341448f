"""Issue 20: broadcast discovery with real ``pairns`` processes.

Every datagram goes to 127.255.255.255 (the loopback broadcast address) on ports picked
free for the test, never to a real network. The locator's fallbacks (the configured
hosts, the local host name, ``localhost``) point at free ports too, so a name server
that someone else runs on this machine is never found by accident.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
from _support import (
    HOST,
    NodeProcess,
    clean_env,
    free_ports,
    run_server_to_exit,
    wait_until,
)
from conftest import StartNode

from pairns import NamingError
from pairns.discovery.protocol import LOCATION, MAX_REQUEST_SIZE, SHUTDOWN
from pairns.discovery.search import LocatorSettings
from pairns.naming.locator import NameServerLocator

BC = "127.255.255.255"
#: The node's own start-up check: one short round (the default is 2 x 0.75 s).
FAST_CHECK = {"PYRO_BC_RETRIES": "0", "PYRO_BC_TIMEOUT": "0.3"}


def free_udp_ports(count: int) -> list[int]:
    return free_ports(count, socket.SOCK_DGRAM)


def settings(bc_port: int, ns2_bc_port: int, *, timeout: float = 0.5) -> LocatorSettings:
    """Locator settings that broadcast on loopback and fall back to unused ports only."""
    ns_port, ns2_port = free_ports(2)
    return LocatorSettings(
        ns_port=ns_port,
        ns2_port=ns2_port,
        bc_addr=BC,
        ns2_bc_addr=BC,
        bc_port=bc_port,
        ns2_bc_port=ns2_bc_port,
        retries=1,
        timeout=timeout,
        mc_group=None,  # IPv4 only: the IPv6 tests run in a namespace of their own
        local_hostname=HOST,  # not the machine's name: tests stay on loopback
    )


def ask(port: int, datagram: bytes, timeout: float = 0.5) -> bytes | None:
    """Send *datagram* to the loopback broadcast address; the first reply, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.settimeout(timeout)
        s.sendto(datagram, (BC, port))
        try:
            return s.recvfrom(4096)[0]
        except TimeoutError:
            return None


def uri_of(node: NodeProcess) -> str:
    return f"PYRO://{HOST}:{node.port}/Pyro.NameServer"


def test_a_single_node_is_found_by_broadcast(start_node: StartNode) -> None:
    bc_port, other = free_udp_ports(2)
    node = start_node("-b", str(bc_port), "-c", BC, env=FAST_CHECK)
    assert f"discovery: answering 'location' on {BC}:{bc_port}/udp\n" in node.banner
    locator = NameServerLocator(settings=settings(bc_port, other))
    with locator.getNS(timeout=5) as ns:
        assert (ns.host, ns.port) == (HOST, node.port)
        assert str(ns.resolve(":Pyro.NameServer")) == uri_of(node)

    async def find() -> tuple[str, int]:
        proxy = await locator.async_getNS(timeout=5)
        async with proxy:
            await proxy.ping()
            return proxy.host, proxy.port

    assert trio.run(find) == (HOST, node.port)


def test_each_node_of_a_pair_and_then_the_survivor(start_node: StartNode) -> None:
    p1, p2 = free_ports(2)
    bc1, bc2 = free_udp_ports(2)
    first = start_node("-b", str(bc1), "-c", BC, "-1", f"{HOST}:{p2}", port=p1, env=FAST_CHECK)
    # -r with -1/-2 made Pyro 3 crash; here it only skips the start-up check.
    second = start_node("-b", str(bc2), "-c", BC, "-r", "-2", f"{HOST}:{p1}", port=p2)
    assert ask(bc1, LOCATION) == uri_of(first).encode()
    assert ask(bc2, LOCATION) == uri_of(second).encode()
    locator = NameServerLocator(settings=settings(bc1, bc2))
    # Pyro 3's getNS(port=P) without a host asks broadcast port P only.
    with locator.getNS(port=bc1, timeout=5) as ns:
        assert ns.port == first.port
    with locator.getNS(port=bc2, timeout=5) as ns:
        assert ns.port == second.port
    with locator.getNS(timeout=5) as ns:
        assert ns.port in (first.port, second.port)
    # The first node dies: the broadcast to both ports finds the second.
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    for _ in range(3):
        with locator.getNS(timeout=5) as ns:
            assert ns.port == second.port


def test_x_means_no_answer_and_the_failure_names_everything_tried(
    start_node: StartNode,
) -> None:
    bc_port, other = free_udp_ports(2)
    node = start_node("-b", str(bc_port), "-c", BC, "-x")
    assert "discovery: off (-x)\n" in node.banner
    assert ask(bc_port, LOCATION) is None
    found = settings(bc_port, other, timeout=0.2)
    with pytest.raises(NamingError) as info:
        NameServerLocator(settings=found).getNS(timeout=2)
    message = str(info.value)
    assert message.startswith("could not find a name server; tried broadcast to ")
    assert f"{BC}:{bc_port}, {BC}:{other} (2 rounds of 0.2 s): no answer" in message
    for port in (found.ns_port, found.ns2_port):
        assert f"localhost:{port}" in message
        assert f"{HOST}:{port}" in message
    # A loopback node without -c answers nowhere either.
    quiet = start_node("-b", str(other))
    assert "discovery: off (listening on loopback only" in quiet.banner
    assert ask(other, LOCATION) is None
    with NameServerLocator().getNS(HOST, quiet.port, timeout=5) as ns:
        status = ns.status()
    assert status["discovery"] is None
    assert not any(key.startswith("discovery_") for key in status)


def test_r_and_m_decide_whether_a_second_node_may_start(
    start_node: StartNode, tmp_path: Path
) -> None:
    (bc_port,) = free_udp_ports(1)
    args = ["-n", HOST, "-p", "0", "-b", str(bc_port), "-c", BC]
    start_node(*args[4:], env=FAST_CHECK)
    refused = run_server_to_exit(args, storage=tmp_path, env=FAST_CHECK)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("pairns: another name server (PYRO://")
    assert f"already answers on {BC}:{bc_port}/udp; use -m" in refused.stderr
    assert "listening" not in refused.stdout
    with_m = start_node(*args[4:], "-m", env=FAST_CHECK)
    assert "starting anyway (-m)" in with_m.stderr()
    start_node(*args[4:], "-r", env=FAST_CHECK)


def test_a_paired_node_tolerates_its_twin_answering(start_node: StartNode) -> None:
    p1, p2 = free_ports(2)
    (bc_port,) = free_udp_ports(1)
    # Both nodes answer on one port (odd, but allowed): the twin's answer is no reason
    # to refuse, where Pyro 3 refused or, with -r, crashed.
    start_node("-b", str(bc_port), "-c", BC, "-2", f"{HOST}:{p1}", port=p2, env=FAST_CHECK)
    first = start_node(
        "-v", "-b", str(bc_port), "-c", BC, "-1", f"{HOST}:{p2}", port=p1, env=FAST_CHECK
    )
    assert first.running
    assert f"discovery: the twin answers on {BC}:{bc_port}/udp" in first.stderr()


def test_garbage_and_shutdown_datagrams_are_ignored_and_counted(start_node: StartNode) -> None:
    (bc_port,) = free_udp_ports(1)
    node = start_node("-b", str(bc_port), "-c", BC, env=FAST_CHECK)
    assert ask(bc_port, SHUTDOWN) is None
    assert ask(bc_port, b"\x00\xffnot a request", timeout=0.2) is None
    assert ask(bc_port, b"x" * (MAX_REQUEST_SIZE * 100), timeout=0.2) is None
    assert ask(bc_port, LOCATION) == uri_of(node).encode()
    assert node.running
    with NameServerLocator().getNS(HOST, node.port, timeout=5) as ns:
        status = ns.status()
    assert status["discovery"] == f"{BC}:{bc_port}/udp"
    assert status["discovery_shutdown"] == 1
    assert status["discovery_garbage"] == 1
    assert status["discovery_oversized"] == 1
    assert status["discovery_answered"] == 1
    assert status["discovery_rate_limited"] == 0


def test_a_flood_from_one_source_gets_a_bounded_number_of_answers(
    start_node: StartNode,
) -> None:
    (bc_port,) = free_udp_ports(1)
    node = start_node("-b", str(bc_port), "-c", BC, env=FAST_CHECK)
    answers = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(200):
            s.sendto(LOCATION, (BC, bc_port))
        s.settimeout(0.5)
        for _ in range(200):
            try:
                s.recvfrom(4096)
            except TimeoutError:
                break
            answers += 1
    # The burst plus what the rate refills while the flood is sent.
    assert 10 <= answers <= 20

    def limited() -> bool:
        with NameServerLocator().getNS(HOST, node.port, timeout=5) as ns:
            stats = ns.status()
        return bool(stats["discovery_answered"] + stats["discovery_rate_limited"] == 200)

    assert wait_until(limited, 5.0)


def test_a_blocking_search_does_not_import_trio() -> None:
    bc_port, other = free_udp_ports(2)
    ns_port, ns2_port = free_ports(2)
    code = f"""
import sys
import pairns
settings = pairns.LocatorSettings(
    ns_port={ns_port}, ns2_port={ns2_port}, bc_addr="{BC}", ns2_bc_addr="{BC}",
    bc_port={bc_port}, ns2_bc_port={other}, retries=0, timeout=0.1, local_hostname="{HOST}",
    mc_group=None,
)
try:
    pairns.NameServerLocator(settings=settings).getNS(timeout=2)
except pairns.NamingError as exc:
    assert "no answer" in str(exc), exc
else:
    sys.exit(4)
sys.exit(3 if "trio" in sys.modules else 0)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], timeout=60, env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_a_responder_that_cannot_bind_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (bc_port,) = free_udp_ports(1)
    # 192.0.2.1 (TEST-NET-1) is no address of this machine; -r: nothing is sent there.
    args = ["-n", HOST, "-p", "0", "-b", str(bc_port), "-c", "192.0.2.1", "-r"]
    result = run_server_to_exit(args, storage=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pairns: cannot answer discovery on 192.0.2.1:{bc_port}/udp: Cannot assign requested "
        "address (-b picks another port, -c another address, -x runs no responder)"
    ]


class FakeResponder:
    """Answers each ``location`` with garbage first, then *answer* (a thread, bounded)."""

    def __init__(self, port: int, answer: bytes) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((BC, port))
        self.sock.settimeout(0.2)
        self.answer = answer
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(100)
            except TimeoutError:
                continue
            if data == LOCATION:
                self.requests += 1
                for reply in (b"\xff\x00garbage", b"PYRONAME://:Default.x", self.answer):
                    self.sock.sendto(reply, source)

    def __enter__(self) -> FakeResponder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_the_locator_skips_what_is_not_an_answer_and_goes_on_when_the_answer_fails() -> None:
    bc_port, other = free_udp_ports(2)
    (dead,) = free_ports(1)
    answer = f"PYRO://{HOST}:{dead}/Pyro.NameServer"
    found = settings(bc_port, other, timeout=0.3)
    with FakeResponder(bc_port, answer.encode()) as fake:
        with pytest.raises(NamingError) as blocking:
            NameServerLocator(settings=found).getNS(timeout=2)

        async def search() -> None:
            await NameServerLocator(settings=found).async_getNS(timeout=2)

        with pytest.raises(NamingError) as async_:
            trio.run(search)
    assert fake.requests == 2  # the first answer ended each search's broadcast
    for info in (blocking, async_):
        message = str(info.value)
        # The garbage before it was skipped: the URI is what the broadcast found.
        assert f"(2 rounds of 0.3 s): answer {answer}: " in message, message
        assert f"localhost:{found.ns_port}" in message
