"""The daemon's connection guard seam: who may connect, and what they may call.

The daemon asks a :class:`ConnectionGuard` twice per connection (never per request):

* :meth:`ConnectionGuard.admit` when it accepts one, by address alone: refused
  connections get a ``Goodbye`` and are closed at once, before any handshake work;
  an admitted one may be limited to some objects (:attr:`Admission.only`: an address
  allowed only as the twin reaches only the peer endpoint);
* :meth:`ConnectionGuard.identified` after the identification handshake: a refusal
  reason turns the ``Welcome`` into ``Denied(reason)``.

The policy (address lists, the ``-s`` plugin) lives in :mod:`pairns.security.guard`;
``rpc`` knows only this protocol.
"""

from __future__ import annotations

from typing import Protocol

import attrs

__all__ = ["ADMIT", "Admission", "ConnectionGuard"]


@attrs.frozen
class Admission:
    """The verdict on a new connection's address."""

    #: Why it is refused (None: admitted).
    refusal: str | None = None
    #: The object ids it may call (None: every one).
    only: frozenset[str] | None = None


#: Admitted, to every object.
ADMIT = Admission()


class ConnectionGuard(Protocol):
    """What a daemon asks about each connection (see the module docs)."""

    def admit(self, peer: tuple[str, int] | None) -> Admission:
        """The verdict for a connection from *peer* (None: an address we cannot know)."""
        ...

    def identified(self, peer: tuple[str, int] | None, identified: bool) -> str | None:
        """After the handshake: a refusal reason, or None to welcome the client.
        *identified* says whether it proved the identification (``-i``)."""
        ...
