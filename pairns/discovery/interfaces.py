"""Which network interface IPv6 discovery uses, and the addresses an interface holds.

IPv6 has no broadcast: discovery joins a multicast group, and a link-local group
(``ff02::``) names no link by itself, so joining and asking need an interface index.
An explicit setting (``PYRO_NS_MC_INTERFACE``: a name or an index) wins; otherwise a node
joins on the interface that holds its address, and 0 leaves the choice to the system
(its route for the group). On Linux the addresses come from ``/proc/net/if_inet6``;
elsewhere only the explicit setting and the system's choice are available.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Final

from pairns.errors import NamingError

#: Linux's table of IPv6 addresses: address (hex), index, prefix, scope, flags, name.
IF_INET6: Final = Path("/proc/net/if_inet6")


def ipv6_addresses(table: Path = IF_INET6) -> list[tuple[ipaddress.IPv6Address, int]]:
    """Every IPv6 address of this host with its interface index (empty where unknown)."""
    try:
        text = table.read_text(encoding="ascii")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        try:
            address = ipaddress.IPv6Address(int(fields[0], 16))
            index = int(fields[1], 16)
        except ValueError:
            continue
        found.append((address, index))
    return found


def interface_of(host: str, table: Path = IF_INET6) -> int:
    """The index of the interface holding the IPv6 address *host*; 0 if none is known."""
    try:
        wanted = ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        return 0
    for address, index in ipv6_addresses(table):
        if address == wanted:
            return index
    return 0


def interface_index(spec: str | None, host: str = "", table: Path = IF_INET6) -> int:
    """The interface index *spec* names (an index or a name), else the one holding
    *host*, else 0 (the system's choice). Raises :class:`NamingError` for a name this
    host does not have."""
    if spec:
        if spec.isdigit():
            return int(spec)
        try:
            return socket.if_nametoindex(spec)
        except OSError:
            raise NamingError(f"no network interface named {spec!r}") from None
    return interface_of(host, table)


def interface_name(index: int) -> str:
    """The name of interface *index* (the index as text if it has none)."""
    if index == 0:
        return ""
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def routable_address(index: int, table: Path = IF_INET6) -> str | None:
    """An address of interface *index* that is neither link-local nor loopback (one a
    URI can name without a zone), or None."""
    for address, found in ipv6_addresses(table):
        if found == index and not (address.is_link_local or address.is_loopback):
            return str(address)
    return None
