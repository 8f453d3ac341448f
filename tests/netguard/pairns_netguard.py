"""The suite's network rule, enforced: datagrams go to loopback only.

UDP discovery broadcasts by default to 255.255.255.255 (Pyro 3's "<broadcast>") and asks
the IPv6 multicast group ff02::5079:726f. A test that forgot to point the locator at
127.255.255.255 (or to turn the group off) would send that to the real network; with the
guard installed such a send raises ``AssertionError`` instead. Stream sockets are not
guarded: a connect to a real address fails or hangs visibly on its own.

``tests/conftest.py`` installs it in the test process; ``sitecustomize.py`` beside this
file installs it in every Python process the tests start with this directory on
``PYTHONPATH`` (``clean_env`` puts it there), nodes and clients alike. Tests that run
in a network namespace of their own set ``PAIRNS_NETGUARD=off`` for their processes.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_real_sendto = socket.socket.sendto


def loopback(address: object) -> bool:
    """Whether a datagram to *address* stays on this host's loopback."""
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    address = args[-1]
    if not loopback(address):
        raise AssertionError(f"a test sent a datagram to {address!r}: loopback only")
    return _real_sendto(self, data, *args)  # type: ignore[arg-type]


def install() -> None:
    """Guard ``socket.socket.sendto`` (Trio's sockets use it too), unless turned off."""
    if os.environ.get("PAIRNS_NETGUARD") == "off":
        return
    socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
