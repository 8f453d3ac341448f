"""Node configuration: built-in defaults < TOML file < ``PYRO_*`` environment < flags.

Every setting has one Pyro-style name (``PYRO_NS_PORT``), used alike as the TOML key and
as the environment variable, and one field on the frozen :class:`Config`. Layers are
applied with :func:`attrs.evolve`; each value is parsed and checked once, here, so the
rest of the node never sees a malformed setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli

from pairns import names
from pairns.errors import NamingError, PairnsError
from pairns.wire.limits import DEFAULT_MAX_QUEUED_REPLY_BYTES, MAX_MAX_QUEUED_REPLY_BYTES


class ConfigError(PairnsError):
    """A configuration value (file, environment or flag) is unusable; says which and why."""


def _check_port(inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name}: port must be 0..65535, not {value}")


def _check_positive(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"{attribute.name}: must be a positive number, not {value}")


def _check_non_negative(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ConfigError(f"{attribute.name}: must be zero or a positive number, not {value}")


def _check_queued_reply_bytes(inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or not 0 <= value <= MAX_MAX_QUEUED_REPLY_BYTES:
        raise ConfigError(
            f"{attribute.name}: must be an integer in 0..{MAX_MAX_QUEUED_REPLY_BYTES}, "
            f"not {value!r}"
        )


def _check_role(inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value not in (0, 1, 2):
        raise ConfigError(f"role must be 0 (single), 1 (-1) or 2 (-2), not {value!r}")


def _check_ack(inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ACK_MODES:
        raise ConfigError(f"PYRO_NS_ACK must be one of {', '.join(ACK_MODES)}, not {value!r}")


#: Acknowledgement modes: ``local`` (durable on the node that took the write, queued for
#: the twin) and ``twin`` (also applied by the twin, while it is connected).
ACK_MODES = ("local", "twin")


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


def _check_group(inst: Any, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        names.check_default_group(value)
    except NamingError as exc:
        raise ConfigError(f"PYRO_NS_DEFAULTGROUP: {exc}") from None


@attrs.frozen(kw_only=True)
class Config:
    """Everything one node needs to know; built by :func:`load_config`."""

    host: str = "localhost"
    port: int = attrs.field(default=9090, validator=_check_port)
    identification: str | None = attrs.field(default=None, repr=False)
    allow_shutdown: bool = True
    verbose: bool = False
    storage: str = "."
    uri_file: str | None = None
    default_group: str = attrs.field(default=names.DEFAULT_GROUP, validator=_check_group)
    persistent: bool = False
    database: str | None = None
    checksums: bool = False
    max_connections: int = attrs.field(default=10_000, validator=_check_positive)
    max_frame_size: int = attrs.field(default=1 << 20, validator=_check_positive)
    max_in_flight: int = attrs.field(default=128, validator=_check_positive)
    handshake_timeout: float = attrs.field(default=5.0, validator=_check_positive)
    idle_timeout: float = attrs.field(default=0.0, validator=_check_non_negative)
    #: Reply bytes one connection may leave unread before the node stops reading it.
    max_queued_reply_bytes: int = attrs.field(
        default=DEFAULT_MAX_QUEUED_REPLY_BYTES, validator=_check_queued_reply_bytes
    )
    #: Paired mode: 0 = single node, 1 = ``-1``, 2 = ``-2``.
    role: int = attrs.field(default=0, validator=_check_role)
    #: Where the twin serves (``host:port``); :func:`resolve_pairing` fills it in.
    twin: str | None = None
    ns2_host: str | None = None
    ns2_port: int = attrs.field(default=9091, validator=_check_port)
    ack: str = attrs.field(default="local", validator=_check_ack)
    peer_timeout: float = attrs.field(default=2.0, validator=_check_positive)
    #: The secret the twin must prove on the peer link (default: ``identification``).
    pair_secret: str | None = attrs.field(default=None, repr=False)
    #: How far ahead of this node's wall clock a stamp from the twin may be (seconds).
    max_clock_skew: float = attrs.field(default=60.0, validator=_check_positive)

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


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_optional_str(text: str) -> str | None:
    return text if text else None


#: Pyro-style setting name -> (Config field, parser for text values, expected TOML types).
SETTINGS: dict[str, tuple[str, Callable[[str], Any], tuple[type, ...]]] = {
    "PYRO_NS_HOSTNAME": ("host", str, (str,)),
    "PYRO_NS_PORT": ("port", int, (int,)),
    "PYRO_NS_IDENTIFICATION": ("identification", _parse_optional_str, (str,)),
    "PYRO_NS_ALLOW_SHUTDOWN": ("allow_shutdown", _parse_bool, (bool,)),
    "PYRO_STORAGE": ("storage", str, (str,)),
    "PYRO_NS_URIFILE": ("uri_file", _parse_optional_str, (str,)),
    "PYRO_NS_DEFAULTGROUP": ("default_group", str, (str,)),
    "PYRO_NS_PERSISTENT": ("persistent", _parse_bool, (bool,)),
    "PYRO_NS_DATABASE": ("database", _parse_optional_str, (str,)),
    "PYRO_CHECKSUM": ("checksums", _parse_bool, (bool, int)),
    "PYRO_MAXCONNECTIONS": ("max_connections", int, (int,)),
    "PYRO_MAX_FRAME_SIZE": ("max_frame_size", int, (int,)),
    "PYRO_MAX_IN_FLIGHT": ("max_in_flight", int, (int,)),
    "PYRO_HANDSHAKE_TIMEOUT": ("handshake_timeout", float, (int, float)),
    "PYRO_IDLE_TIMEOUT": ("idle_timeout", float, (int, float)),
    "PYRO_MAX_QUEUED_REPLY_BYTES": ("max_queued_reply_bytes", int, (int,)),
    "PYRO_NS2_HOSTNAME": ("ns2_host", _parse_optional_str, (str,)),
    "PYRO_NS2_PORT": ("ns2_port", int, (int,)),
    "PYRO_NS_ACK": ("ack", str, (str,)),
    "PYRO_NS_PEER_TIMEOUT": ("peer_timeout", float, (int, float)),
    "PYRO_NS_PAIR_SECRET": ("pair_secret", _parse_optional_str, (str,)),
    "PYRO_NS_MAX_CLOCK_SKEW": ("max_clock_skew", float, (int, float)),
}


def _evolve(config: Config, changes: dict[str, Any], where: str) -> Config:
    try:
        return attrs.evolve(config, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def from_toml(config: Config, path: str | os.PathLike[str]) -> Config:
    """Apply a TOML file whose keys are the ``PYRO_*`` setting names."""
    try:
        with open(path, "rb") as f:
            data = tomli.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomli.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in SETTINGS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        field, _, types = SETTINGS[key]
        if isinstance(value, bool) and bool not in types:
            raise ConfigError(f"config file {path}: {key} must be {types[0].__name__}")
        if not isinstance(value, types):
            raise ConfigError(
                f"config file {path}: {key} must be {types[0].__name__}, not {type(value).__name__}"
            )
        changes[field] = bool(value) if bool in types else value
    return _evolve(config, changes, f"config file {path}")


def from_env(config: Config, env: Mapping[str, str]) -> Config:
    """Apply the ``PYRO_*`` environment variables that are set."""
    changes: dict[str, Any] = {}
    for key, (field, parse, _) in SETTINGS.items():
        if key in env:
            try:
                changes[field] = parse(env[key])
            except ValueError as exc:
                raise ConfigError(f"environment variable {key}: {exc}") from None
    return _evolve(config, changes, "environment")


def load_config(
    file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a :class:`Config`: defaults < *file* < *env* (default ``os.environ``) < *overrides*.

    *overrides* maps :class:`Config` field names to values (what command-line flags set).
    """
    config = Config()
    if file is not None:
        config = from_toml(config, file)
    config = from_env(config, os.environ if env is None else env)
    if overrides:
        config = _evolve(config, dict(overrides), "command line")
    return config


