"""Settings shared by the whole suite.

Hypothesis builds its Unicode tables the first time a test draws text. On a fresh clone
(no ``.hypothesis/`` folder), with the other core busy, that takes seconds and lands
inside whichever test draws text first, which then fails the "input generation is slow"
health check although the test itself is fine. The suite's profile turns that one check
off and lifts the per-example deadline (CI machines drift 2x in speed); every test keeps
its number of examples and its assertions.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from hypothesis import HealthCheck, settings

settings.register_profile(
    "pairns",
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
settings.load_profile("pairns")


# -- the network rule: datagrams from the test process go to loopback only -------------
#
# UDP discovery broadcasts by default to 255.255.255.255 (Pyro 3's "<broadcast>"). A test
# that forgot to point the locator at 127.255.255.255 would send that to the real
# network; this guard makes such a test fail instead. Stream sockets are not guarded:
# a connect to a real address fails or hangs visibly on its own.

_real_sendto = socket.socket.sendto


def _loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    address = args[-1]
    if not _loopback(address):
        raise AssertionError(f"a test sent a datagram to {address!r}: loopback only")
    return _real_sendto(self, data, *args)  # type: ignore[arg-type]


socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
