"""The suite's network rule holds: a datagram to anything but loopback fails the test
(see ``tests/conftest.py``), for the standard library's sockets and Trio's alike."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import trio


def test_a_datagram_to_a_real_broadcast_address_fails_the_test() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        with pytest.raises(AssertionError, match="loopback only"):
            s.sendto(b"location", ("255.255.255.255", 9))
        with pytest.raises(AssertionError, match="loopback only"):
            s.sendto(b"location", ("192.0.2.1", 9))
        s.sendto(b"location", ("127.255.255.255", 9))  # the loopback broadcast is fine


async def test_the_guard_covers_trio_sockets() -> None:
    s = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with s:
        s.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_BROADCAST, 1)
        with pytest.raises(AssertionError, match="loopback only"):
            await s.sendto(b"location", ("255.255.255.255", 9))


def test_the_ipv6_discovery_group_is_guarded_too() -> None:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        pytest.skip("no IPv6 on this machine")
    with s:
        with pytest.raises(AssertionError, match="loopback only"):
            s.sendto(b"location", ("ff02::5079:726f", 9, 0, 0))
        with pytest.raises(AssertionError, match="loopback only"):
            s.sendto(b"location", ("fe80::1%1", 9))


def test_processes_the_tests_start_are_guarded() -> None:
    from tests.integration._support import clean_env

    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n"
        "s.sendto(b'x', ('127.255.255.255', 9))\n"
        "s.sendto(b'location', ('255.255.255.255', 9))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "('255.255.255.255', 9): loopback only" in result.stderr