def resolve_pairing(config: Config, *, listen_port: int | None = None) -> Config:
    """Fill in a paired node's own port and its twin's address (Pyro 3's rule).

    * ``-1``: listens on ``-p``, else ``PYRO_NS_PORT`` (9090); without an address its
      twin is ``PYRO_NS2_HOSTNAME`` (default: its own host) ``:PYRO_NS2_PORT`` (9091).
    * ``-2``: listens on ``-p``, else ``PYRO_NS2_PORT`` (9091) - ``PYRO_NS_PORT`` names
      where the *first* node serves; without an address its twin is
      ``PYRO_NS_HOSTNAME:PYRO_NS_PORT`` (defaults: its own host, 9090).
    * An address without a port gets the default port above.

    *config* holds ``PYRO_NS_PORT`` (defaults < TOML < environment) as ``port``;
    *listen_port* is ``-p`` if it was given. A single node just gets ``-p``.
    """
    if config.role == 0:
        if listen_port is None:
            return config
        return _evolve(config, {"port": listen_port}, "command line")
    own_host = config.host if config.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if config.role == 1:
        port = config.port if listen_port is None else listen_port
        default_host, default_port = config.ns2_host or own_host, config.ns2_port
    else:
        port = config.ns2_port if listen_port is None else listen_port
        default_host, default_port = own_host, config.port
    if config.twin:
        host, twin_port = parse_address(config.twin, default_port)
    else:
        host, twin_port = default_host, default_port
    shown = f"[{host}]" if ":" in host else host
    return _evolve(config, {"port": port, "twin": f"{shown}:{twin_port}"}, "pairing")
