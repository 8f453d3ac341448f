"""The identification handshake: HMAC-SHA256 challenge/response in both directions.

::

    server → client   Challenge(nonce_s, auth_required, server_name)
    client → server   Response(nonce_c, mac_c = HMAC(key, "pairns-client" + nonce_s + nonce_c))
    server → client   Welcome(mac_s = HMAC(key, "pairns-server" + nonce_c + nonce_s))
                      or Denied(reason)

``key`` is the identification (the ``-i`` passphrase) as bytes; it never travels. The
client proves it knows the key, and the server proves it too, so a node that dials its
twin knows it reached the real twin. Both nonces are fresh for every connection, so a
recorded proof is worthless on another connection. Every comparison uses
:func:`hmac.compare_digest`.

A server without identification accepts every client (and sends no proof); a client
with an identification that meets such a server goes on, and can see that the server is
unauthenticated (:attr:`ClientHandshake.server_authenticated` is False).

These objects hold the nonces and do the arithmetic; :class:`pairns.wire.Connection`
decides when they are used. Randomness is injected so tests are deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire.events import Challenge, Denied, Response, Welcome
from pairns.wire.limits import NONCE_SIZE, ErrorCode

__all__ = [
    "ClientHandshake",
    "Randomness",
    "ServerHandshake",
    "client_proof",
    "server_proof",
]

#: A source of random bytes, such as :func:`os.urandom`.
Randomness = Callable[[int], bytes]

_CLIENT_LABEL = b"pairns-client"
_SERVER_LABEL = b"pairns-server"

#: Reasons a server gives in ``Denied``.
REASON_REQUIRED = "identification required"
REASON_INCORRECT = "incorrect identification"


def client_proof(key: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The client's MAC: ``HMAC-SHA256(key, "pairns-client" + nonce_s + nonce_c)``."""
    return hmac.new(key, _CLIENT_LABEL + server_nonce + client_nonce, hashlib.sha256).digest()


