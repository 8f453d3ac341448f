"""TLS for pairns: building contexts, and saying clearly why a TLS connection failed.

No Trio here (the blocking clients use it too) and no IO besides reading the
certificate files. The rules, in one place:

- A node with a certificate (``PYRO_NS_TLS_CERT``, ``PYRO_NS_TLS_KEY``) serves TLS only:
  its URI is ``PYROSSL://``. With ``PYRO_NS_TLS_CA`` it requires a client certificate
  signed by that CA from every client and from its twin (mutual TLS).
- Its twin link is TLS too: the node dials its twin with :func:`peer_context`, which
  verifies the twin's certificate and host name against ``PYRO_NS_TLS_CA`` (or, when no
  CA is given, the system's default trust store) and presents the node's own
  certificate as its client certificate.
- Clients pass an :class:`ssl.SSLContext` (``ssl_context=``); :func:`client_context`
  builds one from files, as ``pairns-ctl --tls-ca/--tls-cert/--tls-key`` does.

Errors: :func:`describe` turns what :mod:`ssl` raised into one sentence that says what
is wrong (expired certificate, unknown CA, wrong name, no client certificate, a peer
that does not speak TLS), for the client's exception and the server's log line alike.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Final

from pairns.errors import TLSError

if TYPE_CHECKING:
    from pairns.config import Config

__all__ = [
    "PLAIN_ANSWER_TO_TLS",
    "TLS_RECORD_HANDSHAKE",
    "NodeTLS",
    "TLSError",
    "client_context",
    "describe",
    "is_tls_error",
    "node_tls",
    "peer_context",
    "server_context",
]

#: The first byte of every TLS connection (a handshake record): what a plain port
#: sees from a TLS client, and what a TLS port expects.
TLS_RECORD_HANDSHAKE: Final = 0x16

#: Reasons OpenSSL gives when the peer answered a ClientHello with something that is
#: not TLS (a plain pairns node answers with its challenge frame, ``PN...``).
PLAIN_ANSWER_TO_TLS: Final = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "UNEXPECTED_RECORD",
        "RECORD_LENGTH_MISMATCH",
    }
)

# X509 verification results (openssl/x509_vfy.h) that deserve their own words.
_EXPIRED: Final = frozenset({10})  # X509_V_ERR_CERT_HAS_EXPIRED
_NOT_YET_VALID: Final = frozenset({9})  # X509_V_ERR_CERT_NOT_YET_VALID
_UNKNOWN_CA: Final = frozenset({2, 18, 19, 20, 21})
_NAME_MISMATCH: Final = frozenset({62, 64})  # hostname, IP address mismatch

# TLS alerts the peer sent us (reason ``..._ALERT_...``), by what they mean.
_ALERT_NO_CERT: Final = frozenset(
    {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"}
)
_ALERT_UNKNOWN_CA: Final = frozenset({"TLSV1_ALERT_UNKNOWN_CA"})
_ALERT_EXPIRED: Final = frozenset({"SSLV3_ALERT_CERTIFICATE_EXPIRED"})
_ALERT_BAD_CERT: Final = frozenset(
    {"SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"}
)


def is_tls_error(exc: BaseException | None) -> bool:
    """Whether *exc* (or what caused it) is an error of the :mod:`ssl` module that says
    something about TLS itself (a certificate, a protocol mismatch).

    A connection closed in the middle of the handshake with no alert is not one: the
    other side (or something in between) went away, and like any lost connection that
    is worth trying again, on the twin too.
    """
    cause = _ssl_cause(exc)
    return cause is not None and not isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError)


def _ssl_cause(exc: BaseException | None) -> BaseException | None:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def describe(exc: BaseException, where: str, *, server_side: bool = False) -> str:
    """One sentence saying why the TLS connection with *where* (``host:port``) failed.

    *exc* is what :mod:`ssl` raised, or an exception caused by it (Trio's
    ``BrokenResourceError``). On the client side (*server_side* False) *where* is the
    server; on the server side it is the client.
    """
    cause = _ssl_cause(exc) or exc
    them = f"the client {where}" if server_side else where
    ours = "this node's certificate" if server_side else "this client's certificate"
    theirs = f"the certificate of {'the client ' + where if server_side else where}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        detail = cause.verify_message or str(cause)
        if code in _EXPIRED:
            return f"{theirs} has expired ({detail})"
        if code in _NOT_YET_VALID:
            return f"{theirs} is not valid yet ({detail})"
        if code in _UNKNOWN_CA:
            trust = "--tls-ca" if server_side else "the CA of ssl_context (--tls-ca)"
            return f"{theirs} is not signed by a trusted CA: not by {trust} ({detail})"
        if code in _NAME_MISMATCH:
            return f"{theirs} is not for the name or address dialled ({detail})"
        return f"{theirs} was refused: {detail}"
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or ""
        if reason in PLAIN_ANSWER_TO_TLS:
            if server_side:
                return f"the client {where} does not speak TLS ({reason.lower()})"
            return (
                f"{where} does not speak TLS: it answered the TLS handshake in plain text "
                f"(a node without a certificate? use PYRO://, not PYROSSL://, and no "
                f"ssl_context) ({reason.lower()})"
            )
        if reason in _ALERT_NO_CERT or reason == "NO_CERTIFICATE_RETURNED":
            if server_side:
                return f"the client {where} presented no certificate (--tls-ca requires one)"
            return f"{where} requires a client certificate (mutual TLS): give ssl_context one"
        if reason in _ALERT_UNKNOWN_CA:
            return f"{them} does not trust {ours}: not signed by a CA it trusts ({reason.lower()})"
        if reason in _ALERT_EXPIRED:
            return f"{them} refused {ours}: expired"
        if reason in _ALERT_BAD_CERT:
            hint = " (not for the name it dialled?)" if server_side else ""
            return f"{them} refused {ours}{hint} ({reason.lower()})"
        if isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            if server_side:
                return (
                    f"the client {where} closed the connection during the TLS handshake "
                    "(it may not trust this node's certificate)"
                )
            return f"{where} closed the connection during the TLS handshake"
        return f"TLS with {where} failed: {cause}"
    return f"TLS with {where} failed: {cause or type(cause).__name__}"


def tls_error(exc: BaseException, where: str) -> TLSError:
    """The client-side :class:`~pairns.errors.TLSError` for *exc*."""
    return TLSError(describe(exc, where))


def server_context(cert: str, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """A server context: presents *cert* (+ *key*; None: the key is in *cert*'s file)
    and, with *ca*, requires a client certificate signed by it (mutual TLS).

    Raises ``OSError`` for a file that cannot be read, ``ssl.SSLError`` for contents
    that are not a certificate or key, or a key that does not match.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca is not None:
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    # No session tickets: pairns clients never resume (each connection lives long),
    # and a ticket arriving on an idle blocking connection only costs a read.
    ctx.num_tickets = 0
    return ctx


def client_context(
    ca: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context: trusts *ca* (None: the system's default trust store), checks
    the server's host name, and presents *cert* (+ *key*) when the server asks for a
    client certificate (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def peer_context(cert: str, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """What a node dials its twin with: :func:`client_context` presenting the node's own
    certificate, trusting *ca* (or the system's store when there is none)."""
    return client_context(ca, cert, key)


class NodeTLS:
    """A node's two TLS contexts: the one it serves with, the one it dials its twin with."""

    __slots__ = ("mutual", "peer", "server")

    def __init__(self, server: ssl.SSLContext, peer: ssl.SSLContext, *, mutual: bool) -> None:
        #: Clients and the twin connect with this (``Daemon(ssl_context=...)``).
        self.server = server
        #: The twin link dials with this.
        self.peer = peer
        #: True when a client certificate is required (``PYRO_NS_TLS_CA``).
        self.mutual = mutual

    @classmethod
    def from_files(cls, cert: str, key: str | None = None, ca: str | None = None) -> NodeTLS:
        """Both contexts from the node's files; errors as :func:`server_context`."""
        return cls(
            server_context(cert, key, ca), peer_context(cert, key, ca), mutual=ca is not None
        )


def check_readable(path: str | None, label: str) -> None:
    """Raise :class:`~pairns.config.ConfigError` naming *label* when the file at *path*
    cannot be read (None: nothing to check)."""
    from pairns.config import ConfigError

    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {path}: {exc.strerror or exc}") from None


def node_tls(config: Config) -> NodeTLS | None:
    """The node's TLS contexts from its ``PYRO_NS_TLS_*`` settings (None: no certificate).

    Raises :class:`~pairns.config.ConfigError` in one line naming the setting: a key or
    CA without a certificate, a file that cannot be read, contents that are not a
    certificate, or a key that does not match it.
    """
    from pairns.config import ConfigError

    cert, key, ca = config.tls_cert, config.tls_key, config.tls_ca

    def named(field: str) -> str:
        origin = config.origin_of(field)
        return f"{origin.label} (from {origin.source})"

    if cert is None:
        for field in ("tls_key", "tls_ca"):
            if getattr(config, field) is not None:
                raise ConfigError(
                    f"{named(field)} needs a certificate too: PYRO_NS_TLS_CERT (--tls-cert)"
                )
        return None
    for field, path in (("tls_cert", cert), ("tls_key", key), ("tls_ca", ca)):
        check_readable(path, named(field))
    try:
        server = server_context(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        field = "tls_key" if key is not None else "tls_cert"
        raise ConfigError(
            f"{named(field)}: not a PEM certificate with its matching private key "
            f"({cert}{', ' + key if key else ''}): {exc}"
        ) from None
    if ca is not None:
        try:
            server.load_verify_locations(cafile=ca)
            peer = peer_context(cert, key, ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"{named('tls_ca')}: not a PEM CA certificate ({ca}): {exc}"
            ) from None
        server.verify_mode = ssl.CERT_REQUIRED
    else:
        peer = peer_context(cert, key)
    return NodeTLS(server, peer, mutual=ca is not None)
