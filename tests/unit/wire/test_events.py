"""Events: validated public constructors, value semantics, strict readers."""

from __future__ import annotations

from typing import Any

import pytest

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire import (
    Challenge,
    ConnectionClosed,
    Denied,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Oneway,
    Reply,
    Request,
    Response,
    Welcome,
)
from pairns.wire.events import READERS, WRITERS
from pairns.wire.frames import MessageType
from pairns.wire.limits import (
    MAX_CORRELATION_ID,
    MAX_MAX_FRAME_SIZE,
    MAX_MAX_IN_FLIGHT,
    MAX_REASON_LENGTH,
    MAX_SERVER_NAME_LENGTH,
    MIN_MAX_FRAME_SIZE,
    NONCE_SIZE,
)

NONCE = bytes(range(NONCE_SIZE))
MAC = bytes(range(32, 64))

EXAMPLES = [
    Challenge(NONCE, True, "node-1"),
    Response(NONCE, MAC, MIN_MAX_FRAME_SIZE),
    Response(NONCE, None, MAX_MAX_FRAME_SIZE),
    Welcome(MAC, 4096, 1),
    Welcome(None, 1 << 20, MAX_MAX_IN_FLIGHT),
    Denied("incorrect identification"),
    Request(1, "obj", "m", [1, "a"], {"k": None}, "rid"),
    Request(MAX_CORRELATION_ID, "obj", "m"),
    Oneway("obj", "m", [], None),
    Reply(5, {"a": [1, 2]}),
    ErrorReply(5, "NamingError", "name not found", ["name not found", ":x"]),
    Goodbye(ErrorCode.FRAME_TOO_LARGE, "too big"),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_written_body_reads_back_as_the_same_event(event: Any) -> None:
    msg_type, corr_id, value = WRITERS[type(event)](event)
    assert READERS[msg_type](corr_id, value) == event


def test_events_are_frozen_and_slotted() -> None:
    event = Request(1, "o", "m")
    with pytest.raises(AttributeError):
        event.method = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]


def test_equality_includes_the_type() -> None:
    assert Reply(1, 2) == Reply(1, 2)
    assert Reply(1, 2) != Reply(1, 3)
    assert Reply(1, "x") != Goodbye(1, "x")
    assert Reply(1, 2) != (1, 2)
    assert ConnectionClosed() == ConnectionClosed()
    assert hash(Goodbye(1, "x")) == hash(Goodbye(1, "x"))
    assert hash(Goodbye(1, "x")) != hash(Denied("x"))


def test_request_defaults_and_normalisation() -> None:
    event = Request(3, "o", "m", (1, 2), {}, None)
    assert event.args == [1, 2]
    assert event.kwargs is None
    assert repr(event).startswith("Request(corr_id=3")


@pytest.mark.parametrize(
    "build",
    [
        lambda: Request(-1, "o", "m"),
        lambda: Request(MAX_CORRELATION_ID + 1, "o", "m"),
        lambda: Request("1", "o", "m"),  # type: ignore[arg-type]
        lambda: Request(1, 5, "m"),  # type: ignore[arg-type]
        lambda: Request(1, "o", None),  # type: ignore[arg-type]
        lambda: Request(1, "o", "m", "abc"),  # type: ignore[arg-type]
        lambda: Request(1, "o", "m", [], {1: 2}),  # type: ignore[dict-item]
        lambda: Request(1, "o", "m", [], None, 7),  # type: ignore[arg-type]
        lambda: Oneway("o", "m", 5),  # type: ignore[arg-type]
        lambda: Reply(True, 1),
        lambda: Reply(MAX_CORRELATION_ID + 1, 1),
        lambda: ErrorReply(1, "T", 5),  # type: ignore[arg-type]
        lambda: Challenge(b"short", True),
        lambda: Challenge(NONCE, True, "x" * (MAX_SERVER_NAME_LENGTH + 1)),
        lambda: Response(NONCE, b"short", MIN_MAX_FRAME_SIZE),
        lambda: Response(NONCE, None, MIN_MAX_FRAME_SIZE - 1),
        lambda: Response(NONCE, None, MAX_MAX_FRAME_SIZE + 1),
        lambda: Welcome(None, MIN_MAX_FRAME_SIZE, 0),
        lambda: Welcome(None, MIN_MAX_FRAME_SIZE, MAX_MAX_IN_FLIGHT + 1),
        lambda: Denied(None),  # type: ignore[arg-type]
        lambda: Goodbye("x", "m"),  # type: ignore[arg-type]
    ],
)
def test_constructors_validate(build: Any) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert info.value.error_code_hint == ErrorCode.BAD_MESSAGE


