"""The events of the pairns wire protocol and their JSON body layouts.

Events are frozen, slotted value objects (tuple subclasses: construction is a single
``tuple.__new__``, which matters because the decoder builds one per request). Their
public constructors validate their arguments and raise
:class:`~pairns.errors.LocalProtocolError`; the decoder validates the JSON shape once
and builds events through the trusted path (h11's ``_parsed=True`` idea), so the hot
path never checks twice. Two events are equal only when they have the same type and
the same fields.

Body layouts (the header carries the message type and the correlation id)::

    Challenge   {"nonce": hex, "auth": bool, "server": str, "version": int}
    Response    {"nonce": hex, "mac": hex | null, "max_frame_size": int}
    Welcome     {"mac": hex | null, "max_frame_size": int, "max_in_flight": int}
    Denied      {"reason": str}
    Request     [object_id, method, args, kwargs | null, request_id | null]
    Oneway      [object_id, method, args, kwargs | null]
    Reply       value
    ErrorReply  [error_type, message, args]
    Goodbye     {"code": int, "message": str}

The hot messages are arrays (smaller and faster to check), the rare ones objects.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, cast

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire.frames import MessageType
from pairns.wire.limits import (
    MAC_SIZE,
    MAX_CORRELATION_ID,
    MAX_MAX_FRAME_SIZE,
    MAX_MAX_IN_FLIGHT,
    MAX_REASON_LENGTH,
    MAX_SERVER_NAME_LENGTH,
    MIN_MAX_FRAME_SIZE,
    NONCE_SIZE,
    PROTOCOL_VERSION,
    ErrorCode,
)

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Challenge",
    "ConnectionClosed",
    "Denied",
    "ErrorReply",
    "Event",
    "Goodbye",
    "Oneway",
    "Reply",
    "Request",
    "Response",
    "Sentinel",
    "Welcome",
]


class Sentinel(enum.Enum):
    """Values :meth:`Connection.next_event` returns when it has no event to give."""

    #: More bytes must arrive before the next event is complete.
    NEED_DATA = "NEED_DATA"
    #: This side must send something (its handshake answer) before reading further.
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED

_new = tuple.__new__
_tuple_eq = cast(Callable[[object, object], bool], tuple.__eq__)


class Event:
    """Base class of every wire event (a frozen, slotted tuple of named fields)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and _tuple_eq(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *cast(tuple[Any, ...], self)))


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, ErrorCode.BAD_MESSAGE)


def _check_corr_id(corr_id: object) -> int:
    if type(corr_id) is not int or not 0 <= corr_id <= MAX_CORRELATION_ID:
        raise _fail(f"correlation id must be an integer in 0..{MAX_CORRELATION_ID}: {corr_id!r}")
    return corr_id


