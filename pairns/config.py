"""Node configuration: built-in defaults < TOML file < ``PYRO_*`` environment < flags.

Every setting has one Pyro-style name (``PYRO_NS_PORT``), used alike as the TOML key and
as the environment variable, one field on the frozen :class:`Config`, and one
:class:`Kind` that says which values it accepts. Layers are applied with
:func:`attrs.evolve`, and each value keeps the :class:`Origin` it came from, so a bad
value is refused here, once, with one line that names the setting, what it accepts and
where the value was found. The rest of the node never sees a malformed setting.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from pairns import names
from pairns.errors import NamingError, PairnsError
from pairns.structured_log import LOG_FORMATS
from pairns.uri import DEFAULT_NS_PORT, WILDCARD_HOSTS
from pairns.wire import limits


class ConfigError(PairnsError):
    """A configuration value (file, environment or flag) is unusable; says which and why."""


#: The :attr:`Origin.source` of a value given by a command-line flag.
COMMAND_LINE: Final = "the command line"


@attrs.frozen
class Origin:
    """Where a setting's value came from: how the setting was spelled there, and where."""

    #: The setting as the user wrote it: ``PYRO_NS_PORT``, or a flag such as ``-p``.
    label: str
    #: Where: ``the environment``, ``config file PATH``, ``the command line``, ...
    source: str

    @classmethod
    def environment(cls, key: str) -> Origin:
        """The environment variable *key*."""
        return cls(key, "the environment")

    @classmethod
    def file(cls, key: str, path: str | os.PathLike[str]) -> Origin:
        """The key *key* of the TOML file at *path*."""
        return cls(key, f"config file {os.fspath(path)}")

    @classmethod
    def flag(cls, flag: str) -> Origin:
        """The command-line flag *flag*."""
        return cls(flag, COMMAND_LINE)