def test_long_reasons_are_cut() -> None:
    assert len(Goodbye(0, "x" * 10_000).message) == MAX_REASON_LENGTH
    assert len(Denied("x" * (MAX_REASON_LENGTH + 1)).reason) == MAX_REASON_LENGTH


def test_goodbye_codes_become_error_codes_when_known() -> None:
    assert Goodbye(6, "").code is ErrorCode.FRAME_TOO_LARGE
    assert Goodbye(999, "").code == 999


HEX_NONCE = NONCE.hex()


@pytest.mark.parametrize(
    ("msg_type", "value"),
    [
        (MessageType.REQUEST, ["o", "m", [], None]),
        (MessageType.REQUEST, ["o", "m", {}, None, None]),
        (MessageType.REQUEST, ["o", 1, [], None, None]),
        (MessageType.REQUEST, [None, "m", [], None, None]),
        (MessageType.REQUEST, ["o", "m", [], [], None]),
        (MessageType.REQUEST, ["o", "m", [], None, 5]),
        (MessageType.REQUEST, {"object": "o"}),
        (MessageType.ONEWAY, ["o", "m", [], None, None]),
        (MessageType.ONEWAY, ["o", "m", None, None]),
        (MessageType.ERROR_REPLY, ["T", "m"]),
        (MessageType.ERROR_REPLY, ["T", "m", "args"]),
        (MessageType.CHALLENGE, {"nonce": HEX_NONCE, "auth": 1, "server": "", "version": 1}),
        (MessageType.CHALLENGE, {"nonce": "zz" * 32, "auth": True, "server": "", "version": 1}),
        (
            MessageType.CHALLENGE,
            {"nonce": HEX_NONCE[:-2], "auth": True, "server": "", "version": 1},
        ),
        (MessageType.CHALLENGE, {"nonce": HEX_NONCE, "auth": True, "server": ""}),
        (
            MessageType.CHALLENGE,
            {"nonce": HEX_NONCE, "auth": True, "server": "", "version": 1, "extra": 1},
        ),
        (MessageType.RESPONSE, {"nonce": HEX_NONCE, "mac": "00", "max_frame_size": 4096}),
        (MessageType.RESPONSE, {"nonce": HEX_NONCE, "mac": None, "max_frame_size": 10}),
        (MessageType.RESPONSE, {"nonce": HEX_NONCE, "mac": None, "max_frame_size": True}),
        (MessageType.WELCOME, {"mac": None, "max_frame_size": 4096, "max_in_flight": 0}),
        (MessageType.WELCOME, {"mac": None, "max_frame_size": 4096}),
        (MessageType.DENIED, {"reason": 5}),
        (MessageType.DENIED, []),
        (MessageType.GOODBYE, {"code": "x", "message": ""}),
        (MessageType.GOODBYE, {"code": 1}),
    ],
)
def test_readers_reject_wrong_shapes(msg_type: int, value: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        READERS[int(msg_type)](1, value)
    assert info.value.error_code_hint == ErrorCode.BAD_MESSAGE
    assert "malformed" in str(info.value)


def test_challenge_with_another_protocol_version() -> None:
    value = {"nonce": HEX_NONCE, "auth": True, "server": "", "version": 2}
    with pytest.raises(RemoteProtocolError) as info:
        READERS[int(MessageType.CHALLENGE)](0, value)
    assert info.value.error_code_hint == ErrorCode.UNSUPPORTED_VERSION
