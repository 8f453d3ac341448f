"""The sans-IO connection: bytes in, events out; events in, bytes out.

Three calls make the API (h11's shape), and none of them touches a socket, a clock or
a thread::

    conn.receive_data(chunk)                 # buffer only; b"" means the peer closed
    while (event := conn.next_event()) is not NEED_DATA: handle(event)
    data = conn.send(event)                  # the bytes to write

The handshake runs through the same object: the server sends ``conn.challenge()``,
the client answers ``conn.response()``, the server sends ``conn.verdict()`` (a
``Welcome`` or ``Denied``). Bytes that arrive behind a handshake frame stay buffered
for the message phase.

Errors say whose fault they are. ``send`` raises
:class:`~pairns.errors.LocalProtocolError`: for an event that is not allowed now the
connection goes to ``ERROR``; for an event that merely cannot be encoded (a value that
is not JSON, a body bigger than the peer accepts) nothing is sent and nothing changes,
so the caller may send something else instead (the daemon sends an ``ErrorReply``).
``next_event`` raises :class:`~pairns.errors.RemoteProtocolError` with an
``error_code_hint`` (an :class:`~pairns.wire.limits.ErrorCode`) and the connection
stays in ``ERROR``; the only thing left to do is ``send(Goodbye(code, reason))`` and
close.
"""

from __future__ import annotations

import os
from typing import Any, Final, cast

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire.events import (
    NEED_DATA,
    PAUSED,
    READERS,
    WRITERS,
    Challenge,
    ConnectionClosed,
    Denied,
    ErrorReply,
    Event,
    Goodbye,
    Reply,
    Request,
    Response,
    Sentinel,
    Welcome,
)
from pairns.wire.frames import FrameDecoder, MessageType, encode_frame, encode_json
from pairns.wire.handshake import ClientHandshake, Randomness, ServerHandshake
from pairns.wire.limits import (
    DEFAULT_CLIENT_MAX_FRAME_SIZE,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
    MAX_HANDSHAKE_FRAME_SIZE,
    MAX_MAX_FRAME_SIZE,
    MAX_MAX_IN_FLIGHT,
    MIN_MAX_FRAME_SIZE,
    PIPELINED_REQUESTS,
    ErrorCode,
)
from pairns.wire.state import TRANSITIONS, TURN, Role, State

__all__ = ["CLIENT", "SERVER", "Connection"]

CLIENT: Final = Role.CLIENT
SERVER: Final = Role.SERVER

_OPEN: Final = State.OPEN
_ERROR: Final = State.ERROR
_CLOSED: Final = State.CLOSED
_REPLY: Final = int(MessageType.REPLY)
_REQUEST: Final = int(MessageType.REQUEST)

_EventTable = dict[State, dict[type[Event], State]]


def _project(sender: Role) -> _EventTable:
    """The transition table seen from one sender: ``{state: {event type: next state}}``."""
    return {
        state: {etype: new for (role, etype), new in moves.items() if role is sender}
        for state, moves in TRANSITIONS.items()
    }


_BY_SENDER: Final = {role: _project(role) for role in Role}


