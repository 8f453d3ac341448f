"""Issue 10: hostile and broken clients never stop a node from serving the good ones."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import Any

import pytest
import trio
from _support import HOST, NodeProcess

import pairns
from pairns import URI
from pairns.wire import CLIENT, NEED_DATA, Challenge, Connection, Welcome

HEADER = struct.Struct("!2sBBBBII")  # magic, version, type, flags, reserved, corr id, length
REQUEST_TYPE = 16


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _wait_closed(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until the peer closes; (closed within *timeout*, what arrived)."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, bytes(received)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False, bytes(received)
        except ConnectionResetError:
            return True, bytes(received)
        if not chunk:
            return True, bytes(received)
        received += chunk


def _handshaken(port: int) -> socket.socket:
    """A raw connection that has passed the (identification-less) handshake."""
    sock = _connect(port)
    conn = Connection(CLIENT)
    deadline = time.monotonic() + 10
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            assert time.monotonic() < deadline
            conn.receive_data(sock.recv(65536))
            continue
        break
    assert isinstance(event, Challenge)
    sock.sendall(conn.send(conn.response()))
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            assert time.monotonic() < deadline
            conn.receive_data(sock.recv(65536))
            continue
        break
    assert isinstance(event, Welcome)
    return sock


def _good_clients(port: int, count: int, calls: int) -> tuple[list[BaseException], float]:
    """*count* threads, each with its own blocking proxy; errors and the elapsed time."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count, timeout=30)
    own = URI.from_string(f"PYRO://{HOST}:{port}/Pyro.NameServer")

    def client(c: int) -> None:
        try:
            with pairns.NameServerLocator().getNS(HOST, port, timeout=15) as ns:
                barrier.wait()
                uri = f"PYRO://client{c}:{3000 + c}/obj"
                ns.register(f":Clients.c{c}", uri)
                for _ in range(calls):
                    assert ns.resolve(":Pyro.NameServer") == own
                    assert ns.resolve(f":Clients.c{c}") == URI.from_string(uri)
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a good client hung"
    return errors, time.monotonic() - started


def test_bad_clients_do_not_stop_50_good_ones(start_node: Any) -> None:
    node = start_node(env={"PYRO_HANDSHAKE_TIMEOUT": "1"})
    port = node.port
    with pairns.NameServerLocator().getNS(HOST, port, timeout=10) as ns:
        ns.createGroup(":Clients")

    silent = _connect(port)
    silent_since = time.monotonic()
    garbage = _connect(port)
    garbage.sendall(random.Random(7).randbytes(8192))
    http = _connect(port)
    http.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    huge_before_handshake = _connect(port)
    huge_before_handshake.sendall(HEADER.pack(b"PN", 1, REQUEST_TYPE, 0, 0, 1, 0xFFFF_FFF0))
    huge_after_handshake = _handshaken(port)
    huge_after_handshake.sendall(
        HEADER.pack(b"PN", 1, REQUEST_TYPE, 0, 0, 1, 2_000_000_000) + b"{" * 1000
    )
    # A header that claims just over the node's 1 MiB frame limit.
    just_over = _handshaken(port)
    just_over.sendall(HEADER.pack(b"PN", 1, REQUEST_TYPE, 0, 0, 1, (1 << 20) + 1))

    try:
        # While all of them hang on, 50 well-behaved clients get every answer.
        errors, elapsed = _good_clients(port, 50, 20)
        assert errors == [], errors[:3]
        print(f"50 clients x 21 calls next to 6 bad connections: {elapsed:.2f} s")
        assert time.monotonic() - silent_since < 60

        for name, sock in (
            ("garbage", garbage),
            ("http", http),
            ("huge header before the handshake", huge_before_handshake),
            ("huge header after the handshake", huge_after_handshake),
            ("frame just over the limit", just_over),
        ):
            closed, _ = _wait_closed(sock, 5)
            assert closed, f"the node kept the {name} connection open"

        # The silent client is dropped after the handshake timeout (1 s), not before.
        closed, _ = _wait_closed(silent, 10)
        silent_for = time.monotonic() - silent_since
        assert closed, "the silent client was never disconnected"
        assert 0.8 <= silent_for < 8, silent_for
        print(f"silent client disconnected after {silent_for:.2f} s (timeout 1 s)")
    finally:
        for sock in (silent, garbage, http, huge_before_handshake, huge_after_handshake, just_over):
            sock.close()

    assert node.running
    with pairns.NameServerLocator().getNS(HOST, port, timeout=10) as ns:
        assert len(ns.list(":Clients")) == 50


def test_silent_clients_beyond_the_handshake_do_not_block_accepting(start_node: Any) -> None:
    # Many clients that connect and say nothing: the node keeps accepting and serving.
    node = start_node(env={"PYRO_HANDSHAKE_TIMEOUT": "1"})
    silent = [_connect(node.port) for _ in range(100)]
    try:
        started = time.monotonic()
        with pairns.NameServerLocator().getNS(HOST, node.port, timeout=5) as ns:
            assert ns.ping() is True
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 10
        for sock in silent:
            closed, _ = _wait_closed(sock, max(deadline - time.monotonic(), 0.1))
            assert closed
    finally:
        for sock in silent:
            sock.close()
    assert node.running


async def test_async_clients_next_to_bad_ones(start_node: Any) -> None:
    node = start_node(env={"PYRO_HANDSHAKE_TIMEOUT": "1"})
    port = node.port
    bad = [_connect(port) for _ in range(5)]
    for sock in bad[:3]:
        sock.sendall(random.Random(3).randbytes(100))
    try:
        with trio.fail_after(60):
            proxies = [
                await pairns.NameServerLocator().async_getNS(HOST, port, timeout=15)
                for _ in range(50)
            ]
            own = URI.from_string(f"PYRO://{HOST}:{port}/Pyro.NameServer")
            results: list[URI] = []

            async def work(ns: pairns.AsyncNameServerProxy) -> None:
                for _ in range(10):
                    results.append(await ns.resolve(":Pyro.NameServer"))

            async with trio.open_nursery() as nursery:
                for ns in proxies:
                    nursery.start_soon(work, ns)
            for ns in proxies:
                await ns.aclose()
        assert results == [own] * 500
    finally:
        for sock in bad:
            sock.close()
    assert node.running


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"PN\x01\x10\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05[1,2", id="truncated"),
        pytest.param(b"PN\x09\x10\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02{}", id="bad-version"),
        pytest.param(b"\x00" * 14, id="zeros"),
    ],
)
def test_malformed_frames_after_handshake_close_only_that_connection(
    node: NodeProcess, payload: bytes
) -> None:
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=10) as ns:
        assert ns.ping()
        sock = _handshaken(node.port)
        try:
            sock.sendall(payload)
            if payload.endswith(b"[1,2"):
                sock.shutdown(socket.SHUT_WR)  # EOF in the middle of a frame
            closed, _ = _wait_closed(sock, 5)
            assert closed
        finally:
            sock.close()
        assert ns.ping() is True  # the other connection was not disturbed
        assert ns.resolve(":Pyro.NameServer").port == node.port
