"""What the async and the blocking proxy share: where to connect, and what errors say."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, Self

import attrs

from pairns.errors import (
    ConnectionClosedError,
    ConnectionDeniedError,
    PairnsError,
    TLSError,
    URIError,
    error_from_wire,
)
from pairns.rpc.dispatch import check_object_id
from pairns.uri import URI
from pairns.wire import CLIENT, Connection, ConnectionClosed, Denied, ErrorCode, ErrorReply, Goodbye

if TYPE_CHECKING:
    import ssl

__all__ = [
    "ProxyBase",
    "Target",
    "URILike",
    "check_timeout",
    "closed_error",
    "denied_error",
    "handshake_error",
    "tls_required_error",
    "identification_key",
    "reply_error",
    "unproven_error",
]


class URILike(Protocol):
    """What a proxy needs from a URI object (``pairns.uri.URI`` has it)."""

    @property
    def protocol(self) -> str:
        """``"PYRO"`` (other protocols must be resolved first)."""
        ...

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` with the default port applied."""
        ...

    @property
    def path(self) -> str:
        """The object id."""
        ...


@attrs.frozen
class Target:
    """The object a proxy talks to: ``host``, ``port`` and ``object_id``; ``tls`` when
    the connection is TLS (a ``PYROSSL`` URI, or a proxy given an ``ssl_context``)."""

    host: str
    port: int
    object_id: str
    tls: bool = False

    @classmethod
    def from_address(cls, host: str, port: int, object_id: str, *, tls: bool = False) -> Target:
        """Validate a ``(host, port, object id)`` triple."""
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string: {host!r}")
        if type(port) is not int or not 0 < port <= 65535:
            raise ValueError(f"port must be an integer in 1..65535: {port!r}")
        return cls(host, port, check_object_id(object_id), tls)

    @classmethod
    def from_uri(cls, uri: URILike | str) -> Target:
        """The target of a ``PYRO://`` or ``PYROSSL://host:port/objectid`` URI (a string
        or URI object).

        ``PYROLOC``/``PYRONAME`` URIs must be resolved first
        (``pairns.naming.resolve_uri``); raises :class:`URIError` for them.
        """
        if isinstance(uri, str):
            uri = URI.from_string(uri)
        protocol = getattr(uri, "protocol", "PYRO")
        if protocol not in ("PYRO", "PYROSSL"):
            raise URIError(
                f"a proxy needs a PYRO or PYROSSL URI, not {protocol}: resolve "
                "PYROLOC/PYROLOCSSL/PYRONAME URIs first (pairns.naming.resolve_uri)"
            )
        host, port = uri.address
        return cls.from_address(host, port, uri.path, tls=protocol == "PYROSSL")

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port

    @property
    def where(self) -> str:
        """``host:port`` for messages (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{'PYROSSL' if self.tls else 'PYRO'}://{self.where}/{self.object_id}"


def identification_key(identification: str | None) -> bytes | None:
    """The HMAC key for an identification passphrase (None: no identification)."""
    if identification is None:
        return None
    if not isinstance(identification, str):
        raise TypeError("identification must be a string or None")
    if not identification:
        raise ValueError("identification must not be empty (use None for no identification)")
    return identification.encode("utf-8")


def check_timeout(timeout: float | None) -> float | None:
    """A call timeout: None (wait for ever) or a positive, finite number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None: {timeout!r}")
    if not timeout > 0 or not math.isfinite(timeout):
        raise ValueError(f"timeout must be positive and finite: {timeout!r}")
    return float(timeout)


def closed_error(target: Target, event: Any = None) -> ConnectionClosedError:
    """The error for a connection the server closed (with a ``Goodbye`` or without)."""
    if isinstance(event, Goodbye):
        code = event.code
        name = code.name if isinstance(code, ErrorCode) else str(code)
        return ConnectionClosedError(
            f"{target.where} closed the connection: {event.message} ({name})"
        )
    return ConnectionClosedError(f"{target.where} closed the connection")


def denied_error(target: Target, reason: str) -> ConnectionDeniedError:
    """The error for a refused identification, with the server's reason."""
    return ConnectionDeniedError(f"{target.where} refused the connection: {reason}")


def tls_required_error(target: Target) -> TLSError:
    """The error for a plain connection to a node that speaks TLS only."""
    return TLSError(
        f"{target.where} requires TLS (its URI is PYROSSL://): connect with an ssl_context "
        "(pairns-ctl --tls-ca)"
    )


