"""The Trio task that answers discovery requests on a node's broadcast port.

It only moves datagrams: :class:`~pairns.discovery.protocol.ResponderPolicy` decides
what is answered. ``await nursery.start(responder.serve)`` returns the bound address
once the socket listens; cancelling the task closes it. An IPv6 responder also joins a
multicast group (IPv6 has no broadcast) on one interface.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from typing import Any

import attrs
import trio

from pairns.discovery.interfaces import interface_name, routable_address
from pairns.discovery.protocol import (
    RECEIVE_SIZE,
    ResponderPolicy,
    Verdict,
    encode_answer,
)
from pairns.discovery.search import Broadcast, Heard, async_broadcast
from pairns.errors import NamingError
from pairns.uri import URI, WILDCARD_HOSTS

log = logging.getLogger("pairns.discovery")

#: Seconds to wait after a receive error that is not about one datagram (the socket
#: or the system is in trouble), so such an error cannot spin the event loop.
ERROR_PAUSE = 0.1


def _local_address_towards(peer: tuple[Any, ...], family: socket.AddressFamily) -> str | None:
    """The local address the kernel would send from to *peer* (no packet is sent)."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer[0], 9, *peer[2:]))
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_link_local
    except ValueError:
        return False


def _membership(group: str, interface: int) -> bytes:
    """The ``IPV6_JOIN_GROUP`` argument: the group's 16 bytes, the interface index."""
    return socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", interface)


@attrs.define(eq=False)
class UdpResponder:
    """Answers ``location`` on *bind* with *uri*; everything else is counted and ignored.

    An IPv6 responder (*bind* an IPv6 address) joins *group* on *interface* (0: the
    system's choice) when a group is given. A node listening on every interface has a
    wildcard host in its URI; the answer then names the local address facing the asker
    instead, which the asker can reach (for an asker on an IPv6 link-local address, an
    address of the interface the request came in on that needs no zone).
    """

    uri: URI
    bind: tuple[str, int]
    group: str | None = None
    interface: int = 0
    policy: ResponderPolicy = attrs.field(
        factory=lambda: ResponderPolicy.with_clock(trio.current_time)
    )
    #: The bound ``(host, port)`` once :meth:`serve` has started.
    address: tuple[str, int] | None = None

    def describe(self) -> str:
        """``host:port/udp`` where it answers (the requested address until bound), and
        the multicast group it joined."""
        host, port = self.address or self.bind
        shown = f"[{host}]" if ":" in host else (host or "*")
        text = f"{shown}:{port}/udp"
        if self.group is not None:
            zone = interface_name(self.interface)
            text += f" + group {self.group}" + (f"%{zone}" if zone else "")
        return text

    def _answer(self, source: tuple[Any, ...], family: socket.AddressFamily) -> bytes:
        if self.uri.host not in WILDCARD_HOSTS:
            return encode_answer(self.uri)
        local = None
        if family == socket.AF_INET6 and _is_link_local(source[0]) and len(source) > 3:
            local = routable_address(source[3])
        if local is None:
            local = _local_address_towards(source, family)
        if local is None:
            return encode_answer(self.uri)
        if local.startswith("::ffff:") and "." in local:
            local = local.removeprefix("::ffff:")
        return encode_answer(attrs.evolve(self.uri, host=local))

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind (and join the group), report the address through
        ``task_status.started()``, answer until cancelled."""
        host, port = self.bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Several responders on one host and port (-m) each get every broadcast.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                if family == socket.AF_INET6:
                    # IPv4 requests are the IPv4 responder's (a node on every interface
                    # runs both).
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind((host, port))
            except OSError as exc:
                raise NamingError(
                    f"cannot answer discovery on {self.describe()}: {exc.strerror or exc} "
                    "(-b picks another port, -c another address, -x runs no responder)"
                ) from None
            if self.group is not None:
                try:
                    membership = _membership(self.group, self.interface)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
                except OSError as exc:
                    raise NamingError(
                        f"cannot join the discovery group on {self.describe()}: "
                        f"{exc.strerror or exc} (PYRO_NS_MC_GROUP names another group, "
                        "PYRO_NS_MC_INTERFACE another interface; -x runs no responder)"
                    ) from None
            self.address = sock.getsockname()[:2]
            log.info("discovery: answering on %s", self.describe())
            task_status.started(self.address)
            while True:
                try:
                    data, source = await sock.recvfrom(RECEIVE_SIZE)
                except OSError as exc:
                    log.debug("discovery: receive failed: %s", exc)
                    await trio.sleep(ERROR_PAUSE)
                    continue
                if self.policy.receive(data, source[0], port=source[1]) is not Verdict.ANSWER:
                    continue
                try:
                    await sock.sendto(self._answer(source, family), source)
                except OSError as exc:
                    # The asker's address may be unreachable; that is its problem.
                    level = logging.DEBUG if exc.errno != errno.EPERM else logging.INFO
                    log.log(level, "discovery: cannot answer %s: %s", source, exc)


async def find_other(step: Broadcast) -> tuple[URI, tuple[str, int]] | None:
    """The name server that already answers where *step* asks, if any (the start-up
    check): its URI and where its answer came from."""
    try:
        heard: Heard = await async_broadcast(step)
    except OSError as exc:
        log.warning("discovery: cannot look for another name server (%s): %s", step, exc)
        return None
    for where, why in heard.unsent:
        log.warning("discovery: cannot look for another name server at %s: %s", where, why)
    return heard.answer
