"""Proof that the other end of the peer link is the twin (sans-IO: nonces and MACs).

The rpc handshake (``-i``) tells a node that a client knows the identification, which
every client of an identified pair knows too. The peer object needs more: only the twin
may push changes into the namespace. So the link runs its own challenge/response over
the pair's secret (``PYRO_NS_PAIR_SECRET``, by default the identification)::

    dialler -> node   challenge(nonce_c, has_secret)
    node -> dialler   nonce_s, has_secret,
                      proof_s = HMAC(K, "pairns-twin-server" | role_s | nonce_c | nonce_s)
    dialler -> node   hello(hello, proof_c)
                      proof_c = HMAC(K, "pairns-twin-client" | role_c | nonce_s | nonce_c)

Both nonces are fresh per connection and the labels and roles differ per direction,
so no proof can be replayed or reflected. Each side refuses a twin that has a secret
when it has none, or the reverse (``identification mismatch``), and a wrong proof. The
key never travels; comparisons use :func:`hmac.compare_digest`.

Without any secret there is nothing to prove: a node then accepts a twin only from its
configured twin address, and warns at start that anyone able to connect from there is
trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any, Final

__all__ = [
    "NONCE_BYTES",
    "client_proof",
    "new_nonce",
    "parse_challenge_answer",
    "parse_nonce",
    "parse_proof",
    "proofs_equal",
    "server_proof",
]

#: Random bytes per nonce (sent as hex).
NONCE_BYTES: Final = 32

_SERVER_LABEL: Final = b"pairns-twin-server"
_CLIENT_LABEL: Final = b"pairns-twin-client"
_HEX_NONCE = re.compile(f"[0-9a-f]{{{2 * NONCE_BYTES}}}")
_HEX_PROOF = re.compile("[0-9a-f]{64}")


def new_nonce() -> str:
    """A fresh nonce (hex)."""
    return os.urandom(NONCE_BYTES).hex()


def _mac(key: bytes, label: bytes, role: int, first: str, second: str) -> str:
    message = b"|".join((label, str(role).encode(), first.encode(), second.encode()))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def server_proof(key: bytes, role: int, client_nonce: str, server_nonce: str) -> str:
    """The answering node's proof (it has role *role*)."""
    return _mac(key, _SERVER_LABEL, role, client_nonce, server_nonce)


def client_proof(key: bytes, role: int, server_nonce: str, client_nonce: str) -> str:
    """The dialling node's proof (it has role *role*)."""
    return _mac(key, _CLIENT_LABEL, role, server_nonce, client_nonce)


def proofs_equal(expected: str, given: object) -> bool:
    """Constant-time comparison of a proof with what the other side sent."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def parse_nonce(value: Any) -> str:
    """A nonce as sent (raises ``ValueError``)."""
    if not isinstance(value, str) or _HEX_NONCE.fullmatch(value) is None:
        raise ValueError("invalid nonce")
    return value


def parse_proof(value: Any) -> str | None:
    """A proof as sent, or None (raises ``ValueError``)."""
    if value is None:
        return None
    if not isinstance(value, str) or _HEX_PROOF.fullmatch(value) is None:
        raise ValueError("invalid proof")
    return value


def parse_challenge_answer(value: Any) -> tuple[str, str | None, bool]:
    """``(nonce, proof, has_secret)`` from the answer to ``challenge`` (raises
    ``ValueError``)."""
    if not isinstance(value, dict):
        raise ValueError("invalid challenge answer")
    has_secret = value.get("has_secret")
    if not isinstance(has_secret, bool):
        raise ValueError("invalid challenge answer")
    return parse_nonce(value.get("nonce")), parse_proof(value.get("proof")), has_secret
