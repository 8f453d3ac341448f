"""The connection and broadcast guards: ``--allow``, ``--allow-twin`` and ``-s MODULE``.

Pyro 3 let a name server load a *security plugin* (``ns -s module``) holding a
connection validator and a broadcast guard. pairns keeps the idea with a small, typed
plugin protocol, and adds address lists that need no code:

* ``--allow CIDR`` (repeatable; ``PYRO_NS_ALLOW``): only these addresses may connect.
* ``--allow-twin CIDR`` (``PYRO_NS_ALLOW_TWIN``): only these may act as the twin (the
  peer endpoint refuses every other caller). An address in this list but not in
  ``--allow`` may connect, and reach the peer endpoint only.
* ``-s MODULE`` (``PYRO_NS_SECURITY_PLUGIN``): a module name (imported) or the path of
  a ``.py`` file, defining any of these functions (all optional, at least one)::

      def accept_host(address: tuple[str, int]) -> bool | str: ...
          # at accept, before the handshake
      def accept_connection(address: tuple[str, int], identified: bool) -> bool | str: ...
          # after the handshake; identified: the client proved -i
      def answer_location(address: tuple[str, int]) -> bool: ...
          # may this discovery request (a UDP 'location' from address) be answered?

  ``True`` accepts; ``False`` refuses; a string refuses with that reason (the client
  sees it). Anything else, or an exception, refuses too and is logged with the
  plugin's name: a broken plugin fails closed and never stops the node. The functions
  run on the event loop, once per connection (or datagram): keep them quick and free
  of IO.

Every refusal is counted (``status()``: ``refused_by_address``, ``refused_by_guard``,
``discovery_refused``; the metrics) and logged (throttled: :mod:`pairns._throttle`).
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import attrs

from pairns._throttle import RefusalLog
from pairns.rpc.guard import ADMIT, Admission

__all__ = [
    "HOOKS",
    "AddressList",
    "NodeGuard",
    "PluginError",
    "SecurityPlugin",
    "load_plugin",
    "parse_networks",
]

log = logging.getLogger("pairns.security")

#: The functions a ``-s`` plugin module may define.
HOOKS: Final = ("accept_host", "accept_connection", "answer_location")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PluginError(Exception):
    """A ``-s`` plugin cannot be loaded; the message says why (a configuration error)."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8"``, ``"192.0.2.7"``, ``"fd00::/8"`` -> networks; ``ValueError``
    naming the first value that is not one."""
    networks = []
    for value in values:
        text = value.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR network: {value!r}") from None
    return tuple(networks)


def _plain(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """*host* as an address, without a zone; an IPv4-mapped IPv6 address as IPv4."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@attrs.frozen
class AddressList:
    """A list of networks; an empty one allows every address."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> AddressList:
        """The list of *values* (CIDR texts)."""
        return cls(parse_networks(values))

    @property
    def restricts(self) -> bool:
        """True when the list is not empty (it then allows only what it holds)."""
        return bool(self.networks)

    def holds(self, peer: tuple[str, int] | None) -> bool:
        """True if *peer*'s address is in one of the networks (never for None)."""
        if peer is None:
            return False
        ip = _plain(peer[0])
        return ip is not None and any(ip in net for net in self.networks)


@attrs.frozen
class SecurityPlugin:
    """A loaded ``-s`` module: its name and the hooks it defines."""

    name: str
    accept_host: Callable[..., Any] | None = None
    accept_connection: Callable[..., Any] | None = None
    answer_location: Callable[..., Any] | None = None


def load_plugin(spec: str) -> SecurityPlugin:
    """Import the ``-s`` plugin *spec* (a module name, or a ``.py`` file's path).

    Raises :class:`PluginError` when it cannot be imported, or defines none of
    :data:`HOOKS`, or defines one that is not callable.
    """
    try:
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec)
            name = f"pairns_security_plugin_{path.stem}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise PluginError(f"cannot load security plugin {spec!r}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as exc:  # an import runs arbitrary code: report any failure
        raise PluginError(
            f"cannot import security plugin {spec!r}: {type(exc).__name__}: {exc}"
        ) from None
    hooks: dict[str, Callable[..., Any]] = {}
    for hook in HOOKS:
        fn = getattr(module, hook, None)
        if fn is None:
            continue
        if not callable(fn):
            raise PluginError(f"security plugin {spec!r}: {hook} is not a function")
        hooks[hook] = fn
    if not hooks:
        raise PluginError(
            f"security plugin {spec!r} defines none of {', '.join(HOOKS)}"
        )
    return SecurityPlugin(spec, **hooks)