def _check_str(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a string, not {type(value).__name__}")
    return value


def _check_args(args: object) -> list[Any]:
    if type(args) is list:
        return args
    if isinstance(args, (list, tuple)):
        return list(args)
    raise _fail(f"args must be a list or tuple, not {type(args).__name__}")


def _check_kwargs(kwargs: object) -> dict[str, Any] | None:
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise _fail("kwargs must be None or a dict with string keys")
    return kwargs or None


def _check_bytes(what: str, value: object, size: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise _fail(f"{what} must be {size} bytes")
    return value


def _check_int(what: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _fail(f"{what} must be an integer in {low}..{high}: {value!r}")
    return value


# -- handshake --------------------------------------------------------------------------


class _ChallengeFields(NamedTuple):
    nonce: bytes
    auth_required: bool
    server_name: str
    version: int


class Challenge(Event, _ChallengeFields):
    """Server → client, first frame: a fresh nonce and whether identification is needed."""

    __slots__ = ()

    def __new__(
        cls,
        nonce: bytes,
        auth_required: bool,
        server_name: str = "",
        version: int = PROTOCOL_VERSION,
    ) -> Challenge:
        _check_bytes("nonce", nonce, NONCE_SIZE)
        if len(_check_str("server_name", server_name)) > MAX_SERVER_NAME_LENGTH:
            raise _fail(f"server_name is longer than {MAX_SERVER_NAME_LENGTH} characters")
        return _new(cls, (nonce, bool(auth_required), server_name, version))


class _ResponseFields(NamedTuple):
    nonce: bytes
    mac: bytes | None
    max_frame_size: int


class Response(Event, _ResponseFields):
    """Client → server: the client's nonce and its proof (None without identification).

    ``max_frame_size`` is the largest reply body the client accepts.
    """

    __slots__ = ()

    def __new__(cls, nonce: bytes, mac: bytes | None, max_frame_size: int) -> Response:
        _check_bytes("nonce", nonce, NONCE_SIZE)
        if mac is not None:
            _check_bytes("mac", mac, MAC_SIZE)
        _check_int("max_frame_size", max_frame_size, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)
        return _new(cls, (nonce, mac, max_frame_size))


class _WelcomeFields(NamedTuple):
    mac: bytes | None
    max_frame_size: int
    max_in_flight: int


class Welcome(Event, _WelcomeFields):
    """Server → client: accepted. ``mac`` proves the server knows the identification.

    ``max_frame_size`` and ``max_in_flight`` are the server's limits for requests.
    """

    __slots__ = ()

    def __new__(cls, mac: bytes | None, max_frame_size: int, max_in_flight: int) -> Welcome:
        if mac is not None:
            _check_bytes("mac", mac, MAC_SIZE)
        _check_int("max_frame_size", max_frame_size, MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE)
        _check_int("max_in_flight", max_in_flight, 1, MAX_MAX_IN_FLIGHT)
        return _new(cls, (mac, max_frame_size, max_in_flight))


class _DeniedFields(NamedTuple):
    reason: str


class Denied(Event, _DeniedFields):
    """Server → client: identification refused; the server closes the connection.

    The reason is cut to ``MAX_REASON_LENGTH`` characters.
    """

    __slots__ = ()

    def __new__(cls, reason: str) -> Denied:
        return _new(cls, (_check_str("reason", reason)[:MAX_REASON_LENGTH],))


# -- messages ---------------------------------------------------------------------------


class _RequestFields(NamedTuple):
    corr_id: int
    object_id: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any] | None
    request_id: str | None


class Request(Event, _RequestFields):
    """Client → server: call ``method`` of ``object_id``; answered by a (Error)Reply.

    ``request_id`` (optional) identifies a retried write so it is not applied twice.
    """

    __slots__ = ()

    def __new__(
        cls,
        corr_id: int,
        object_id: str,
        method: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Request:
        if request_id is not None:
            _check_str("request_id", request_id)
        return _new(
            cls,
            (
                _check_corr_id(corr_id),
                _check_str("object_id", object_id),
                _check_str("method", method),
                _check_args(args),
                _check_kwargs(kwargs),
                request_id,
            ),
        )


class _OnewayFields(NamedTuple):
    object_id: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any] | None


class Oneway(Event, _OnewayFields):
    """Client → server: call ``method`` of ``object_id`` and send no reply."""

    __slots__ = ()

    def __new__(
        cls,
        object_id: str,
        method: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Oneway:
        return _new(
            cls,
            (
                _check_str("object_id", object_id),
                _check_str("method", method),
                _check_args(args),
                _check_kwargs(kwargs),
            ),
        )


class _ReplyFields(NamedTuple):
    corr_id: int
    value: Any


class Reply(Event, _ReplyFields):
    """Server → client: the return value of the request ``corr_id`` (any JSON value)."""

    __slots__ = ()

    def __new__(cls, corr_id: int, value: Any = None) -> Reply:
        # The check is inlined: the daemon builds one Reply per request.
        if type(corr_id) is not int or not 0 <= corr_id <= MAX_CORRELATION_ID:
            _check_corr_id(corr_id)
        return _new(cls, (corr_id, value))


class _ErrorReplyFields(NamedTuple):
    corr_id: int
    error_type: str
    message: str
    args: list[Any]


class ErrorReply(Event, _ErrorReplyFields):
    """Server → client: the request ``corr_id`` raised; see ``pairns.errors.error_to_wire``."""

    __slots__ = ()

    def __new__(
        cls, corr_id: int, error_type: str, message: str, args: Sequence[Any] = ()
    ) -> ErrorReply:
        return _new(
            cls,
            (
                _check_corr_id(corr_id),
                _check_str("error_type", error_type),
                _check_str("message", message),
                _check_args(args),
            ),
        )


class _GoodbyeFields(NamedTuple):
    code: int
    message: str


class Goodbye(Event, _GoodbyeFields):
    """Either side: "I am closing the connection, and this is why" (an :class:`ErrorCode`).

    The message is cut to ``MAX_REASON_LENGTH`` characters.
    """

    __slots__ = ()

    def __new__(cls, code: int, message: str = "") -> Goodbye:
        if type(code) is not int and not isinstance(code, ErrorCode):
            raise _fail(f"code must be an integer: {code!r}")
        return _new(cls, (_error_code(code), _check_str("message", message)[:MAX_REASON_LENGTH]))


class _ConnectionClosedFields(NamedTuple):
    pass


class ConnectionClosed(Event, _ConnectionClosedFields):
    """The peer closed its side of the connection (end of file); nothing more will come."""

    __slots__ = ()

    def __new__(cls) -> ConnectionClosed:
        return _new(cls, ())


def _error_code(code: int) -> int:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


# -- body layouts -----------------------------------------------------------------------
#
# Writers turn an event into (message type, correlation id, JSON value); readers do the
# reverse and validate the JSON shape, raising RemoteProtocolError(BAD_MESSAGE).

Writer = Callable[[Any], tuple[int, int, Any]]
Reader = Callable[[int, Any], Event]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


WRITERS: Final[dict[type[Event], Writer]] = {
    Challenge: lambda e: (
        MessageType.CHALLENGE,
        0,
        {
            "nonce": e.nonce.hex(),
            "auth": e.auth_required,
            "server": e.server_name,
            "version": e.version,
        },
    ),
    Response: lambda e: (
        MessageType.RESPONSE,
        0,
        {"nonce": e.nonce.hex(), "mac": _hex(e.mac), "max_frame_size": e.max_frame_size},
    ),
    Welcome: lambda e: (
        MessageType.WELCOME,
        0,
        {"mac": _hex(e.mac), "max_frame_size": e.max_frame_size, "max_in_flight": e.max_in_flight},
    ),
    Denied: lambda e: (MessageType.DENIED, 0, {"reason": e.reason}),
    Request: lambda e: (MessageType.REQUEST, e[0], [e[1], e[2], e[3], e[4], e[5]]),
    Oneway: lambda e: (MessageType.ONEWAY, 0, [e[0], e[1], e[2], e[3]]),
    Reply: lambda e: (MessageType.REPLY, e[0], e[1]),
    ErrorReply: lambda e: (MessageType.ERROR_REPLY, e[0], [e[1], e[2], e[3]]),
    Goodbye: lambda e: (MessageType.GOODBYE, 0, {"code": int(e.code), "message": e.message}),
}


def _bad(what: str, value: Any) -> RemoteProtocolError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return RemoteProtocolError(f"malformed {what} message: {text}", ErrorCode.BAD_MESSAGE)


def _object(what: str, value: Any, keys: frozenset[str]) -> dict[str, Any]:
    if type(value) is not dict or value.keys() != keys:
        raise _bad(what, value)
    return cast(dict[str, Any], value)


def _read_bytes(what: str, value: Any, text: Any, size: int) -> bytes:
    if type(text) is str and len(text) == 2 * size:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    raise _bad(what, value)


def _read_int(what: str, value: Any, number: Any, low: int, high: int) -> int:
    if type(number) is int and low <= number <= high:
        return number
    raise _bad(what, value)


_CHALLENGE_KEYS = frozenset({"nonce", "auth", "server", "version"})
_RESPONSE_KEYS = frozenset({"nonce", "mac", "max_frame_size"})
_WELCOME_KEYS = frozenset({"mac", "max_frame_size", "max_in_flight"})
_DENIED_KEYS = frozenset({"reason"})
_GOODBYE_KEYS = frozenset({"code", "message"})


def _read_challenge(corr_id: int, value: Any) -> Challenge:
    body = _object("Challenge", value, _CHALLENGE_KEYS)
    nonce = _read_bytes("Challenge", value, body["nonce"], NONCE_SIZE)
    auth, server, version = body["auth"], body["server"], body["version"]
    if type(auth) is not bool or type(server) is not str or len(server) > MAX_SERVER_NAME_LENGTH:
        raise _bad("Challenge", value)
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise RemoteProtocolError(
            f"server speaks protocol version {version!r}, this client {PROTOCOL_VERSION}",
            ErrorCode.UNSUPPORTED_VERSION,
        )
    return _new(Challenge, (nonce, auth, server, version))


def _read_response(corr_id: int, value: Any) -> Response:
    body = _object("Response", value, _RESPONSE_KEYS)
    nonce = _read_bytes("Response", value, body["nonce"], NONCE_SIZE)
    mac = body["mac"]
    if mac is not None:
        mac = _read_bytes("Response", value, mac, MAC_SIZE)
    size = _read_int(
        "Response", value, body["max_frame_size"], MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE
    )
    return _new(Response, (nonce, mac, size))


def _read_welcome(corr_id: int, value: Any) -> Welcome:
    body = _object("Welcome", value, _WELCOME_KEYS)
    mac = body["mac"]
    if mac is not None:
        mac = _read_bytes("Welcome", value, mac, MAC_SIZE)
    size = _read_int(
        "Welcome", value, body["max_frame_size"], MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE
    )
    in_flight = _read_int("Welcome", value, body["max_in_flight"], 1, MAX_MAX_IN_FLIGHT)
    return _new(Welcome, (mac, size, in_flight))


def _read_denied(corr_id: int, value: Any) -> Denied:
    reason = _object("Denied", value, _DENIED_KEYS)["reason"]
    if type(reason) is not str:
        raise _bad("Denied", value)
    return _new(Denied, (reason,))


def _read_request(corr_id: int, value: Any) -> Request:
    if type(value) is list and len(value) == 5:
        object_id, method, args, kwargs, request_id = value
        if (
            type(object_id) is str
            and type(method) is str
            and type(args) is list
            and (kwargs is None or type(kwargs) is dict)
            and (request_id is None or type(request_id) is str)
        ):
            return _new(Request, (corr_id, object_id, method, args, kwargs, request_id))
    raise _bad("Request", value)


def _read_oneway(corr_id: int, value: Any) -> Oneway:
    if type(value) is list and len(value) == 4:
        object_id, method, args, kwargs = value
        if (
            type(object_id) is str
            and type(method) is str
            and type(args) is list
            and (kwargs is None or type(kwargs) is dict)
        ):
            return _new(Oneway, (object_id, method, args, kwargs))
    raise _bad("Oneway", value)


def _read_reply(corr_id: int, value: Any) -> Reply:
    return _new(Reply, (corr_id, value))


def _read_error_reply(corr_id: int, value: Any) -> ErrorReply:
    if type(value) is list and len(value) == 3:
        error_type, message, args = value
        if type(error_type) is str and type(message) is str and type(args) is list:
            return _new(ErrorReply, (corr_id, error_type, message, args))
    raise _bad("ErrorReply", value)


def _read_goodbye(corr_id: int, value: Any) -> Goodbye:
    body = _object("Goodbye", value, _GOODBYE_KEYS)
    code, message = body["code"], body["message"]
    if type(code) is not int or type(message) is not str:
        raise _bad("Goodbye", value)
    return _new(Goodbye, (_error_code(code), message))


# Keyed by plain ints: the header gives plain ints, and int keys hash and compare fastest.
READERS: Final[dict[int, Reader]] = {
    int(MessageType.CHALLENGE): _read_challenge,
    int(MessageType.RESPONSE): _read_response,
    int(MessageType.WELCOME): _read_welcome,
    int(MessageType.DENIED): _read_denied,
    int(MessageType.REQUEST): _read_request,
    int(MessageType.ONEWAY): _read_oneway,
    int(MessageType.REPLY): _read_reply,
    int(MessageType.ERROR_REPLY): _read_error_reply,
    int(MessageType.GOODBYE): _read_goodbye,
}
