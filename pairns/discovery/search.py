"""How a locator looks for a name server: its settings, its steps, and one broadcast round.

:func:`plan` turns the settings into the steps :class:`~pairns.naming.locator.NameServerLocator`
takes in order (no IO): one :class:`Broadcast` to both broadcast ports, then
:class:`Direct` tries of the configured hosts, the local host name and ``localhost`` on
both name server ports. :func:`broadcast` (blocking sockets, no Trio) and
:func:`async_broadcast` (Trio, imported only when called) send a broadcast's rounds and
return the first valid answer.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import attrs

from pairns.config import (
    BC_RETRIES,
    CONNECT_PORT,
    DEFAULT_BC_ADDR,
    DEFAULT_BC_PORT,
    DEFAULT_BC_RETRIES,
    DEFAULT_BC_TIMEOUT,
    DEFAULT_NS2_BC_PORT,
    DEFAULT_NS2_PORT,
    OPTIONAL_TEXT,
    TIMEOUT,
    Kind,
    Origin,
)
from pairns.discovery.protocol import LOCATION, MAX_ANSWER_SIZE, parse_answer
from pairns.uri import DEFAULT_NS_PORT, URI


def _read(env: Mapping[str, str], key: str, kind: Kind, default: Any) -> Any:
    text = env.get(key)
    if text is None or text == "":
        return default
    return kind.read(text, Origin.environment(key))


@attrs.frozen
class LocatorSettings:
    """The ``PYRO_*`` settings a locator reads (Pyro 3's names and defaults)."""

    ns_host: str | None = None
    ns_port: int = DEFAULT_NS_PORT
    ns2_host: str | None = None
    ns2_port: int = DEFAULT_NS2_PORT
    bc_addr: str = DEFAULT_BC_ADDR
    ns2_bc_addr: str = DEFAULT_BC_ADDR
    bc_port: int = DEFAULT_BC_PORT
    ns2_bc_port: int = DEFAULT_NS2_BC_PORT
    retries: int = DEFAULT_BC_RETRIES
    timeout: float = DEFAULT_BC_TIMEOUT
    #: The local host name tried after the configured hosts (None: the system's).
    local_hostname: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocatorSettings:
        """The settings from *env* (default ``os.environ``); a malformed value raises
        :class:`~pairns.config.ConfigError` naming the variable."""
        env = os.environ if env is None else env
        return cls(
            ns_host=_read(env, "PYRO_NS_HOSTNAME", OPTIONAL_TEXT, None),
            ns_port=_read(env, "PYRO_NS_PORT", CONNECT_PORT, DEFAULT_NS_PORT),
            ns2_host=_read(env, "PYRO_NS2_HOSTNAME", OPTIONAL_TEXT, None),
            ns2_port=_read(env, "PYRO_NS2_PORT", CONNECT_PORT, DEFAULT_NS2_PORT),
            bc_addr=_read(env, "PYRO_NS_BC_ADDR", OPTIONAL_TEXT, None) or DEFAULT_BC_ADDR,
            ns2_bc_addr=_read(env, "PYRO_NS2_BC_ADDR", OPTIONAL_TEXT, None) or DEFAULT_BC_ADDR,
            bc_port=_read(env, "PYRO_NS_BC_PORT", CONNECT_PORT, DEFAULT_BC_PORT),
            ns2_bc_port=_read(env, "PYRO_NS2_BC_PORT", CONNECT_PORT, DEFAULT_NS2_BC_PORT),
            retries=_read(env, "PYRO_BC_RETRIES", BC_RETRIES, DEFAULT_BC_RETRIES),
            timeout=_read(env, "PYRO_BC_TIMEOUT", TIMEOUT, DEFAULT_BC_TIMEOUT),
        )


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.frozen
class Broadcast:
    """Send ``location`` to every destination, *rounds* times, waiting *timeout* s each."""

    destinations: tuple[tuple[str, int], ...]
    rounds: int
    timeout: float

    def __str__(self) -> str:
        places = ", ".join(_show(*d) for d in self.destinations)
        rounds = "1 round" if self.rounds == 1 else f"{self.rounds} rounds"
        return f"broadcast to {places} ({rounds} of {self.timeout:g} s)"


@attrs.frozen
class Direct:
    """Connect to the name server at *host*:*port* and ping it."""

    host: str
    port: int

    def __str__(self) -> str:
        return _show(self.host, self.port)


Step = Broadcast | Direct


def _unique(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return list(dict.fromkeys(items))


def plan(
    settings: LocatorSettings,
    *,
    port: int | None = None,
    bcaddr: str | None = None,
    local_hostname: str = "",
) -> list[Step]:
    """The steps of a search with no host given (no IO).

    *port* (Pyro 3's ``getNS(port=...)`` without a host) is then the one port asked,
    both for the broadcast and for the hosts tried after it; *bcaddr* replaces both
    broadcast addresses.
    """
    if port is not None:
        ports = [port]
        targets = [(bcaddr or settings.bc_addr, port), (bcaddr or settings.ns2_bc_addr, port)]
    else:
        ports = [settings.ns_port, settings.ns2_port]
        targets = [
            (bcaddr or settings.bc_addr, settings.bc_port),
            (bcaddr or settings.ns2_bc_addr, settings.ns2_bc_port),
        ]
    steps: list[Step] = [Broadcast(tuple(_unique(targets)), settings.retries + 1, settings.timeout)]
    direct: list[tuple[str, int]] = []
    if settings.ns_host:
        direct.append((settings.ns_host, port or settings.ns_port))
    ns2_host = settings.ns2_host or settings.ns_host
    if ns2_host:
        direct.append((ns2_host, port or settings.ns2_port))
    for host in (local_hostname, "localhost"):
        if host:
            direct.extend((host, p) for p in ports)
    steps.extend(Direct(h, p) for h, p in _unique(direct))
    return steps


def broadcast(step: Broadcast) -> tuple[URI, tuple[str, int]] | None:
    """Send *step*'s rounds on a blocking socket; the first answer and who sent it, or
    None. Datagrams that are not answers are skipped. Raises ``OSError`` when the
    request cannot be sent (no route, a name that does not resolve, ...)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(step.rounds):
            for destination in step.destinations:
                sock.sendto(LOCATION, destination)
            deadline = time.monotonic() + step.timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, source = sock.recvfrom(MAX_ANSWER_SIZE + 1)
                except TimeoutError:
                    break
                uri = parse_answer(data)
                if uri is not None:
                    return uri, source[:2]
    return None


async def async_broadcast(step: Broadcast) -> tuple[URI, tuple[str, int]] | None:
    """The Trio counterpart of :func:`broadcast`."""
    import trio  # the blocking client never gets here

    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(step.rounds):
            for destination in step.destinations:
                await sock.sendto(LOCATION, destination)
            with trio.move_on_after(step.timeout):
                while True:
                    data, source = await sock.recvfrom(MAX_ANSWER_SIZE + 1)
                    uri = parse_answer(data)
                    if uri is not None:
                        return uri, source[:2]
    return None
