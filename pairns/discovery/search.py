"""How a locator looks for a name server: its settings, its steps, and one broadcast round.

:func:`plan` turns the settings into the steps :class:`~pairns.naming.locator.NameServerLocator`
takes in order (no IO): one :class:`Broadcast` to both broadcast ports (IPv4 broadcast,
and the IPv6 multicast group on the same ports), then :class:`Direct` tries of the
configured hosts, the local host name and ``localhost`` on both name server ports.
:func:`broadcast` (blocking sockets, no Trio) and :func:`async_broadcast` (Trio,
imported only when called) send a broadcast's rounds to every destination at once and
return the first valid answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from pairns.config import (
    BC_RETRIES,
    CONNECT_PORT,
    DEFAULT_BC_ADDR,
    DEFAULT_BC_PORT,
    DEFAULT_BC_RETRIES,
    DEFAULT_BC_TIMEOUT,
    DEFAULT_MC_GROUP,
    DEFAULT_NS2_BC_PORT,
    DEFAULT_NS2_PORT,
    INTERFACE,
    MC_GROUP,
    OPTIONAL_TEXT,
    TIMEOUT,
    Kind,
    Origin,
)
from pairns.discovery.interfaces import interface_index, interface_name
from pairns.discovery.protocol import LOCATION, MAX_ANSWER_SIZE, parse_answer
from pairns.errors import NamingError
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
    #: The IPv6 multicast group asked on both broadcast ports (None: IPv4 only).
    mc_group: str | None = DEFAULT_MC_GROUP
    #: The interface the group is asked on (a name or an index; None: the system's choice).
    mc_interface: str | None = None
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
            mc_group=_read(env, "PYRO_NS_MC_GROUP", MC_GROUP, DEFAULT_MC_GROUP),
            mc_interface=_read(env, "PYRO_NS_MC_INTERFACE", INTERFACE, None),
        )


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.frozen
class Broadcast:
    """Send ``location`` to every destination, *rounds* times, waiting *timeout* s each.

    A destination with an IPv6 address (a multicast group, or one address) is asked
    over IPv6, on *interface* (a name or an index; None: the system's choice).
    """

    destinations: tuple[tuple[str, int], ...]
    rounds: int
    timeout: float
    interface: str | None = None

    def __str__(self) -> str:
        places = ", ".join(_show(*d) for d in self.destinations)
        if self.interface and any(":" in host for host, _ in self.destinations):
            places += f" (IPv6 on {self.interface})"
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
    both for the broadcast and for the hosts tried after it; *bcaddr* is then the one
    address the broadcast goes to (an IPv6 one: the group, or the address, asked).
    """
    if port is not None:
        ports = [port]
        bc_ports = [port, port]
    else:
        ports = [settings.ns_port, settings.ns2_port]
        bc_ports = [settings.bc_port, settings.ns2_bc_port]
    if bcaddr is not None:
        targets = [(bcaddr, p) for p in bc_ports]
    else:
        targets = [(settings.bc_addr, bc_ports[0]), (settings.ns2_bc_addr, bc_ports[1])]
        if settings.mc_group is not None:
            targets.extend((settings.mc_group, p) for p in bc_ports)
    steps: list[Step] = [
        Broadcast(
            tuple(_unique(targets)), settings.retries + 1, settings.timeout, settings.mc_interface
        )
    ]
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


#: What a broadcast step heard first: the answer's URI and who sent it.
Answer = tuple[URI, tuple[str, int]]


@attrs.frozen
class Heard:
    """What a broadcast step gave: the first answer (or None), and the destinations
    that could not be asked, each with the reason."""

    answer: Answer | None
    unsent: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class _Target:
    """One destination as a socket address of one family."""

    family: socket.AddressFamily
    address: tuple[Any, ...]
    shown: str


def _needs_zone(host: str) -> bool:
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return address.is_multicast or address.is_link_local


def _targets(step: Broadcast) -> tuple[list[_Target], list[tuple[str, str]]]:
    """The socket addresses of *step*'s destinations, and those that have none."""
    targets: list[_Target] = []
    unsent: list[tuple[str, str]] = []
    index: int | None = None
    for host, port in step.destinations:
        shown = _show(host, port)
        if ":" not in host:
            targets.append(_Target(socket.AF_INET, (host, port), shown))
            continue
        if index is None:
            try:
                index = interface_index(step.interface)
            except NamingError as exc:
                unsent.append((shown, str(exc)))
                continue
        scope = index if _needs_zone(host) else 0
        targets.append(_Target(socket.AF_INET6, (host, port, 0, scope), shown))
    return targets, unsent


def _sockets(
    targets: list[_Target],
    unsent: list[tuple[str, str]],
    make: Callable[[socket.AddressFamily], Any],
) -> Iterator[tuple[socket.AddressFamily, Any]]:
    """One datagram socket per family *targets* use (made by *make*); a family whose
    socket cannot be made has its targets moved to *unsent*."""
    for family in dict.fromkeys(t.family for t in targets):
        try:
            sock = make(family)
        except OSError as exc:
            why = exc.strerror or str(exc)
            unsent.extend((t.shown, why) for t in targets if t.family == family)
            targets[:] = [t for t in targets if t.family != family]
            continue
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        yield family, sock


def _open(
    step: Broadcast, stack: contextlib.ExitStack, make: Callable[[socket.AddressFamily], Any]
) -> tuple[list[_Target], list[tuple[str, str]], dict[socket.AddressFamily, Any]]:
    """*step*'s targets, those that cannot be asked, and a socket per family (closed
    with *stack*); ``OSError`` naming why when nothing can be asked."""
    targets, unsent = _targets(step)
    sockets = {
        family: stack.enter_context(sock) for family, sock in _sockets(targets, unsent, make)
    }
    if not targets:
        raise OSError(f"nothing to ask: {'; '.join(f'{d}: {r}' for d, r in unsent)}")
    return targets, unsent, sockets


def _sent_any(
    results: list[tuple[_Target, OSError | None]], unsent: list[tuple[str, str]], first: bool
) -> None:
    """Record the sends that failed (in the first round only); raise when none went out."""
    failures = [(t, e) for t, e in results if e is not None]
    if first:
        unsent.extend((t.shown, e.strerror or str(e)) for t, e in failures)
    if failures and len(failures) == len(results):
        raise failures[0][1]


def _heard(data: bytes, source: tuple[Any, ...]) -> Answer | None:
    """The answer in *data* from *source*, or None. An answer naming a link-local
    address is reachable only through the interface it came in on: that becomes the
    address's zone (``fe80::1%eth0``)."""
    uri = parse_answer(data)
    if uri is None:
        return None
    host = uri.host or ""
    if len(source) > 3 and source[3] and "%" not in host and _is_link_local(host):
        uri = attrs.evolve(uri, host=f"{host}%{interface_name(source[3])}")
    return uri, (str(source[0]), int(source[1]))


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.IPv6Address(host).is_link_local
    except ValueError:
        return False


def broadcast(step: Broadcast) -> Heard:
    """Send *step*'s rounds on blocking sockets; the first answer and who sent it.
    Datagrams that are not answers are skipped. Raises ``OSError`` when no request at
    all can be sent (no route, a name that does not resolve, ...)."""
    with contextlib.ExitStack() as stack:
        targets, unsent, sockets = _open(
            step, stack, lambda f: socket.socket(f, socket.SOCK_DGRAM)
        )
        for n in range(step.rounds):
            results: list[tuple[_Target, OSError | None]] = []
            for target in targets:
                try:
                    sockets[target.family].sendto(LOCATION, target.address)
                    results.append((target, None))
                except OSError as exc:
                    results.append((target, exc))
            _sent_any(results, unsent, n == 0)
            deadline = time.monotonic() + step.timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select(list(sockets.values()), [], [], left)
                for sock in ready:
                    answer = _heard(*sock.recvfrom(MAX_ANSWER_SIZE + 1))
                    if answer is not None:
                        return Heard(answer, tuple(unsent))
    return Heard(None, tuple(unsent))


async def async_broadcast(step: Broadcast) -> Heard:
    """The Trio counterpart of :func:`broadcast`."""
    import trio  # the blocking client never gets here

    with contextlib.ExitStack() as stack:
        targets, unsent, sockets = _open(
            step, stack, lambda f: trio.socket.socket(f, socket.SOCK_DGRAM)
        )
        for n in range(step.rounds):
            results: list[tuple[_Target, OSError | None]] = []
            for target in targets:
                try:
                    await sockets[target.family].sendto(LOCATION, target.address)
                    results.append((target, None))
                except OSError as exc:
                    results.append((target, exc))
            _sent_any(results, unsent, n == 0)
            heard: list[Answer] = []

            async def listen(sock: Any, scope: trio.CancelScope, heard: list[Answer]) -> None:
                while True:
                    answer = _heard(*await sock.recvfrom(MAX_ANSWER_SIZE + 1))
                    if answer is not None:
                        heard.append(answer)
                        scope.cancel()
                        return

            with trio.move_on_after(step.timeout):
                async with trio.open_nursery() as nursery:
                    for sock in sockets.values():
                        nursery.start_soon(listen, sock, nursery.cancel_scope, heard)
            if heard:
                return Heard(heard[0], tuple(unsent))
    return Heard(None, tuple(unsent))