def _address_text(peer: tuple[str, int] | None) -> str:
    if peer is None:
        return "an unknown address"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NodeGuard:
    """One node's guards: the daemon's :class:`~pairns.rpc.guard.ConnectionGuard`, the
    peer endpoint's twin check and the discovery responder's broadcast guard.

    *peer_objects* are the object ids an address allowed only as the twin may call.
    """

    def __init__(
        self,
        *,
        allow: AddressList = AddressList(),  # frozen: safe to share as a default
        allow_twin: AddressList = AddressList(),
        plugin: SecurityPlugin | None = None,
        peer_objects: frozenset[str] = frozenset(),
    ) -> None:
        self.allow = allow
        self.allow_twin = allow_twin
        self.plugin = plugin
        self._twin_only = Admission(only=peer_objects)
        #: Refusals by kind (``address``, ``guard``, ``twin``, ``location``), logged.
        self.refusals = RefusalLog(log)

    @property
    def active(self) -> bool:
        """True when any guard is configured (else the daemon need not ask)."""
        return self.allow.restricts or self.allow_twin.restricts or self.plugin is not None

    # -- the daemon (rpc.guard.ConnectionGuard) ---------------------------------------

    def admit(self, peer: tuple[str, int] | None) -> Admission:
        """At accept: the address lists, then the plugin's ``accept_host``."""
        admission = ADMIT
        if self.allow.restricts and not self.allow.holds(peer):
            if not (self.allow_twin.restricts and self.allow_twin.holds(peer)):
                reason = "connections from this address are not allowed"
                self.refusals.refused(
                    "address", f"refused a connection from {_address_text(peer)}: not in --allow"
                )
                return Admission(refusal=reason)
            admission = self._twin_only
        plugin = self.plugin
        if plugin is not None and plugin.accept_host is not None:
            refusal = self._ask(plugin.accept_host, "accept_host", peer, (peer,))
            if refusal is not None:
                self.refusals.refused(
                    "address",
                    f"security plugin refused a connection from {_address_text(peer)}: {refusal}",
                )
                return Admission(refusal=refusal)
        return admission

    def identified(self, peer: tuple[str, int] | None, identified: bool) -> str | None:
        """After the handshake: the plugin's ``accept_connection``."""
        plugin = self.plugin
        if plugin is None or plugin.accept_connection is None:
            return None
        refusal = self._ask(
            plugin.accept_connection, "accept_connection", peer, (peer, identified)
        )
        if refusal is not None:
            self.refusals.refused(
                "guard",
                f"security plugin refused a connection from {_address_text(peer)} "
                f"(identified: {identified}): {refusal}",
            )
        return refusal

    # -- the peer endpoint ------------------------------------------------------------

    def may_be_twin(self, peer: tuple[str, int] | None) -> bool:
        """True unless ``--allow-twin`` is set and *peer* is not in it (then logged)."""
        if not self.allow_twin.restricts or self.allow_twin.holds(peer):
            return True
        self.refusals.refused(
            "twin", f"refused a peer call from {_address_text(peer)}: not in --allow-twin"
        )
        return False

    # -- the discovery responder ------------------------------------------------------

    def answer_location(self, peer: tuple[str, int]) -> bool:
        """May a ``location`` request from *peer* be answered? (the broadcast guard)"""
        if self.allow.restricts and not (self.allow.holds(peer) or self.allow_twin.holds(peer)):
            self.refusals.refused(
                "location", f"not answering a location request from {_address_text(peer)}"
            )
            return False
        plugin = self.plugin
        if plugin is None or plugin.answer_location is None:
            return True
        refusal = self._ask(plugin.answer_location, "answer_location", peer, (peer,))
        if refusal is None:
            return True
        self.refusals.refused(
            "location",
            f"security plugin: not answering a location request from {_address_text(peer)}",
        )
        return False

    # -- calling the plugin -----------------------------------------------------------

    def _ask(
        self,
        fn: Callable[..., Any],
        hook: str,
        peer: tuple[str, int] | None,
        args: tuple[Any, ...],
    ) -> str | None:
        """Call a plugin hook; None to accept, else the refusal reason (fails closed)."""
        assert self.plugin is not None
        try:
            answer = fn(*args)
        except Exception as exc:
            log.error(
                "security plugin %s.%s(%s) raised %s: %s (refused)",
                self.plugin.name,
                hook,
                _address_text(peer),
                type(exc).__name__,
                exc,
            )
            return "refused by the security plugin"
        if answer is True:
            return None
        if isinstance(answer, str) and answer:
            return answer[:200]
        if answer is not False:
            log.error(
                "security plugin %s.%s returned %r, not True, False or a reason (refused)",
                self.plugin.name,
                hook,
                answer,
            )
        return "refused by the security plugin"