class Connection:
    """One end of a pairns connection, as a state machine (no IO).

    *identification* is the shared secret as bytes (None: a server accepts everyone, a
    client has nothing to prove). *max_frame_size* is the largest body this side
    accepts; *max_in_flight* the most requests a server lets one client have waiting
    (a client also never exceeds the server's announced limit). With *checksums* every
    frame this side sends carries a CRC32 (received CRCs are always checked).
    *randomness* makes the handshake nonces; *server_name* is announced by a server.
    """

    __slots__ = (
        "_checksums",
        "_decoder",
        "_goodbye_sent",
        "_handshake",
        "_in_flight",
        "_max_frame_size",
        "_max_in_flight",
        "_peer_max_frame_size",
        "_peer_max_in_flight",
        "_recv_table",
        "_role",
        "_send_table",
        "_state",
        "_their_role",
    )

    def __init__(
        self,
        role: Role,
        *,
        identification: bytes | None = None,
        max_frame_size: int | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        checksums: bool = False,
        randomness: Randomness = os.urandom,
        server_name: str = "pairns",
    ) -> None:
        if max_frame_size is None:
            max_frame_size = (
                DEFAULT_MAX_FRAME_SIZE if role is SERVER else DEFAULT_CLIENT_MAX_FRAME_SIZE
            )
        if not MIN_MAX_FRAME_SIZE <= max_frame_size <= MAX_MAX_FRAME_SIZE:
            raise ValueError(
                f"max_frame_size must be in {MIN_MAX_FRAME_SIZE}..{MAX_MAX_FRAME_SIZE}"
            )
        if not 1 <= max_in_flight <= MAX_MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be in 1..{MAX_MAX_IN_FLIGHT}")
        if identification is not None and not isinstance(identification, bytes):
            raise TypeError("identification must be bytes or None")
        self._role = role
        self._their_role = SERVER if role is CLIENT else CLIENT
        self._state = State.AWAIT_CHALLENGE
        self._decoder = FrameDecoder()
        self._max_frame_size = max_frame_size
        self._max_in_flight = max_in_flight
        self._checksums = bool(checksums)
        self._in_flight: set[int] = set()
        self._goodbye_sent = False
        self._send_table = _BY_SENDER[role]
        self._recv_table = _BY_SENDER[self._their_role]
        self._handshake: ServerHandshake | ClientHandshake
        if role is SERVER:
            self._handshake = ServerHandshake(
                identification,
                randomness,
                server_name=server_name,
                max_frame_size=max_frame_size,
                max_in_flight=max_in_flight,
            )
            self._peer_max_in_flight = MAX_MAX_IN_FLIGHT
        else:
            self._handshake = ClientHandshake(
                identification, randomness, max_frame_size=max_frame_size
            )
            self._peer_max_in_flight = min(PIPELINED_REQUESTS, max_in_flight)
        # Unknown until the handshake tells us; the peer enforces its own limit anyway.
        self._peer_max_frame_size = MAX_MAX_FRAME_SIZE

    # -- introspection ---------------------------------------------------------------

    @property
    def role(self) -> Role:
        """``CLIENT`` or ``SERVER``."""
        return self._role

    @property
    def their_role(self) -> Role:
        """The peer's role."""
        return self._their_role

    @property
    def state(self) -> State:
        """Where the conversation is (see :mod:`pairns.wire.state`)."""
        return self._state

    @property
    def in_flight(self) -> int:
        """Requests sent (client) or received (server) and not answered yet."""
        return len(self._in_flight)

    def is_in_flight(self, corr_id: int) -> bool:
        """True while the request *corr_id* waits for its reply."""
        return corr_id in self._in_flight

    @property
    def peer_max_in_flight(self) -> int:
        """How many requests a client may have in flight (the server's Welcome says)."""
        return self._peer_max_in_flight

    @property
    def peer_max_frame_size(self) -> int:
        """The largest body the peer accepts (known after the handshake)."""
        return self._peer_max_frame_size

    @property
    def peer_authenticated(self) -> bool | None:
        """Did the peer prove it knows the identification?

        On a client: None before the Welcome, then True when the server proved it,
        False when the server has no identification (or this client has none to check
        with). On a server: True when the client proved it, else False.
        """
        hs = self._handshake
        if isinstance(hs, ServerHandshake):
            return hs.client_authenticated
        return hs.server_authenticated

    @property
    def server_name(self) -> str | None:
        """The name the server announced (on a client, after the Challenge)."""
        return self._handshake.server_name

    # -- handshake helpers -----------------------------------------------------------

    def challenge(self) -> Challenge:
        """Server: the ``Challenge`` to send first (with a fresh nonce)."""
        hs = self._handshake
        if not isinstance(hs, ServerHandshake):
            raise LocalProtocolError("only a server sends a Challenge")
        return hs.challenge()

    def response(self) -> Response:
        """Client: the ``Response`` to the server's challenge."""
        hs = self._handshake
        if not isinstance(hs, ClientHandshake):
            raise LocalProtocolError("only a client sends a Response")
        return hs.response()

    def verdict(self) -> Welcome | Denied:
        """Server: ``Welcome`` if the client's response was acceptable, else ``Denied``."""
        hs = self._handshake
        if not isinstance(hs, ServerHandshake):
            raise LocalProtocolError("only a server gives a verdict")
        return hs.verdict()

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its side."""
        decoder = self._decoder
        if decoder.eof:
            if data:
                raise LocalProtocolError("received data after the end of the stream")
            return
        if data:
            decoder.feed(data)
        else:
            decoder.feed_eof()

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``.

        ``PAUSED`` means it is this side's turn in the handshake: send the
        challenge/response/verdict before reading on. Once the peer has closed (end of
        file, ``Goodbye``, ``Denied``), ``ConnectionClosed()`` is returned for ever.
        """
        state = self._state
        if state is _OPEN:
            # The hot path: one frame, one reader, the bookkeeping of requests/replies.
            try:
                frame = self._decoder.next_frame(self._max_frame_size)
                if frame is None:
                    return self._no_frame()
                msg_type, corr_id, value = frame
                event = READERS[msg_type](corr_id, value)
                etype = type(event)
                if etype is Request and self._role is SERVER:
                    in_flight = self._in_flight
                    if corr_id in in_flight:
                        raise RemoteProtocolError(
                            f"request {corr_id} reuses the id of a request still in flight",
                            ErrorCode.DUPLICATE_CORRELATION_ID,
                        )
                    if len(in_flight) >= self._max_in_flight:
                        raise RemoteProtocolError(
                            f"more than {self._max_in_flight} requests in flight",
                            ErrorCode.TOO_MANY_IN_FLIGHT,
                        )
                    in_flight.add(corr_id)
                    return event
                if (etype is Reply or etype is ErrorReply) and self._role is CLIENT:
                    try:
                        self._in_flight.remove(corr_id)
                    except KeyError:
                        raise RemoteProtocolError(
                            f"reply to request {corr_id}, which is not in flight",
                            ErrorCode.UNEXPECTED_MESSAGE,
                        ) from None
                    return event
                return self._received(event)
            except RemoteProtocolError:
                self._state = _ERROR
                raise
        if state is _CLOSED:
            return ConnectionClosed()
        if state is _ERROR:
            raise RemoteProtocolError(
                "cannot read from a connection in the ERROR state", ErrorCode.PROTOCOL_ERROR
            )
        if TURN[state] is self._role:
            return PAUSED
        try:
            frame = self._decoder.next_frame(MAX_HANDSHAKE_FRAME_SIZE)
            if frame is None:
                return self._no_frame()
            msg_type, corr_id, value = frame
            return self._received(READERS[msg_type](corr_id, value))
        except RemoteProtocolError:
            self._state = _ERROR
            raise

    def _no_frame(self) -> Sentinel | ConnectionClosed:
        decoder = self._decoder
        if not decoder.eof:
            return NEED_DATA
        if decoder.buffered:
            raise RemoteProtocolError(
                f"the connection ended in the middle of a frame ({decoder.buffered} bytes)",
                ErrorCode.TRUNCATED,
            )
        return ConnectionClosed()

    def _received(self, event: Event) -> Event:
        """Apply the state table (and the handshake) to an event from the peer."""
        etype = type(event)
        new_state = self._recv_table[self._state].get(etype)
        if new_state is None:
            raise RemoteProtocolError(
                f"{etype.__name__} from the {self._their_role.value.lower()} is not allowed "
                f"in state {self._state.value}",
                ErrorCode.UNEXPECTED_MESSAGE,
            )
        hs = self._handshake
        if etype is Challenge:
            assert isinstance(hs, ClientHandshake)
            assert isinstance(event, Challenge)
            hs.receive_challenge(event)
        elif etype is Response:
            assert isinstance(hs, ServerHandshake)
            assert isinstance(event, Response)
            hs.receive_response(event)
            self._peer_max_frame_size = event.max_frame_size
        elif etype is Welcome:
            assert isinstance(hs, ClientHandshake)
            assert isinstance(event, Welcome)
            hs.receive_welcome(event)
            self._peer_max_frame_size = event.max_frame_size
            self._peer_max_in_flight = min(event.max_in_flight, self._max_in_flight)
        elif etype is Request:
            # Only reachable here in OPEN via the generic path (client roles never get
            # requests: the table refuses them).
            corr_id = cast(Request, event).corr_id
            if corr_id in self._in_flight:
                raise RemoteProtocolError(
                    f"request {corr_id} reuses the id of a request still in flight",
                    ErrorCode.DUPLICATE_CORRELATION_ID,
                )
            if len(self._in_flight) >= self._max_in_flight:
                raise RemoteProtocolError(
                    f"more than {self._max_in_flight} requests in flight",
                    ErrorCode.TOO_MANY_IN_FLIGHT,
                )
            self._in_flight.add(corr_id)
        self._state = new_state
        return event

    # -- sending ---------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes that put *event* on the wire (the state advances with them).

        Raises :class:`LocalProtocolError`; see the module docstring for which errors
        leave the connection usable.
        """
        etype = type(event)
        if etype is Reply:
            corr_id, value = cast(Reply, event)
            return self.reply(corr_id, value)
        if etype is Request and self._state is _OPEN and self._role is CLIENT:
            # A client's hot path: the checks of _send, inlined.
            corr_id, object_id, method, args, kwargs, request_id = cast(Request, event)
            in_flight = self._in_flight
            if corr_id not in in_flight and len(in_flight) < self._peer_max_in_flight:
                try:
                    body = encode_json([object_id, method, args, kwargs, request_id])
                except (TypeError, ValueError, RecursionError) as exc:
                    raise LocalProtocolError(
                        f"cannot encode Request: {exc}", ErrorCode.BAD_MESSAGE
                    ) from exc
                if len(body) <= self._peer_max_frame_size:
                    in_flight.add(corr_id)
                    return encode_frame(_REQUEST, corr_id, body, self._checksums)
        return self._send(event)

    def reply(self, corr_id: int, value: Any) -> bytes:
        """``send(Reply(corr_id, value))`` without building the event: a server's hot path."""
        if self._state is _OPEN and self._role is SERVER and corr_id in self._in_flight:
            try:
                body = encode_json(value)
            except (TypeError, ValueError, RecursionError) as exc:
                raise LocalProtocolError(
                    f"cannot encode Reply: {exc}", ErrorCode.BAD_MESSAGE
                ) from exc
            if len(body) <= self._peer_max_frame_size:
                self._in_flight.discard(corr_id)
                return encode_frame(_REPLY, corr_id, body, self._checksums)
        # Not in flight, too large, wrong state or role: the general path raises the
        # right error.
        return self._send(Reply(corr_id, value))

    def _send(self, event: Event) -> bytes:
        etype = type(event)
        fields = cast(tuple[Any, ...], event)
        state = self._state
        new_state = self._send_table[state].get(etype)
        if new_state is None:
            self._state = _ERROR
            if etype is Goodbye and self._goodbye_sent:
                raise LocalProtocolError("a Goodbye was already sent", ErrorCode.PROTOCOL_ERROR)
            raise LocalProtocolError(
                f"cannot send {etype.__name__} as the {self._role.value.lower()} "
                f"in state {state.value}",
                ErrorCode.UNEXPECTED_MESSAGE,
            )
        if etype is Reply or etype is ErrorReply:
            if fields[0] not in self._in_flight:
                self._state = _ERROR
                raise LocalProtocolError(
                    f"no request {fields[0]} is waiting for a reply", ErrorCode.UNEXPECTED_MESSAGE
                )
        elif etype is Request:
            self._check_request(fields[0])
        elif etype is Goodbye:
            if self._goodbye_sent:
                self._state = _ERROR
                raise LocalProtocolError("a Goodbye was already sent", ErrorCode.PROTOCOL_ERROR)
        elif etype is Challenge:
            assert isinstance(self._handshake, ServerHandshake)
            assert isinstance(event, Challenge)
            self._guard(self._handshake.check_challenge, event)
        elif etype is Response:
            assert isinstance(self._handshake, ClientHandshake)
            assert isinstance(event, Response)
            self._guard(self._handshake.check_response, event)
        elif etype is Welcome:
            assert isinstance(self._handshake, ServerHandshake)
            assert isinstance(event, Welcome)
            self._guard(self._handshake.check_welcome, event)
        msg_type, corr_id, value = WRITERS[etype](event)
        try:
            body = encode_json(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(
                f"cannot encode {etype.__name__}: {exc}", ErrorCode.BAD_MESSAGE
            ) from exc
        if len(body) > self._peer_max_frame_size:
            raise LocalProtocolError(
                f"{etype.__name__} of {len(body)} bytes exceeds the peer's limit of "
                f"{self._peer_max_frame_size} bytes",
                ErrorCode.FRAME_TOO_LARGE,
            )
        # Commit: nothing below can fail.
        if etype is Reply or etype is ErrorReply:
            self._in_flight.discard(corr_id)
        elif etype is Request:
            self._in_flight.add(corr_id)
        elif etype is Goodbye:
            self._goodbye_sent = True
        self._state = new_state
        return encode_frame(msg_type, corr_id, body, self._checksums)

    def _check_request(self, corr_id: int) -> None:
        if corr_id in self._in_flight:
            self._state = _ERROR
            raise LocalProtocolError(
                f"request {corr_id} is already in flight", ErrorCode.DUPLICATE_CORRELATION_ID
            )
        if len(self._in_flight) >= self._peer_max_in_flight:
            self._state = _ERROR
            raise LocalProtocolError(
                f"already {len(self._in_flight)} requests in flight, the limit is "
                f"{self._peer_max_in_flight}",
                ErrorCode.TOO_MANY_IN_FLIGHT,
            )

    def _guard(self, check: Any, event: Event) -> None:
        try:
            check(event)
        except LocalProtocolError:
            self._state = _ERROR
            raise

    def send_failed(self) -> None:
        """Tell the connection that writing failed: it goes to ``ERROR``."""
        self._state = _ERROR