def server_proof(key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """The server's MAC: ``HMAC-SHA256(key, "pairns-server" + nonce_c + nonce_s)``."""
    return hmac.new(key, _SERVER_LABEL + client_nonce + server_nonce, hashlib.sha256).digest()


def _nonce(randomness: Randomness) -> bytes:
    nonce = randomness(NONCE_SIZE)
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise LocalProtocolError(f"the randomness source must give {NONCE_SIZE} bytes")
    return nonce


class ServerHandshake:
    """The server's half: issue a challenge, judge the response, prove itself."""

    __slots__ = (
        "_client_nonce",
        "_key",
        "_mac_missing",
        "_max_frame_size",
        "_max_in_flight",
        "_nonce",
        "_randomness",
        "client_authenticated",
        "client_verified",
        "peer_max_frame_size",
        "server_name",
    )

    def __init__(
        self,
        key: bytes | None,
        randomness: Randomness,
        *,
        server_name: str,
        max_frame_size: int,
        max_in_flight: int,
    ) -> None:
        self._key = key
        self._randomness = randomness
        #: The name announced in the challenge.
        self.server_name = server_name
        self._max_frame_size = max_frame_size
        self._max_in_flight = max_in_flight
        self._nonce: bytes | None = None
        self._client_nonce: bytes | None = None
        self._mac_missing = True
        #: True once a response was judged acceptable (always, without identification).
        self.client_verified = False
        #: True when the client proved it knows the identification.
        self.client_authenticated = False
        #: The largest reply body the client accepts (from its response).
        self.peer_max_frame_size: int | None = None

    def challenge(self) -> Challenge:
        """The challenge to send (a fresh nonce; only one per connection)."""
        if self._nonce is not None:
            raise LocalProtocolError("the challenge was already made for this connection")
        self._nonce = _nonce(self._randomness)
        return Challenge(self._nonce, self._key is not None, self.server_name)

    def check_challenge(self, event: Challenge) -> None:
        """Refuse to send a challenge this handshake did not make."""
        if self._nonce is None or event.nonce != self._nonce:
            raise LocalProtocolError("send the Challenge made by Connection.challenge()")
        if event.auth_required != (self._key is not None):
            raise LocalProtocolError("the Challenge must say whether identification is needed")

    def receive_response(self, event: Response) -> None:
        """Judge the client's response."""
        assert self._nonce is not None
        self._client_nonce = event.nonce
        self._mac_missing = event.mac is None
        self.peer_max_frame_size = event.max_frame_size
        if self._key is None:
            self.client_verified = True
        elif event.mac is not None:
            expected = client_proof(self._key, self._nonce, event.nonce)
            self.client_verified = self.client_authenticated = hmac.compare_digest(
                expected, event.mac
            )

    def verdict(self) -> Welcome | Denied:
        """``Welcome`` (with the server's proof) for a good response, else ``Denied``."""
        if self._client_nonce is None:
            raise LocalProtocolError("no Response was received yet")
        if not self.client_verified:
            return Denied(REASON_REQUIRED if self._mac_missing else REASON_INCORRECT)
        return Welcome(self._proof(), self._max_frame_size, self._max_in_flight)

    def check_welcome(self, event: Welcome) -> None:
        """Refuse to welcome a client that did not identify itself, or with a wrong proof."""
        if not self.client_verified:
            raise LocalProtocolError("cannot welcome a client that failed identification")
        mac = self._proof()
        if (mac is None) != (event.mac is None) or (
            mac is not None and event.mac is not None and not hmac.compare_digest(mac, event.mac)
        ):
            raise LocalProtocolError("send the Welcome made by Connection.verdict()")

    def _proof(self) -> bytes | None:
        if self._key is None:
            return None
        assert self._nonce is not None and self._client_nonce is not None
        return server_proof(self._key, self._client_nonce, self._nonce)


class ClientHandshake:
    """The client's half: answer the challenge, check the server's proof."""

    __slots__ = (
        "_challenge",
        "_key",
        "_max_frame_size",
        "_nonce",
        "_randomness",
        "peer_max_frame_size",
        "peer_max_in_flight",
        "server_authenticated",
        "server_name",
    )

    def __init__(self, key: bytes | None, randomness: Randomness, *, max_frame_size: int) -> None:
        self._key = key
        self._randomness = randomness
        self._max_frame_size = max_frame_size
        self._challenge: Challenge | None = None
        self._nonce: bytes | None = None
        #: None until the Welcome; then True when the server proved it knows the
        #: identification, False when it has none (or we have none to check with).
        self.server_authenticated: bool | None = None
        #: The name the server announced in its challenge.
        self.server_name: str | None = None
        #: The server's request limits, from its Welcome.
        self.peer_max_frame_size: int | None = None
        self.peer_max_in_flight: int | None = None

    def receive_challenge(self, event: Challenge) -> None:
        """Remember the server's challenge."""
        self._challenge = event
        self.server_name = event.server_name

    def response(self) -> Response:
        """The response to send (a fresh nonce; the proof when both sides use identification)."""
        if self._challenge is None:
            raise LocalProtocolError("no Challenge was received yet")
        if self._nonce is not None:
            raise LocalProtocolError("the response was already made for this connection")
        self._nonce = _nonce(self._randomness)
        mac = None
        if self._key is not None and self._challenge.auth_required:
            mac = client_proof(self._key, self._challenge.nonce, self._nonce)
        return Response(self._nonce, mac, self._max_frame_size)

    def check_response(self, event: Response) -> None:
        """Refuse to send a response this handshake did not make."""
        if self._nonce is None or event.nonce != self._nonce:
            raise LocalProtocolError("send the Response made by Connection.response()")

    def receive_welcome(self, event: Welcome) -> None:
        """Check the server's proof; raise :class:`RemoteProtocolError` if it is wrong."""
        assert self._challenge is not None and self._nonce is not None
        if self._key is not None and self._challenge.auth_required:
            expected = server_proof(self._key, self._nonce, self._challenge.nonce)
            if event.mac is None or not hmac.compare_digest(expected, event.mac):
                raise RemoteProtocolError(
                    "the server did not prove that it knows the identification",
                    ErrorCode.IDENTIFICATION_FAILED,
                )
            self.server_authenticated = True
        else:
            self.server_authenticated = False
        self.peer_max_frame_size = event.max_frame_size
        self.peer_max_in_flight = event.max_in_flight
