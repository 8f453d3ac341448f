"""The suite's network rule holds: a datagram to anything but loopback fails the test
(see ``tests/conftest.py``), for the standard library's sockets and Trio's alike."""

from __future__ import annotations

import socket

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
