"""The admin identification: who may ``shutdown``, ``resync`` and ``load`` a node.

With ``--admin-ident`` (``PYRO_NS_ADMIN_IDENTIFICATION``) set, an admin call must carry
a proof that the caller knows it, made the way the handshake proves ``-i``: the secret
never travels. On one connection::

    client -> node   adminChallenge()                    -> nonce (fresh, 32 random bytes)
    client -> node   resync(admin={"nonce": nonce, "proof": HMAC-SHA256(key,
                         "pairns-admin" 0 method 0 nonce)})

The node keeps the nonces it issued *on that connection* (at most
:data:`MAX_OUTSTANDING`, oldest dropped) and each is good for one call of the method the
proof names: a recorded call replayed on the same connection finds its nonce used, on
another connection finds no such nonce, and a proof for ``resync`` is no proof for
``shutdown``. A node without an admin identification asks for no proof (the
identification, if any, still gates every connection).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import MutableMapping
from typing import Any, Final

__all__ = [
    "ADMIN_METHODS",
    "MAX_OUTSTANDING",
    "AdminGate",
    "AdminRefused",
    "admin_proof",
]

#: The name server methods that need the admin identification when one is set.
ADMIN_METHODS: Final = frozenset({"shutdown", "resync", "load"})

#: Unused nonces one connection may hold (a client making admin calls from several
#: threads at once needs a few; a connection asking for more only drops its oldest).
MAX_OUTSTANDING: Final = 8

#: Bytes of randomness in a nonce (as much as the HMAC-SHA256 output).
NONCE_BYTES: Final = 32

_LABEL: Final = b"pairns-admin"

#: Key of the per-connection nonces (``ConnectionInfo.attributes``).
_NONCES_KEY: Final = "pairns.admin.nonces"


class AdminRefused(Exception):
    """An admin call without a valid proof; the message says what was missing."""


def admin_proof(key: bytes, nonce: str, method: str) -> str:
    """The proof for calling *method* once with *nonce*: hex HMAC-SHA256 under *key*."""
    message = _LABEL + b"\0" + method.encode("ascii") + b"\0" + nonce.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class AdminGate:
    """Issues nonces and checks admin proofs for one node (no IO).

    *key* is the admin identification as bytes (None: admin calls need no proof).
    """

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        #: Admin calls refused since the node started.
        self.refused = 0

    @property
    def required(self) -> bool:
        """True when admin calls must prove the admin identification."""
        return self.key is not None

    def challenge(self, attributes: MutableMapping[str, Any]) -> str:
        """A fresh nonce, remembered in the connection's *attributes*."""
        nonce = os.urandom(NONCE_BYTES).hex()
        nonces: list[str] = attributes.setdefault(_NONCES_KEY, [])
        nonces.append(nonce)
        del nonces[:-MAX_OUTSTANDING]
        return nonce

    def check(self, attributes: MutableMapping[str, Any] | None, method: str, admin: Any) -> None:
        """Raise :class:`AdminRefused` unless *admin* proves the key for *method* with
        a nonce issued on this connection (which is then used up)."""
        if self.key is None:
            return
        if admin is None:
            raise self._refuse("admin identification required")
        if (
            not isinstance(admin, dict)
            or not isinstance(admin.get("nonce"), str)
            or not isinstance(admin.get("proof"), str)
        ):
            raise self._refuse("malformed admin proof")
        nonce, proof = admin["nonce"], admin["proof"]
        nonces = attributes.get(_NONCES_KEY) if attributes is not None else None
        if not nonces or nonce not in nonces:
            raise self._refuse("admin proof for an unknown or used challenge (replayed?)")
        nonces.remove(nonce)  # single use, whatever the verdict
        try:
            expected = admin_proof(self.key, nonce, method)
        except UnicodeEncodeError:
            raise self._refuse("malformed admin proof") from None
        if not hmac.compare_digest(expected.encode(), proof.encode("utf-8", "replace")):
            raise self._refuse("incorrect admin identification")

    def _refuse(self, reason: str) -> AdminRefused:
        self.refused += 1
        return AdminRefused(reason)
