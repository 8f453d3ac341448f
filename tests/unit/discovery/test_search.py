"""One broadcast step over both families, on loopback: IPv4 to 127.255.255.255, IPv6 to
``::1`` (this machine's loopback carries no multicast; the group itself is tested in a
network namespace, tests/integration/test_discovery_ipv6.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from pairns.discovery import interfaces
from pairns.discovery.protocol import LOCATION
from pairns.discovery.search import Broadcast, Heard, _heard, async_broadcast, broadcast
from pairns.uri import URI

BC = "127.255.255.255"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


@contextmanager
def answering(family: socket.AddressFamily, host: str, answer: bytes) -> Iterator[int]:
    """A thread answering ``location`` on *host* (any free port, yielded) with *answer*."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data, source = sock.recvfrom(100)
            except TimeoutError:
                continue
            if data == LOCATION:
                sock.sendto(answer, source)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _unused(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _both(step: Broadcast) -> list[Heard]:
    async def run() -> Heard:
        return await async_broadcast(step)

    return [broadcast(step), trio.run(run)]


@needs_ipv6
def test_one_step_asks_both_families_and_takes_the_answer_from_either() -> None:
    answer = b"PYRO://[::1]:9999/Pyro.NameServer"
    with answering(socket.AF_INET6, "::1", answer) as port6:
        step = Broadcast(((BC, _unused(socket.AF_INET, "127.0.0.1")), ("::1", port6)), 2, 0.3)
        for heard in _both(step):
            assert heard.answer is not None
            assert str(heard.answer[0]) == answer.decode()
            assert heard.answer[1] == ("::1", port6)
            assert heard.unsent == ()


def test_an_interface_that_does_not_exist_leaves_ipv4_asking() -> None:
    answer = b"PYRO://127.0.0.1:9999/Pyro.NameServer"
    with answering(socket.AF_INET, BC, answer) as port4:
        step = Broadcast(((BC, port4), ("ff02::5079:726f", port4)), 1, 0.5, "nosuch0")
        for heard in _both(step):
            assert heard.answer is not None and str(heard.answer[0]) == answer.decode()
            assert heard.unsent == (
                (f"[ff02::5079:726f]:{port4}", "no network interface named 'nosuch0'"),
            )
    assert "(IPv6 on nosuch0)" in str(step)


def test_nothing_to_ask_is_an_error_naming_why() -> None:
    step = Broadcast((("ff02::5079:726f", 9090),), 1, 0.1, "nosuch0")
    with pytest.raises(OSError, match="no network interface named 'nosuch0'"):
        broadcast(step)

    async def run() -> None:
        await async_broadcast(step)

    with pytest.raises(OSError, match="no network interface named 'nosuch0'"):
        trio.run(run)


def test_no_answer_in_any_round() -> None:
    step = Broadcast(((BC, _unused(socket.AF_INET, "127.0.0.1")),), 2, 0.05)
    for heard in _both(step):
        assert heard == Heard(None)


def test_an_answer_naming_a_link_local_address_gets_the_zone_it_came_in_on() -> None:
    lo = socket.if_nameindex()[0]
    data = b"PYRO://[fe80::1]:9090/Pyro.NameServer"
    answer = _heard(data, ("fe80::1", 9090, 0, lo[0]))
    assert answer is not None
    assert answer[0] == URI.pyro(f"fe80::1%{lo[1]}", 9090, "Pyro.NameServer")
    # A routable address, or one that has a zone already, is kept as it is.
    assert _heard(b"PYRO://[fd00::1]:9090/x", ("fe80::1", 9090, 0, lo[0])) == (
        URI.pyro("fd00::1", 9090, "x"),
        ("fe80::1", 9090),
    )
    kept = _heard(b"PYRO://[fe80::1%eth7]:9090/x", ("fe80::1", 9090, 0, lo[0]))
    assert kept is not None and kept[0].host == "fe80::1%eth7"
    assert _heard(b"garbage", ("fe80::1", 9090, 0, lo[0])) is None


TABLE = """\
fd000077000000000000000000000001 03 40 00 80       va
fe80000000000000481035fffe12cad7 03 40 20 80       va
00000000000000000000000000000001 01 80 10 80       lo
fe80000000000000b47596fffe566ebc 02 40 20 80       vb
not a line
"""


def test_interfaces_from_the_kernel_table(tmp_path: Path) -> None:
    table = tmp_path / "if_inet6"
    table.write_text(TABLE)
    assert interfaces.interface_of("fd00:77::1", table) == 3
    assert interfaces.interface_of("[::1]", table) == 1
    assert interfaces.interface_of("fd00:77::9", table) == 0
    assert interfaces.interface_of("::", table) == 0
    assert interfaces.routable_address(3, table) == "fd00:77::1"
    assert interfaces.routable_address(2, table) is None  # link-local only
    assert interfaces.routable_address(1, table) is None  # loopback
    assert interfaces.interface_index(None, "fd00:77::1", table) == 3
    assert interfaces.interface_index("7", "fd00:77::1", table) == 7
    assert interfaces.ipv6_addresses(tmp_path / "missing") == []
    with pytest.raises(Exception, match="no network interface named 'nosuch0'"):
        interfaces.interface_index("nosuch0")
