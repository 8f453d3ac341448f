"""The peer link as a state machine (a table, no IO), its positions and its backoff.

Rule (h11's): everything that decides which link state may follow which lives here.
The Trio adapter (:class:`pairns.replication.pairing.Pairing`) feeds :class:`LinkEvent`
values to :class:`LinkMachine` and reads :class:`LinkStatus` snapshots; it decides
nothing about states itself, and an event the table refuses is the caller's bug
(``LocalProtocolError``), never overridden::

    DOWN --dial/wait--> CONNECTING --transport up--> HANDSHAKING --hellos--> SYNCING
    SYNCING --caught up both ways--> PAIRED
    CONNECTING/HANDSHAKING/SYNCING/PAIRED --failure--> DOWN (reason)
    HANDSHAKING --refusal--> REFUSED (reason: identification mismatch, same role, ...)
    REFUSED --retry--> CONNECTING, or straight to HANDSHAKING: the refusal shows until
                                           a retry gets through (the operator may fix
                                           the other node)
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from pairns.errors import LocalProtocolError

__all__ = [
    "MAX_BACKOFF",
    "TRANSITIONS",
    "Backoff",
    "LinkEvent",
    "LinkMachine",
    "LinkState",
    "LinkStatus",
    "Positions",
]

#: Longest pause between two attempts to reach the twin (issue 12: at most 5 s).
MAX_BACKOFF: Final = 5.0


class LinkState(enum.Enum):
    """Where the peer link is."""

    DOWN = "down"
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"
    SYNCING = "syncing"
    PAIRED = "paired"
    REFUSED = "refused"


class LinkEvent(enum.Enum):
    """What happened to the link."""

    DIAL = "dial"  # start trying to reach (or wait for) the twin
    CONNECTED = "connected"  # an authenticated transport is up
    HELLO = "hello"  # hellos exchanged: positions agreed, resync starts
    CAUGHT_UP = "caught_up"  # both sides sent everything the other lacked
    FAILED = "failed"  # a send failed, the twin went silent, the transport closed
    REFUSED = "refused"  # the twin cannot be paired with (reason given)


_S = LinkState
_E = LinkEvent

#: ``TRANSITIONS[state][event] -> new state``; a missing key is not allowed.
TRANSITIONS: Final[dict[LinkState, dict[LinkEvent, LinkState]]] = {
    _S.DOWN: {_E.DIAL: _S.CONNECTING, _E.FAILED: _S.DOWN, _E.REFUSED: _S.REFUSED},
    _S.CONNECTING: {
        _E.CONNECTED: _S.HANDSHAKING,
        _E.FAILED: _S.DOWN,
        _E.REFUSED: _S.REFUSED,
        _E.DIAL: _S.CONNECTING,
    },
    _S.HANDSHAKING: {_E.HELLO: _S.SYNCING, _E.FAILED: _S.DOWN, _E.REFUSED: _S.REFUSED},
    _S.SYNCING: {_E.CAUGHT_UP: _S.PAIRED, _E.FAILED: _S.DOWN, _E.REFUSED: _S.REFUSED},
    _S.PAIRED: {_E.CAUGHT_UP: _S.PAIRED, _E.FAILED: _S.DOWN},
    _S.REFUSED: {
        _E.DIAL: _S.CONNECTING,
        _E.CONNECTED: _S.HANDSHAKING,  # a retry after a refusal got through
        _E.REFUSED: _S.REFUSED,
        _E.FAILED: _S.REFUSED,
    },
}


@attrs.frozen
class LinkStatus:
    """A snapshot of the link for ``status()``: state, reason and since when (clock)."""

    state: LinkState
    reason: str = ""
    since: float = 0.0

    @property
    def text(self) -> str:
        """``paired``, ``down: <reason>``, ``refused: <reason>``, ..."""
        return f"{self.state.value}: {self.reason}" if self.reason else self.state.value


@attrs.define(eq=False)
class LinkMachine:
    """The link's state; :meth:`handle` applies one event and returns the new status."""

    status: LinkStatus = attrs.field(factory=lambda: LinkStatus(LinkState.DOWN))

    @property
    def state(self) -> LinkState:
        """The current state."""
        return self.status.state

    def handle(self, event: LinkEvent, *, now: float, reason: str = "") -> LinkStatus:
        """Apply *event* at time *now*; raises ``LocalProtocolError`` if not allowed."""
        new = TRANSITIONS[self.status.state].get(event)
        if new is None:
            raise LocalProtocolError(
                f"link event {event.value} is not allowed in state {self.status.state.value}"
            )
        keep_reason = new in (LinkState.DOWN, LinkState.REFUSED)
        since = self.status.since if new is self.status.state else now
        self.status = LinkStatus(new, reason if keep_reason else "", since)
        return self.status


@attrs.define(eq=False)
class Positions:
    """Feed positions of one link, both ways (all cumulative).

    * ``acked`` - the highest seq of *my* feed the twin has durably applied.
    * ``sent`` - the highest seq of my feed sent on the current connection.
    * ``applied`` - the highest seq of the *twin's* feed I have durably applied.
    * ``received`` - the highest seq of the twin's feed merged (maybe not yet durable).
    """

    acked: int = 0
    sent: int = 0
    applied: int = 0
    received: int = 0

    def restart(self, acked: int, applied: int) -> None:
        """A new connection: resend from what the twin acked, expect from *applied*."""
        self.acked = acked
        self.sent = acked
        self.applied = applied
        self.received = applied

    def on_sent(self, upto: int) -> None:
        """A batch up to *upto* went out."""
        if upto < self.sent:
            raise LocalProtocolError(f"sent position going back: {self.sent} -> {upto}")
        self.sent = upto

    def on_ack(self, ack: int) -> bool:
        """The twin acknowledged *ack*; True if that moved ``acked`` forward.

        An ack beyond what was sent is the twin's bug (or a stale position): ignored.
        """
        if ack <= self.acked or ack > self.sent:
            return False
        self.acked = ack
        return True

    def check_batch(self, start: int) -> None:
        """Refuse a batch that does not continue what was received (gap or replay)."""
        if start != self.received:
            raise LocalProtocolError(
                f"batch starts at {start} but {self.received} was received: resync"
            )

    def on_received(self, upto: int) -> None:
        """A batch up to *upto* was merged."""
        self.received = upto

    def on_durable(self, upto: int) -> bool:
        """What was received up to *upto* is durable; True if ``applied`` moved."""
        if upto <= self.applied:
            return False
        self.applied = upto
        return True


@attrs.define(eq=False)
class Backoff:
    """Pauses between attempts: *initial*, doubling, never above *maximum* (5 s)."""

    initial: float = 0.1
    maximum: float = MAX_BACKOFF
    _next: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum <= MAX_BACKOFF:
            raise ValueError("backoff needs 0 < initial <= maximum <= 5 s")
        self._next = self.initial

    def next(self) -> float:
        """The pause before the next attempt (then the one after doubles)."""
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def reset(self) -> None:
        """A success: the next failure waits *initial* again."""
        self._next = self.initial
