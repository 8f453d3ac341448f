"""Pyro URIs as frozen values: parse once at the edge, pass :class:`URI` around inside.

Accepted forms (the protocol is case-insensitive on input, upper-case in the canonical
form; surrounding whitespace is ignored, as Pyro 3 did when reading a URI file)::

    PYRO://host[:port]/objectid           PYROSSL://host[:port]/objectid
    PYROLOC://host[:port]/objectname      PYROLOCSSL://host[:port]/objectname
    PYRONAME://[host[:port]/]name

IPv6 hosts are written in brackets (``PYRO://[::1]:7766/...``). Host names are
case-insensitive and kept in lower case; IPv6 addresses in their compressed form. A port
left out means the default one (:data:`DEFAULT_PYRO_PORT` for daemons,
:data:`DEFAULT_NS_PORT` for ``PYRONAME``); ``str(uri)`` leaves it out again.

Malformed input raises :class:`~pairns.errors.URIError` with a message saying what is
wrong; nothing else ever escapes :meth:`URI.from_string`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re

import attrs

from pairns.errors import URIError

__all__ = [
    "DEFAULT_NS_PORT",
    "DEFAULT_PYRO_PORT",
    "MAX_URI_LENGTH",
    "PROTOCOLS",
    "URI",
    "WILDCARD_HOSTS",
    "is_canonical",
    "new_object_id",
]

#: Pyro 3's ``PYRO_PORT``: where a daemon listens unless told otherwise.
DEFAULT_PYRO_PORT = 7766
#: Pyro 3's ``PYRO_NS_PORT``: where the name server listens unless told otherwise.
DEFAULT_NS_PORT = 9090

#: Listening hosts that mean "every interface": a socket binds to them, but a URI
#: handed to clients names a host they can reach instead.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

#: Every protocol a URI may name.
PROTOCOLS = frozenset({"PYRO", "PYROSSL", "PYRONAME", "PYROLOC", "PYROLOCSSL"})
_SSL = frozenset({"PYROSSL", "PYROLOCSSL"})

#: Longest URI text accepted. A URI is a host, a port and a name or 32-digit id, so
#: 2048 characters is generous, while a client still cannot store a megabyte as a URI.
MAX_URI_LENGTH = 2048

# Object ids and names: printable ASCII without the space (Pyro 3 accepted "\S*").
_PATH_RE = re.compile(r"[!-~]+", re.ASCII)
# A DNS name or an IPv4 address: letters, digits, "-", "_" and dots (no empty labels).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_MAX_HOST_LENGTH = 253
_SPACE_RE = re.compile(r"\s")


def _normalise_protocol(value: object) -> str:
    if not isinstance(value, str):
        raise URIError(f"protocol must be a string, not {type(value).__name__}")
    upper = value.upper()
    if upper not in PROTOCOLS:
        expected = ", ".join(sorted(PROTOCOLS))
        raise URIError(f"unknown protocol {value!r} (expected one of {expected})")
    return upper


def _normalise_host(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise URIError(f"host must be a string, not {type(value).__name__}")
    if not value:
        raise URIError("empty host")
    bracketed = value.startswith("[") and value.endswith("]")
    if bracketed:
        value = value[1:-1]
    if bracketed or ":" in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            raise URIError(f"invalid IPv6 address {value!r}") from None
    if len(value) > _MAX_HOST_LENGTH or _HOSTNAME_RE.fullmatch(value) is None:
        raise URIError(f"invalid host {value!r}")
    return value.lower()


def _check_port(instance: URI, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise URIError(f"port must be an integer, not {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise URIError(f"port {value} out of range 1..65535")


def _check_path(instance: URI, attribute: attrs.Attribute[str], value: object) -> None:
    what = "name" if instance.protocol in ("PYRONAME", "PYROLOC", "PYROLOCSSL") else "object id"
    if not isinstance(value, str):
        raise URIError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise URIError(f"empty {what}")
    if _PATH_RE.fullmatch(value) is None:
        raise URIError(f"invalid character in {what} {value!r} (printable ASCII only, no spaces)")


@attrs.frozen(slots=True)
class URI:
    """A parsed Pyro URI.

    ``path`` is the object id for ``PYRO``/``PYROSSL`` and the object or name server
    name for the others; ``host`` is ``None`` only for a ``PYRONAME`` URI that leaves
    the name server to be located; ``port`` is ``None`` when the default applies.
    Construction validates every field and raises :class:`URIError`.
    """

    protocol: str = attrs.field(converter=_normalise_protocol)
    host: str | None = attrs.field(converter=_normalise_host)
    port: int | None = attrs.field(validator=_check_port)
    path: str = attrs.field(validator=_check_path)

    def __attrs_post_init__(self) -> None:
        if self.host is None and self.protocol != "PYRONAME":
            raise URIError(f"a {self.protocol} URI needs a host")
        if self.host is None and self.port is not None:
            raise URIError("a port needs a host")
        if self.host is None and "/" in self.path and not self.path.startswith(":"):
            # "PYRONAME://a/b" reads as host "a", name "b": only a host can precede it.
            raise URIError(f"relative name {self.path!r} with '/' needs a host in front")

    @classmethod
    def pyro(cls, host: str, port: int | None, objectid: str, *, ssl: bool = False) -> URI:
        """The ``PYRO`` (or ``PYROSSL``) URI of object *objectid* on the daemon at host:port."""
        return cls("PYROSSL" if ssl else "PYRO", host, port, objectid)

    @classmethod
    def from_string(cls, text: object) -> URI:
        """Parse *text* (a :class:`URI` is returned as it is); raises :class:`URIError`."""
        if isinstance(text, URI):
            return text
        if not isinstance(text, str):
            raise URIError(f"a URI must be a string, not {type(text).__name__}")
        if len(text) > MAX_URI_LENGTH:
            raise URIError(f"URI too long ({len(text)} characters, at most {MAX_URI_LENGTH})")
        text = text.strip()
        if not text:
            raise URIError("empty URI")
        if _SPACE_RE.search(text) is not None:
            raise URIError(f"whitespace inside URI {text!r}")
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise URIError(f'missing "://" in URI {text!r}')
        protocol = _normalise_protocol(scheme)
        if protocol == "PYRONAME":
            if rest.startswith(":") or "/" not in rest:
                # ":Test.obj" (absolute) or "obj" (relative): no name server address given.
                return cls(protocol, None, None, rest)
            hostport, _, path = rest.partition("/")
        else:
            hostport, sep, path = rest.partition("/")
            if not sep:
                what = "name" if "LOC" in protocol else "object id"
                raise URIError(f'missing "/" before the {what} in URI {text!r}')
        host, port = _split_hostport(hostport)
        return cls(protocol, host, port, path)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` with the default port applied.

        Raises :class:`URIError` for a ``PYRONAME`` URI without a host: that name
        server has to be located first.
        """
        if self.host is None:
            raise URIError(f"{self} names no host; locate the name server first")
        if self.port is not None:
            return self.host, self.port
        return self.host, DEFAULT_NS_PORT if self.protocol == "PYRONAME" else DEFAULT_PYRO_PORT

    @property
    def is_ssl(self) -> bool:
        """True for ``PYROSSL`` and ``PYROLOCSSL``."""
        return self.protocol in _SSL

    def __str__(self) -> str:
        if self.host is None:
            return f"{self.protocol}://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None:
            return f"{self.protocol}://{host}/{self.path}"
        return f"{self.protocol}://{host}:{self.port}/{self.path}"


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    if not hostport:
        raise URIError("empty host")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise URIError(f"missing ']' after IPv6 address in {hostport!r}")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise URIError(f"unexpected {rest!r} after IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        if hostport.count(":") > 1:
            raise URIError(f"IPv6 address {hostport!r} must be written in brackets")
        host, sep, port_text_ = hostport.partition(":")
        port_text = port_text_ if sep else None
        if not host:
            raise URIError("empty host")
    if port_text is None:
        return host, None
    if not port_text:
        raise URIError("empty port")
    if not port_text.isascii() or not port_text.isdigit():
        raise URIError(f"port {port_text!r} is not a number")
    if len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise URIError(f"port {port_text} out of range 1..65535")
    return host, int(port_text)


@functools.lru_cache(maxsize=4096)
def _canonical_prefix(prefix: str) -> bool:
    """True if ``SCHEME://HOSTPORT/`` starts canonical URIs (checked once per value)."""
    try:
        return str(URI.from_string(prefix + "x"))[:-1] == prefix
    except URIError:
        return False


def is_canonical(text: object) -> bool:
    """True if *text* is a valid URI in the canonical form ``str(URI.from_string(text))``
    gives, the form a name server stores (what it accepts from its twin).

    About 0.4 µs for the usual ``PYRO://host:port/id``: the scheme and address part is
    parsed once per distinct value (a namespace holds a handful), not once per name.
    """
    if type(text) is not str or len(text) > MAX_URI_LENGTH:
        return False
    start = text.find("://")
    slash = text.find("/", start + 3) if start > 0 else -1
    if slash > start + 3 and not text.startswith("PYRONAME://"):
        path = text[slash + 1 :]
        return (
            path.isascii()
            and path.isprintable()
            and " " not in path
            and path != ""
            and _canonical_prefix(text[: slash + 1])
        )
    try:
        return str(URI.from_string(text)) == text
    except URIError:
        return False


def new_object_id() -> str:
    """A fresh random object id in Pyro 3's layout: 128 bits as four dash-separated
    groups of 8 hex digits (``"c0a8010a-0f2c4a6b-9d1e7700-5b3c2a19"``).

    Pyro 3 mixed the IP address, the pid and the time; 128 random bits from the OS are
    unique without leaking any of those.
    """
    h = os.urandom(16).hex()
    return f"{h[0:8]}-{h[8:16]}-{h[16:24]}-{h[24:32]}"