def _is_finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float (TOML allows 64-bit ints only,
        return False  # but a program may pass anything)


def _identity(value: Any) -> Any:
    return value


@attrs.frozen
class Kind:
    """The values one setting accepts: how its text is read and how to name them."""

    #: What is allowed, for messages: ``an integer in 0..65535``.
    allowed: str
    #: Text (an environment variable, a flag) -> value; raises ``ValueError`` if malformed.
    parse: Callable[[str], Any]
    #: Whether a value (parsed, read from TOML, or given by a program) is allowed.
    accepts: Callable[[Any], bool]
    #: An accepted value -> the value stored (seconds become floats, ``""`` None).
    normalise: Callable[[Any], Any] = _identity

    def error(self, value: Any, origin: Origin, *, secret: bool = False) -> ConfigError:
        """The one-line error for *value* from *origin* (*secret* values are not shown)."""
        return self._error(repr(value), origin, secret)

    def _error(self, shown: str, origin: Origin, secret: bool) -> ConfigError:
        if secret:
            shown = "the value given"
        return ConfigError(
            f"{origin.label} must be {self.allowed}, not {shown} (from {origin.source})"
        )

    def check(self, value: Any, origin: Origin, *, secret: bool = False) -> Any:
        """*value* as stored, or :class:`ConfigError` naming *origin*."""
        if not self.accepts(value):
            raise self.error(value, origin, secret=secret)
        return self.normalise(value)

    def read(self, text: str, origin: Origin, *, secret: bool = False) -> Any:
        """Parse *text* and check it; :class:`ConfigError` naming *origin* if either fails.

        The message quotes *text* as given, except a number, shown as the user wrote it.
        """
        try:
            value = self.parse(text)
        except ValueError:
            raise self._error(repr(text), origin, secret) from None
        if not self.accepts(value):
            shown = text.strip() if isinstance(value, (int, float)) else repr(text)
            raise self._error(shown, origin, secret)
        return self.normalise(value)


def integer(low: int, high: int, note: str = "") -> Kind:
    """Integers in *low*..*high* (``True`` is not one); *note* is added to the message."""
    return Kind(
        allowed=f"an integer in {low}..{high}" + (f" ({note})" if note else ""),
        parse=int,
        accepts=lambda value: type(value) is int and low <= value <= high,
    )


def seconds(*, zero_means: str | None = None) -> Kind:
    """A finite number of seconds, above zero (or zero too, meaning *zero_means*)."""

    def accepts(value: Any) -> bool:
        if type(value) not in (int, float) or not _is_finite(value):
            return False
        return bool(value >= 0 if zero_means is not None else value > 0)

    floor = f">= 0 (0: {zero_means})" if zero_means is not None else "> 0"
    return Kind(
        allowed=f"a finite number of seconds {floor}", parse=float, accepts=accepts, normalise=float
    )


_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off", "")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _check_group(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        names.check_default_group(value)
    except NamingError:
        return False
    return True


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _empty_is_none(value: str | None) -> str | None:
    return value or None


#: A port to listen on: 0 asks the system for any free port.
LISTEN_PORT: Final = integer(0, 65535, "0: any free port")
#: A port to connect to.
CONNECT_PORT: Final = integer(1, 65535)
#: A host to connect to (a name or an address; the wildcard is for listening only).
CONNECT_HOST: Final = Kind("a host name or address", str, lambda value: bool(value.strip()))
#: A timeout: a finite number of seconds above zero.
TIMEOUT: Final = seconds()
#: Any text.
TEXT: Final = Kind("a string", str, _is_str)
#: Text where an empty value means "not set".
OPTIONAL_TEXT: Final = Kind("a string", str, _is_optional_str, _empty_is_none)
#: A yes/no setting; its text may be any of the usual spellings.
BOOLEAN: Final = Kind(
    "a boolean (true/false, 1/0, yes/no, on/off)",
    _parse_bool,
    lambda value: type(value) is bool,
)
#: Pyro 3 wrote ``PYRO_CHECKSUM = 0/1``; a TOML file may too.
BOOLEAN_OR_BIT: Final = Kind(
    "a boolean (true/false, 1/0, yes/no, on/off)",
    _parse_bool,
    lambda value: type(value) is bool or (type(value) is int and value in (0, 1)),
    bool,
)
def _is_multicast_group(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    if value.strip().lower() in ("", "none"):
        return True
    try:
        return ipaddress.IPv6Address(value.strip()).is_multicast
    except ValueError:
        return False


def _group_or_none(value: str | None) -> str | None:
    if value is None or value.strip().lower() == "none":
        return None
    return value.strip() or DEFAULT_MC_GROUP


#: An IPv6 multicast group; ``none`` asks and joins none, an empty value is the default.
MC_GROUP: Final = Kind(
    "an IPv6 multicast address such as 'ff02::5079:726f', or 'none'",
    str,
    _is_multicast_group,
    _group_or_none,
)


def _is_interface(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and (value == "" or not any(c.isspace() for c in value))


#: A network interface: a name such as ``eth0`` or an index; empty: chosen automatically.
INTERFACE: Final = Kind("a network interface name or index", str, _is_interface, _empty_is_none)

def _parse_listen_address(text: str) -> tuple[str, int]:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[V6]:PORT`` -> ``(host, port)``;
    ``ValueError`` if it is none of them."""
    text = text.strip()
    if text.isdigit():
        return "127.0.0.1", int(text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"an IPv6 address needs brackets: {text!r}")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not PORT, HOST:PORT or [IPV6]:PORT: {text!r}")
    return host, int(port)


def _is_listen_address(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    if value == "":
        return True
    try:
        _, port = _parse_listen_address(value)
    except ValueError:
        return False
    return 0 <= port <= 65535


#: Where to listen: ``PORT`` (loopback), ``HOST:PORT`` or ``[V6]:PORT``; empty: nowhere.
LISTEN_ADDRESS: Final = Kind(
    "an address to listen on: PORT, HOST:PORT or [IPV6]:PORT (port 0: any free port)",
    str,
    _is_listen_address,
    _empty_is_none,
)

def _split_networks(text: str) -> tuple[str, ...]:
    """``"10.0.0.0/8, 192.0.2.7"`` -> the items (commas or spaces between them)."""
    return tuple(item for item in text.replace(",", " ").split() if item)


def _is_network_list(value: Any) -> bool:
    if isinstance(value, str):
        value = _split_networks(value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return False
    try:
        for item in value:
            ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return False
    return True


def _networks(value: Any) -> tuple[str, ...]:
    items = _split_networks(value) if isinstance(value, str) else value
    return tuple(str(ipaddress.ip_network(item.strip(), strict=False)) for item in items)


#: Addresses or CIDR networks (``10.0.0.0/8``, ``192.0.2.7``, ``fd00::/8``), as a list,
#: or one text with commas or spaces between them; empty: no restriction.
NETWORKS: Final = Kind(
    "a list of addresses or CIDR networks such as '10.0.0.0/8, 192.0.2.7'",
    _split_networks,
    _is_network_list,
    _networks,
)

#: The default group: an absolute group name.
GROUP: Final = Kind("an absolute group name such as ':Default'", str, _check_group)


def choice(*values: Any) -> Kind:
    """One of *values* (compared exactly: ``1`` is not ``True``)."""
    return Kind(
        allowed="one of " + ", ".join(str(v) for v in values),
        parse=str,
        accepts=lambda value: type(value) in (type(v) for v in values) and value in values,
    )


#: Paired mode's roles: 0 = single node, 1 = the first node (``-1``), 2 = the second.
ROLE: Final = integer(0, 2, "0: single node, 1: first node of a pair (-1), 2: second (-2)")

#: Acknowledgement modes: ``local`` (durable on the node that took the write, queued for
#: the twin) and ``twin`` (also applied by the twin, while it is connected).
ACK_MODES = ("local", "twin")

#: Where the second node of a pair listens unless told otherwise (Pyro 3's rule).
DEFAULT_NS2_PORT: Final = DEFAULT_NS_PORT + 1

#: Pyro 3's broadcast (discovery) ports of the first (or single) and the second node.
DEFAULT_BC_PORT: Final = 9090
DEFAULT_NS2_BC_PORT: Final = 9091
#: Where a locator's broadcast goes when ``PYRO_NS_BC_ADDR``/``PYRO_NS2_BC_ADDR`` are
#: not set (Pyro 3's ``<broadcast>``).
DEFAULT_BC_ADDR: Final = "255.255.255.255"
#: Broadcast rounds after the first, and the wait for an answer in each (Pyro 3's).
DEFAULT_BC_RETRIES: Final = 1
DEFAULT_BC_TIMEOUT: Final = 0.75
#: The IPv6 multicast group nodes on an IPv6 address join and locators ask (IPv6 has no
#: broadcast). Link-local scope (``ff02::``), the reach of an IPv4 broadcast; the group
#: id spells "Pyro" in ASCII. Site-wide discovery takes a ``ff05::`` group.
DEFAULT_MC_GROUP: Final = "ff02::5079:726f"
#: Retries of a broadcast: Pyro 3 read a negative number as "for ever"; pairns keeps
#: every wait bounded.
BC_RETRIES: Final = integer(0, 100)

#: Field metadata keys: the setting's ``PYRO_*`` name (None: a flag only), its kind, and
#: whether its value is a secret (never shown in a message).
_KEY, _KIND, _SECRET = "pairns_key", "pairns_kind", "pairns_secret"


def _validate(inst: Config, attribute: attrs.Attribute[Any], value: Any) -> None:
    kind: Kind = attribute.metadata[_KIND]
    if not kind.accepts(value):
        raise kind.error(value, inst.origin_of(attribute.name), secret=attribute.metadata[_SECRET])


def _setting(key: str | None, kind: Kind, default: Any, *, secret: bool = False) -> Any:
    return attrs.field(
        default=default,
        validator=_validate,
        repr=not secret,
        metadata={_KEY: key, _KIND: kind, _SECRET: secret},
    )


@attrs.frozen
class ResponderPlace:
    """Where one discovery responder binds, and the IPv6 multicast group it joins."""

    host: str
    port: int
    group: str | None = None

    @property
    def ipv6(self) -> bool:
        """Whether the responder is an IPv6 one."""
        return ":" in self.host


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> ``(host, port)``.

    Raises :class:`ConfigError` for an empty host or a port outside 1..65535.
    """
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"invalid address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"invalid address {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ConfigError(f"invalid address {text!r}: no host")
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"invalid address {text!r}: the port is not a number") from None
    if not 0 < port <= 65535:
        raise ConfigError(f"invalid address {text!r}: the port must be 1..65535")
    return host, port


@attrs.frozen(kw_only=True)
class Config:
    """Everything one node needs to know; built by :func:`load_config`.

    Every field is checked when a :class:`Config` is made (also by :func:`attrs.evolve`);
    a bad value raises :class:`ConfigError` naming its setting and its :class:`Origin`.
    """

    host: str = _setting("PYRO_NS_HOSTNAME", TEXT, "localhost")
    port: int = _setting("PYRO_NS_PORT", LISTEN_PORT, DEFAULT_NS_PORT)
    identification: str | None = _setting(
        "PYRO_NS_IDENTIFICATION", OPTIONAL_TEXT, None, secret=True
    )
    allow_shutdown: bool = _setting("PYRO_NS_ALLOW_SHUTDOWN", BOOLEAN, True)
    verbose: bool = _setting(None, BOOLEAN, False)
    storage: str = _setting("PYRO_STORAGE", TEXT, ".")
    uri_file: str | None = _setting("PYRO_NS_URIFILE", OPTIONAL_TEXT, None)
    default_group: str = _setting("PYRO_NS_DEFAULTGROUP", GROUP, names.DEFAULT_GROUP)
    persistent: bool = _setting("PYRO_NS_PERSISTENT", BOOLEAN, False)
    database: str | None = _setting("PYRO_NS_DATABASE", OPTIONAL_TEXT, None)
    checksums: bool = _setting("PYRO_CHECKSUM", BOOLEAN_OR_BIT, False)
    max_connections: int = _setting(
        "PYRO_MAXCONNECTIONS",
        integer(1, limits.MAX_MAX_CONNECTIONS),
        limits.DEFAULT_MAX_CONNECTIONS,
    )
    max_frame_size: int = _setting(
        "PYRO_MAX_FRAME_SIZE",
        integer(limits.MIN_MAX_FRAME_SIZE, limits.MAX_MAX_FRAME_SIZE, "bytes"),
        limits.DEFAULT_MAX_FRAME_SIZE,
    )
    max_in_flight: int = _setting(
        "PYRO_MAX_IN_FLIGHT",
        integer(1, limits.MAX_MAX_IN_FLIGHT),
        limits.DEFAULT_MAX_IN_FLIGHT,
    )
    handshake_timeout: float = _setting(
        "PYRO_HANDSHAKE_TIMEOUT", TIMEOUT, limits.DEFAULT_HANDSHAKE_TIMEOUT
    )
    idle_timeout: float = _setting(
        "PYRO_IDLE_TIMEOUT", seconds(zero_means="never"), limits.DEFAULT_IDLE_TIMEOUT
    )
    #: Reply bytes one connection may leave unread before the node stops reading it.
    max_queued_reply_bytes: int = _setting(
        "PYRO_MAX_QUEUED_REPLY_BYTES",
        integer(0, limits.MAX_MAX_QUEUED_REPLY_BYTES, "bytes"),
        limits.DEFAULT_MAX_QUEUED_REPLY_BYTES,
    )
    #: Paired mode: 0 = single node, 1 = ``-1``, 2 = ``-2`` (the flags win).
    role: int = _setting("PYRO_NS_ROLE", ROLE, 0)
    #: Where the twin serves (``host:port``; an address after ``-1``/``-2`` wins);
    #: :func:`resolve_pairing` fills it in when neither gives one.
    twin: str | None = _setting("PYRO_NS_TWIN", OPTIONAL_TEXT, None)
    ns2_host: str | None = _setting("PYRO_NS2_HOSTNAME", OPTIONAL_TEXT, None)
    ns2_port: int = _setting("PYRO_NS2_PORT", LISTEN_PORT, DEFAULT_NS2_PORT)
    ack: str = _setting("PYRO_NS_ACK", choice(*ACK_MODES), "local")
    peer_timeout: float = _setting("PYRO_NS_PEER_TIMEOUT", TIMEOUT, 2.0)
    #: The UDP port this node answers discovery requests on (``-b``); for a ``-2`` node
    #: :func:`resolve_pairing` puts ``ns2_bc_port`` here unless ``-b`` was given.
    bc_port: int = _setting("PYRO_NS_BC_PORT", LISTEN_PORT, DEFAULT_BC_PORT)
    ns2_bc_port: int = _setting("PYRO_NS2_BC_PORT", LISTEN_PORT, DEFAULT_NS2_BC_PORT)
    #: The address the responder binds to and the node's start-up check broadcasts to
    #: (``-c``; None: every interface, checked at ``255.255.255.255``); for a ``-2``
    #: node :func:`resolve_pairing` puts ``ns2_bc_addr`` here unless ``-c`` was given.
    bc_addr: str | None = _setting("PYRO_NS_BC_ADDR", OPTIONAL_TEXT, None)
    ns2_bc_addr: str | None = _setting("PYRO_NS2_BC_ADDR", OPTIONAL_TEXT, None)
    bc_retries: int = _setting("PYRO_BC_RETRIES", BC_RETRIES, DEFAULT_BC_RETRIES)
    bc_timeout: float = _setting("PYRO_BC_TIMEOUT", TIMEOUT, DEFAULT_BC_TIMEOUT)
    #: The IPv6 multicast group a node on an IPv6 address joins (None: none).
    mc_group: str | None = _setting("PYRO_NS_MC_GROUP", MC_GROUP, DEFAULT_MC_GROUP)
    #: The interface it joins on (None: the one holding the node's address, or the
    #: system's choice for a node on every interface).
    mc_interface: str | None = _setting("PYRO_NS_MC_INTERFACE", INTERFACE, None)
    #: Where the Prometheus metrics are served (``--metrics``; None: not served).
    metrics: str | None = _setting("PYRO_NS_METRICS", LISTEN_ADDRESS, None)
    #: Run the discovery responder (``-x`` turns it off).
    responder: bool = _setting(None, BOOLEAN, True)
    #: Before answering, look for a name server already answering on the broadcast
    #: port (``-r`` turns it off).
    look_for_others: bool = _setting(None, BOOLEAN, True)
    #: Start even when another name server answers there (``-m``).
    allow_multiple: bool = _setting(None, BOOLEAN, False)
    #: The secret the twin must prove on the peer link (default: ``identification``).
    pair_secret: str | None = _setting("PYRO_NS_PAIR_SECRET", OPTIONAL_TEXT, None, secret=True)
    #: Who may ``shutdown``, ``resync`` and ``load`` (``--admin-ident``; None: any client).
    admin_identification: str | None = _setting(
        "PYRO_NS_ADMIN_IDENTIFICATION", OPTIONAL_TEXT, None, secret=True
    )
    #: Only these networks may connect (``--allow``; empty: every address).
    allow: tuple[str, ...] = _setting("PYRO_NS_ALLOW", NETWORKS, ())
    #: Only these networks may act as the twin (``--allow-twin``; empty: any address
    #: that proves the pair secret).
    allow_twin: tuple[str, ...] = _setting("PYRO_NS_ALLOW_TWIN", NETWORKS, ())
    #: The ``-s`` security plugin: a module name or a ``.py`` file (None: none).
    security_plugin: str | None = _setting("PYRO_NS_SECURITY_PLUGIN", OPTIONAL_TEXT, None)
    #: How far ahead of this node's wall clock a stamp from the twin may be (seconds).
    max_clock_skew: float = _setting("PYRO_NS_MAX_CLOCK_SKEW", TIMEOUT, 60.0)
    #: How the ``pairns`` command writes its log: ``human`` lines or ``json`` objects.
    log_format: str = _setting("PYRO_NS_LOG_FORMAT", choice(*LOG_FORMATS), "human")
    #: The file the ``pairns`` command appends its log to (None: stderr).
    log_file: str | None = _setting("PYRO_NS_LOG_FILE", OPTIONAL_TEXT, None)
    #: The node's TLS certificate (PEM; ``--tls-cert``): with it the node speaks TLS
    #: only, its URI is ``PYROSSL://``, and its twin link is TLS (see ``pairns.tls``).
    tls_cert: str | None = _setting("PYRO_NS_TLS_CERT", OPTIONAL_TEXT, None)
    #: Its private key (PEM; ``--tls-key``; None: the key is in the certificate file).
    tls_key: str | None = _setting("PYRO_NS_TLS_KEY", OPTIONAL_TEXT, None)
    #: A CA certificate (PEM; ``--tls-ca``): clients and the twin must present a
    #: certificate it signed (mutual TLS), and the twin's is checked against it.
    tls_ca: str | None = _setting("PYRO_NS_TLS_CA", OPTIONAL_TEXT, None)
    #: Where each value that is not a default came from (field name -> origin), for
    #: error messages; not part of the configuration's value.
    origins: Mapping[str, Origin] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    def origin_of(self, field: str) -> Origin:
        """Where the value of *field* came from.

        A field with no recorded origin holds its default or was set by the program
        that built this :class:`Config`.
        """
        origin = self.origins.get(field)
        if origin is not None:
            return origin
        attribute = _FIELDS[field]
        if getattr(self, field) == attribute.default:
            return Origin(attribute.metadata[_KEY] or field, "the built-in default")
        return Origin(field, "the program's Config")

    @property
    def effective_pair_secret(self) -> str | None:
        """What the twin proves: the pair secret, else the identification, else None."""
        return self.pair_secret if self.pair_secret is not None else self.identification

    @property
    def twin_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the twin, or None for a single node."""
        if self.role == 0 or not self.twin:
            return None
        default = self.ns2_port if self.role == 1 else self.port
        return parse_address(self.twin, default)

    @property
    def responder_places(self) -> tuple[ResponderPlace, ...]:
        """Where the discovery responders bind (none with ``-x``).

        ``-c`` (``bc_addr``) names the one place: an IPv4 address is bound (and
        broadcast to by the start-up check), an IPv6 multicast address is joined as the
        group, another IPv6 address is bound. Without it, a node listening on loopback
        only runs none (a request from another host cannot reach it, and its URI would
        be useless there); a node on an IPv6 address answers on ``::`` and joins
        :attr:`mc_group`; one on every interface (``""``, both families) does both; any
        other answers IPv4 broadcasts on every interface.
        """
        if not self.responder:
            return ()
        port = self.bc_port
        if self.bc_addr:
            if ":" not in self.bc_addr:
                return (ResponderPlace(self.bc_addr, port),)
            if is_ipv6_multicast(self.bc_addr):
                return (ResponderPlace("::", port, self.bc_addr),)
            return (ResponderPlace(self.bc_addr, port),)
        if is_loopback(self.host):
            return ()
        ipv6 = ResponderPlace("::", port, self.mc_group)
        if self.host == "":
            return ResponderPlace("", port), ipv6
        if ":" in self.host:
            return (ipv6,)
        return (ResponderPlace("", port),)

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the metrics endpoint listens on, or None."""
        if not self.metrics:
            return None
        return _parse_listen_address(self.metrics)

    @property
    def uri_path(self) -> Path:
        """Where the node writes its URI (``PYRO_NS_URIFILE``)."""
        if self.uri_file:
            return Path(self.uri_file)
        return Path(self.storage) / "Pyro_NS_URI"

    @property
    def database_path(self) -> Path:
        """The database directory (``-d``; default ``$PYRO_STORAGE/Pyro_NS_database``)."""
        if self.database:
            return Path(self.database)
        return Path(self.storage) / "Pyro_NS_database"


def is_ipv6_multicast(host: str) -> bool:
    """Whether *host* is an IPv6 multicast address (``ff00::/8``)."""
    try:
        return ipaddress.IPv6Address(host.strip("[]")).is_multicast
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether *host* (a listening host) is a loopback name or address."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_FIELDS: Final = {f.name: f for f in attrs.fields(Config) if _KIND in f.metadata}

#: Pyro-style setting name -> :class:`Config` field, for every setting a TOML file or
#: the environment may set.
SETTINGS: Final = {f.metadata[_KEY]: name for name, f in _FIELDS.items() if f.metadata[_KEY]}


def _kind(field: str) -> Kind:
    kind: Kind = _FIELDS[field].metadata[_KIND]
    return kind


def _secret(field: str) -> bool:
    return bool(_FIELDS[field].metadata[_SECRET])


def read_flag(field: str, text: str, flag: str) -> Any:
    """The value of :class:`Config` *field* given as *text* by the command-line *flag*.

    Raises :class:`ConfigError` naming *flag* and what the setting accepts.
    """
    return _kind(field).read(text, Origin.flag(flag), secret=_secret(field))


def _apply(config: Config, changes: Mapping[str, tuple[Any, Origin]]) -> Config:
    """*config* with each field in *changes* set to its value, remembering the origin."""
    if not changes:
        return config
    origins = {**config.origins, **{field: origin for field, (_, origin) in changes.items()}}
    values = {field: value for field, (value, _) in changes.items()}
    return attrs.evolve(config, origins=origins, **values)


def from_toml(config: Config, path: str | os.PathLike[str]) -> Config:
    """Apply a TOML file whose keys are the ``PYRO_*`` setting names."""
    import tomli  # only a node with a config file pays for the import

    try:
        with open(path, "rb") as f:
            data = tomli.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    changes: dict[str, tuple[Any, Origin]] = {}
    for key, value in data.items():
        field = SETTINGS.get(key)
        if field is None:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        origin = Origin.file(key, path)
        changes[field] = (_kind(field).check(value, origin, secret=_secret(field)), origin)
    return _apply(config, changes)


def from_env(config: Config, env: Mapping[str, str]) -> Config:
    """Apply the ``PYRO_*`` environment variables that are set."""
    changes: dict[str, tuple[Any, Origin]] = {}
    for key, field in SETTINGS.items():
        if key in env:
            origin = Origin.environment(key)
            changes[field] = (_kind(field).read(env[key], origin, secret=_secret(field)), origin)
    return _apply(config, changes)


def load_config(
    file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """Build a :class:`Config`: defaults < *file* < *env* (default ``os.environ``) < *overrides*.

    *overrides* maps :class:`Config` field names to values (what command-line flags set);
    *flags* names the flag that set each of them, for error messages.
    """
    config = Config()
    if file is not None:
        config = from_toml(config, file)
    config = from_env(config, os.environ if env is None else env)
    if overrides:
        named = flags or {}
        config = _apply(
            config,
            {
                field: (value, Origin.flag(named.get(field, field)))
                for field, value in overrides.items()
            },
        )
    return config


def resolve_pairing(
    config: Config, *, listen_port: int | None = None, listen_flag: str = "-p"
) -> Config:
    """Fill in a paired node's own port and its twin's address (Pyro 3's rule).

    * ``-1``: listens on ``-p``, else ``PYRO_NS_PORT`` (9090); without an address its
      twin is ``PYRO_NS2_HOSTNAME`` (default: its own host) ``:PYRO_NS2_PORT`` (9091).
    * ``-2``: listens on ``-p``, else ``PYRO_NS2_PORT`` (9091) - ``PYRO_NS_PORT`` names
      where the *first* node serves; without an address its twin is
      ``PYRO_NS_HOSTNAME:PYRO_NS_PORT`` (defaults: its own host, 9090).
    * An address after ``-1``/``-2``, else ``PYRO_NS_TWIN``, replaces those defaults; one
      without a port gets the default port above.

    *config* holds ``PYRO_NS_PORT`` (defaults < TOML < environment) as ``port``;
    *listen_port* is ``-p`` (spelled *listen_flag*) if it was given. A single node just
    gets ``-p``.
    """
    changes: dict[str, tuple[Any, Origin]] = {}
    if listen_port is not None:
        changes["port"] = (listen_port, Origin.flag(listen_flag))
    if config.role == 2:
        # The second node answers discovery on PYRO_NS2_BC_PORT/ADDR unless -b/-c said.
        for own, second in (("bc_port", "ns2_bc_port"), ("bc_addr", "ns2_bc_addr")):
            if config.origin_of(own).source != COMMAND_LINE:
                changes[own] = (getattr(config, second), config.origin_of(second))
    if config.role == 0:
        if config.twin:
            origin = config.origin_of("twin")
            raise ConfigError(
                f"{origin.label} names a twin but the node has no role: set PYRO_NS_ROLE "
                f"to 1 or 2, or start it with -1 or -2 (from {origin.source})"
            )
        return _apply(config, changes)
    own_host = config.host if config.host not in WILDCARD_HOSTS else "127.0.0.1"
    if config.role == 1:
        default_host, default_field = config.ns2_host or own_host, "ns2_port"
    else:
        if listen_port is None:
            changes["port"] = (config.ns2_port, config.origin_of("ns2_port"))
        default_host, default_field = own_host, "port"
    default_port = getattr(config, default_field)
    if config.twin:
        try:
            host, twin_port = parse_address(config.twin, default_port)
        except ConfigError as exc:
            origin = config.origin_of("twin")
            raise ConfigError(f"{origin.label}: {exc} (from {origin.source})") from None
    else:
        host, twin_port = default_host, default_port
    if not CONNECT_PORT.accepts(twin_port):
        # 0 ("any free port") is fine to listen on, but the twin's port must be real.
        origin = config.origin_of(default_field)
        raise CONNECT_PORT.error(
            twin_port, Origin(f"{origin.label} (the twin's port)", origin.source)
        )
    shown = f"[{host}]" if ":" in host else host
    changes["twin"] = (f"{shown}:{twin_port}", config.origin_of("twin"))
    return _apply(config, changes)