def handshake_error(target: Target, event: Any, *, first: bool = False) -> PairnsError:
    """The error for what the server sent instead of the handshake's next step:
    ``Denied``, a ``Goodbye`` (the TLS-only answer among them) or end of file.

    *first*: instead of the challenge, the first thing a server sends. A TLS server
    that closes then, right after the TLS handshake, refused the client's certificate
    (TLS 1.3 judges it after the client finished its part).
    """
    if isinstance(event, Denied):
        return denied_error(target, event.reason)
    if isinstance(event, Goodbye) and event.code == ErrorCode.TLS_REQUIRED:
        return tls_required_error(target)
    if first and target.tls and isinstance(event, ConnectionClosed):
        return TLSError(
            f"{target.where} closed the connection right after the TLS handshake: it "
            "requires a client certificate signed by its CA (mutual TLS) and did not get "
            "one it accepts"
        )
    return closed_error(target, event)


def unproven_error(target: Target) -> ConnectionDeniedError:
    """The error for a server that did not prove it knows the identification."""
    return ConnectionDeniedError(
        f"{target.where} did not prove that it knows the identification "
        "(a different identification, or not the server you meant)"
    )


def reply_error(event: ErrorReply) -> PairnsError:
    """The exception an error reply describes (see ``pairns.errors.error_from_wire``)."""
    return error_from_wire(event.error_type, event.message, event.args)


class ProxyBase:
    """What both proxies share: the constructor, ``for_address`` and the settings.

    A subclass sets up its transport in :meth:`_init_transport`.
    """

    _target: Target
    _key: bytes | None
    _timeout: float | None
    _max_frame_size: int | None
    _checksums: bool
    _oneways: frozenset[str]
    #: The TLS context of a TLS proxy (None: plain TCP).
    _ssl: ssl.SSLContext | None

    def __init__(
        self,
        uri: URILike | str,
        *,
        identification: str | None = None,
        timeout: float | None = 30.0,
        max_frame_size: int | None = None,
        checksums: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._init(
            Target.from_uri(uri), identification, timeout, max_frame_size, checksums, ssl_context
        )

    def _init(
        self,
        target: Target,
        identification: str | None,
        timeout: float | None,
        max_frame_size: int | None,
        checksums: bool,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if ssl_context is not None:
            if not hasattr(ssl_context, "wrap_socket"):
                raise TypeError(f"ssl_context must be an ssl.SSLContext: {ssl_context!r}")
            target = attrs.evolve(target, tls=True)
        elif target.tls:  # a PYROSSL URI without a context: the system's trust store
            from pairns.tls import client_context

            ssl_context = client_context()
        self._target = target
        self._ssl = ssl_context
        self._key = identification_key(identification)
        self._timeout = check_timeout(timeout)
        self._max_frame_size = max_frame_size
        self._checksums = checksums
        self._oneways = frozenset()
        self._init_transport()
        # Fail early on a bad max_frame_size rather than at the first call.
        Connection(CLIENT, max_frame_size=max_frame_size)

    def _init_transport(self) -> None:
        """Set up the subclass's connection state (no IO)."""
        raise NotImplementedError

    @classmethod
    def for_address(
        cls,
        host: str,
        port: int,
        object_id: str,
        *,
        identification: str | None = None,
        timeout: float | None = 30.0,
        max_frame_size: int | None = None,
        checksums: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Self:
        """A proxy for *object_id* served at *host*:*port* (over TLS with *ssl_context*)."""
        proxy = cls.__new__(cls)
        proxy._init(
            Target.from_address(host, port, object_id),
            identification,
            timeout,
            max_frame_size,
            checksums,
            ssl_context,
        )
        return proxy

    def _setOneway(self, methods: str | Iterable[str]) -> None:
        """From now on, calling these methods through this proxy's attributes
        (``proxy.log(...)``) sends oneway calls: no reply is awaited, nothing comes back
        (Pyro 3's call; methods marked ``@pairns.oneway`` on the server return at once
        without it)."""
        names = {methods} if isinstance(methods, str) else set(methods)
        if not all(isinstance(name, str) for name in names):
            raise TypeError("method names must be strings")
        self._oneways = self._oneways | names

    @property
    def target(self) -> Target:
        """Where this proxy connects, and to which object."""
        return self._target

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context connections are made with (None: plain TCP)."""
        return self._ssl

    @property
    def timeout(self) -> float | None:
        """The per-call timeout in seconds (None: none)."""
        return self._timeout
