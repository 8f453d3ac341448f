"""The connection state machine, as a table.

Rule 1 (h11's): everything that decides which event may come next lives here, as data.
Rule 2: this file does not know which role *we* play. A transition is keyed by the role
of the side that *sends* the event; :class:`pairns.wire.Connection` looks up its own
role when it sends and the peer's role when it receives.

One conversation goes::

    AWAIT_CHALLENGE --server Challenge--> AWAIT_RESPONSE --client Response--> AWAIT_VERDICT
    AWAIT_VERDICT --server Welcome--> OPEN            (client may pipeline requests before)
    AWAIT_VERDICT --server Denied--> CLOSED
    OPEN: client Request/Oneway, server Reply/ErrorReply
    any state but CLOSED --either side's Goodbye--> CLOSED
    ERROR: only a Goodbye may still be sent (the side that found the error says why)

Correlation ids and in-flight counts are not states; the connection tracks them.
"""

from __future__ import annotations

import enum
from typing import Final

from pairns.wire.events import (
    Challenge,
    Denied,
    ErrorReply,
    Event,
    Goodbye,
    Oneway,
    Reply,
    Request,
    Response,
    Welcome,
)

__all__ = ["TRANSITIONS", "TURN", "Role", "State", "transition"]


class Role(enum.Enum):
    """Which end of the connection a side is."""

    CLIENT = "CLIENT"
    SERVER = "SERVER"


class State(enum.Enum):
    """Where the conversation is."""

    AWAIT_CHALLENGE = "AWAIT_CHALLENGE"
    AWAIT_RESPONSE = "AWAIT_RESPONSE"
    AWAIT_VERDICT = "AWAIT_VERDICT"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


CLIENT: Final = Role.CLIENT
SERVER: Final = Role.SERVER

_Table = dict[State, dict[tuple[Role, type[Event]], State]]

_GOODBYE: Final[dict[tuple[Role, type[Event]], State]] = {
    (CLIENT, Goodbye): State.CLOSED,
    (SERVER, Goodbye): State.CLOSED,
}

#: ``TRANSITIONS[state][(sender role, event type)] -> next state``; a missing key means
#: the event is not allowed there.
TRANSITIONS: Final[_Table] = {
    State.AWAIT_CHALLENGE: {(SERVER, Challenge): State.AWAIT_RESPONSE, **_GOODBYE},
    State.AWAIT_RESPONSE: {(CLIENT, Response): State.AWAIT_VERDICT, **_GOODBYE},
    State.AWAIT_VERDICT: {
        (SERVER, Welcome): State.OPEN,
        (SERVER, Denied): State.CLOSED,
        # A client may pipeline its first request(s) behind its Response; the server
        # reads them only after it has sent its verdict (see TURN).
        (CLIENT, Request): State.AWAIT_VERDICT,
        (CLIENT, Oneway): State.AWAIT_VERDICT,
        **_GOODBYE,
    },
    State.OPEN: {
        (CLIENT, Request): State.OPEN,
        (CLIENT, Oneway): State.OPEN,
        (SERVER, Reply): State.OPEN,
        (SERVER, ErrorReply): State.OPEN,
        **_GOODBYE,
    },
    State.CLOSED: {},
    State.ERROR: {(CLIENT, Goodbye): State.ERROR, (SERVER, Goodbye): State.ERROR},
}

#: In these states it is one role's turn to speak: that side does not read further
#: until it has sent its handshake message (``next_event`` returns ``PAUSED``).
TURN: Final[dict[State, Role]] = {
    State.AWAIT_CHALLENGE: SERVER,
    State.AWAIT_RESPONSE: CLIENT,
    State.AWAIT_VERDICT: SERVER,
}


def transition(state: State, sender: Role, event_type: type[Event]) -> State | None:
    """The state after *sender* sends an event of *event_type*, or None if not allowed."""
    return TRANSITIONS[state].get((sender, event_type))
