"""The Trio task that answers discovery requests on a node's broadcast port.

It only moves datagrams: :class:`~pairns.discovery.protocol.ResponderPolicy` decides
what is answered. ``await nursery.start(responder.serve)`` returns the bound address
once the socket listens; cancelling the task closes it.
"""

from __future__ import annotations

import errno
import logging
import socket

import attrs
import trio

from pairns.discovery.protocol import (
    RECEIVE_SIZE,
    ResponderPolicy,
    Verdict,
    encode_answer,
)
from pairns.discovery.search import Broadcast, async_broadcast
from pairns.errors import NamingError
from pairns.uri import URI, WILDCARD_HOSTS

log = logging.getLogger("pairns.discovery")

#: Seconds to wait after a receive error that is not about one datagram (the socket
#: or the system is in trouble), so such an error cannot spin the event loop.
ERROR_PAUSE = 0.1


def _local_address_towards(peer: str, family: socket.AddressFamily) -> str | None:
    """The local address the kernel would send from to *peer* (no packet is sent)."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return None


@attrs.define(eq=False)
class UdpResponder:
    """Answers ``location`` on *bind* with *uri*; everything else is counted and ignored.

    A node listening on every interface has a wildcard host in its URI; the answer then
    names the local address facing the asker instead, which the asker can reach.
    """

    uri: URI
    bind: tuple[str, int]
    policy: ResponderPolicy = attrs.field(
        factory=lambda: ResponderPolicy.with_clock(trio.current_time)
    )
    #: The bound ``(host, port)`` once :meth:`serve` has started.
    address: tuple[str, int] | None = None

    def describe(self) -> str:
        """``host:port/udp`` where it answers (the requested address until bound)."""
        host, port = self.address or self.bind
        shown = f"[{host}]" if ":" in host else (host or "*")
        return f"{shown}:{port}/udp"

    def _answer(self, source: str, family: socket.AddressFamily) -> bytes:
        if self.uri.host not in WILDCARD_HOSTS:
            return encode_answer(self.uri)
        local = _local_address_towards(source, family)
        if local is None:
            return encode_answer(self.uri)
        return encode_answer(attrs.evolve(self.uri, host=local))

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the address through ``task_status.started()``, answer until
        cancelled."""
        host, port = self.bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Several responders on one host and port (-m) each get every broadcast.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                await sock.bind((host, port))
            except OSError as exc:
                raise NamingError(
                    f"cannot answer discovery on {self.describe()}: {exc.strerror or exc} "
                    "(-b picks another port, -c another address, -x runs no responder)"
                ) from None
            self.address = sock.getsockname()[:2]
            log.info("discovery: answering on %s:%s/udp", *self.address)
            task_status.started(self.address)
            while True:
                try:
                    data, source = await sock.recvfrom(RECEIVE_SIZE)
                except OSError as exc:
                    log.debug("discovery: receive failed: %s", exc)
                    await trio.sleep(ERROR_PAUSE)
                    continue
                if self.policy.receive(data, source[0]) is not Verdict.ANSWER:
                    continue
                try:
                    await sock.sendto(self._answer(source[0], family), source)
                except OSError as exc:
                    # The asker's address may be unreachable; that is its problem.
                    level = logging.DEBUG if exc.errno != errno.EPERM else logging.INFO
                    log.log(level, "discovery: cannot answer %s: %s", source, exc)


async def find_other(
    destination: tuple[str, int], rounds: int, timeout: float
) -> tuple[URI, tuple[str, int]] | None:
    """The name server that already answers at *destination*, if any (the start-up
    check): its URI and where its answer came from."""
    try:
        return await async_broadcast(Broadcast((destination,), rounds, timeout))
    except OSError as exc:
        log.warning("discovery: cannot look for another name server at %s: %s", destination, exc)
        return None
