"""The message phase of Connection: requests, replies, limits, errors, closing."""

from __future__ import annotations

from typing import Any

import pytest

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire import (
    CLIENT,
    NEED_DATA,
    SERVER,
    Connection,
    ConnectionClosed,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Oneway,
    Reply,
    Request,
    State,
)
from pairns.wire.frames import HEADER, MessageType
from pairns.wire.limits import (
    DEFAULT_CLIENT_MAX_FRAME_SIZE,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
    MAGIC,
    MAX_CORRELATION_ID,
    MAX_MAX_FRAME_SIZE,
    MAX_MAX_IN_FLIGHT,
    MIN_MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
)

from .helpers import ConnectionPair, events, raw_frame


def open_pair(**kwargs: Any) -> ConnectionPair:
    pair = ConnectionPair(**kwargs)
    pair.handshake()
    return pair


def remote_error(conn: Connection, data: bytes, code: ErrorCode) -> RemoteProtocolError:
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        events(conn)
    assert info.value.error_code_hint == code
    assert conn.state is State.ERROR
    return info.value


def test_request_reply_round_trip() -> None:
    pair = open_pair()
    request = Request(1, "obj", "resolve", [":Default.x"], {"flag": True}, "rid-1")
    assert pair.send(CLIENT, request) == [request]
    assert pair.server.in_flight == 1 and pair.client.in_flight == 1
    assert pair.send(SERVER, Reply(1, {"uri": "PYRO://h:1/x"})) == [
        Reply(1, {"uri": "PYRO://h:1/x"})
    ]
    assert pair.server.in_flight == 0 and pair.client.in_flight == 0


def test_reply_shortcut_is_the_same_bytes_as_send() -> None:
    a, b = open_pair(), open_pair()
    a.send(CLIENT, Request(9, "o", "m"))
    b.send(CLIENT, Request(9, "o", "m"))
    assert a.server.reply(9, [1, "x"]) == b.server.send(Reply(9, [1, "x"]))


def test_error_reply_and_oneway() -> None:
    pair = open_pair()
    pair.send(CLIENT, Request(2, "o", "m"))
    error = ErrorReply(2, "NamingError", "name not found", ["name not found", ":x"])
    assert pair.send(SERVER, error) == [error]
    oneway = Oneway("o", "poke", [1], None)
    assert pair.send(CLIENT, oneway) == [oneway]
    assert pair.server.in_flight == 0


def test_many_requests_in_one_chunk_and_replies_in_any_order() -> None:
    pair = open_pair()
    requests = [Request(i, "o", "m", [i]) for i in range(100)]
    assert pair.send(CLIENT, *requests) == requests
    replies = [Reply(i, i * 2) for i in reversed(range(100))]
    assert pair.send(SERVER, *replies) == replies


@pytest.mark.parametrize(
    "event",
    [Request(5, "obj", "m", ["é" * 10, {"a": [1, 2]}], None, "r"), Oneway("o", "m", [1], {"k": 2})],
)
def test_every_offset_split_and_trailing_bytes(event: Any) -> None:
    pair = open_pair()
    data = pair.client.send(event)
    for cut in range(1, len(data)):
        fresh = open_pair()
        fresh.server.receive_data(data[:cut])
        assert fresh.server.next_event() is NEED_DATA
        fresh.server.receive_data(data[cut:] + data[:3])
        assert fresh.server.next_event() == event
        assert fresh.server.next_event() is NEED_DATA  # the trailing 3 bytes wait


def test_checksums_are_sent_and_verified() -> None:
    pair = open_pair(client_kwargs={"checksums": True}, server_kwargs={"checksums": True})
    data = pair.client.send(Request(1, "o", "m", [1]))
    assert data[4] == 1  # the CRC flag
    pair.server.receive_data(data)
    assert pair.server.next_event() == Request(1, "o", "m", [1])
    corrupt = bytearray(pair.client.send(Request(2, "o", "m", [1])))
    corrupt[-2] ^= 0x10
    remote_error(pair.server, bytes(corrupt), ErrorCode.BAD_CHECKSUM)


def test_received_crc_is_checked_even_when_this_side_sends_none() -> None:
    pair = open_pair(client_kwargs={"checksums": True})
    assert pair.send(CLIENT, Request(1, "o", "m")) == [Request(1, "o", "m")]


# -- limits -----------------------------------------------------------------------------


def test_max_in_flight_default_is_enforced_by_the_server() -> None:
    pair = open_pair()
    assert pair.client.peer_max_in_flight == DEFAULT_MAX_IN_FLIGHT
    requests = [
        raw_frame(MessageType.REQUEST, ["o", "m", [], None, None], i)
        for i in range(DEFAULT_MAX_IN_FLIGHT + 1)
    ]
    pair.server.receive_data(b"".join(requests[:-1]))
    assert len(events(pair.server)) == DEFAULT_MAX_IN_FLIGHT
    error = remote_error(pair.server, requests[-1], ErrorCode.TOO_MANY_IN_FLIGHT)
    assert str(DEFAULT_MAX_IN_FLIGHT) in str(error)


def test_answering_frees_an_in_flight_slot() -> None:
    pair = open_pair(server_kwargs={"max_in_flight": 1})
    pair.send(CLIENT, Request(1, "o", "m"))
    pair.send(SERVER, Reply(1, None))
    assert pair.send(CLIENT, Request(2, "o", "m")) == [Request(2, "o", "m")]


def test_client_never_exceeds_the_servers_limit() -> None:
    pair = open_pair(server_kwargs={"max_in_flight": 2})
    pair.send(CLIENT, Request(1, "o", "m"), Request(2, "o", "m"))
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(Request(3, "o", "m"))
    assert info.value.error_code_hint == ErrorCode.TOO_MANY_IN_FLIGHT


def test_duplicate_correlation_id() -> None:
    pair = open_pair()
    pair.send(CLIENT, Request(1, "o", "m"))
    remote_error(
        pair.server,
        raw_frame(MessageType.REQUEST, ["o", "m", [], None, None], 1),
        ErrorCode.DUPLICATE_CORRELATION_ID,
    )
    other = open_pair()
    other.client.send(Request(1, "o", "m"))
    with pytest.raises(LocalProtocolError) as info:
        other.client.send(Request(1, "o", "m"))
    assert info.value.error_code_hint == ErrorCode.DUPLICATE_CORRELATION_ID


def test_correlation_ids_use_the_full_unsigned_range() -> None:
    pair = open_pair()
    assert pair.send(CLIENT, Request(MAX_CORRELATION_ID, "o", "m")) == [
        Request(MAX_CORRELATION_ID, "o", "m")
    ]


def test_oversize_request_refused_from_the_header() -> None:
    pair = open_pair()
    header = HEADER.pack(
        MAGIC, PROTOCOL_VERSION, int(MessageType.REQUEST), 0, 0, 1, DEFAULT_MAX_FRAME_SIZE + 1
    )
    remote_error(pair.server, header, ErrorCode.FRAME_TOO_LARGE)


def test_oversize_reply_refused_by_the_client_from_the_header() -> None:
    pair = open_pair()
    pair.send(CLIENT, Request(1, "o", "m"))
    header = HEADER.pack(
        MAGIC, PROTOCOL_VERSION, int(MessageType.REPLY), 0, 0, 1, DEFAULT_CLIENT_MAX_FRAME_SIZE + 1
    )
    remote_error(pair.client, header, ErrorCode.FRAME_TOO_LARGE)


def test_configured_frame_size_limits() -> None:
    with pytest.raises(ValueError):
        Connection(SERVER, max_frame_size=MIN_MAX_FRAME_SIZE - 1)
    with pytest.raises(ValueError):
        Connection(SERVER, max_frame_size=MAX_MAX_FRAME_SIZE + 1)
    with pytest.raises(ValueError):
        Connection(SERVER, max_in_flight=0)
    with pytest.raises(ValueError):
        Connection(SERVER, max_in_flight=MAX_MAX_IN_FLIGHT + 1)
    with pytest.raises(TypeError):
        Connection(SERVER, identification="text")  # type: ignore[arg-type]


def test_sending_more_than_the_peer_accepts_changes_nothing() -> None:
    pair = open_pair(client_kwargs={"max_frame_size": MIN_MAX_FRAME_SIZE})
    pair.send(CLIENT, Request(1, "o", "m"))
    with pytest.raises(LocalProtocolError) as info:
        pair.server.send(Reply(1, "x" * MIN_MAX_FRAME_SIZE))
    assert info.value.error_code_hint == ErrorCode.FRAME_TOO_LARGE
    assert pair.server.state is State.OPEN and pair.server.is_in_flight(1)
    error = ErrorReply(1, "ProtocolError", "reply too large", [])
    assert pair.send(SERVER, error) == [error]


def test_a_request_larger_than_the_server_accepts_is_refused_locally() -> None:
    pair = open_pair(server_kwargs={"max_frame_size": MIN_MAX_FRAME_SIZE})
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(Request(1, "o", "m", ["x" * MIN_MAX_FRAME_SIZE]))
    assert info.value.error_code_hint == ErrorCode.FRAME_TOO_LARGE
    assert pair.client.state is State.OPEN and pair.client.in_flight == 0


def test_unencodable_values_change_nothing() -> None:
    pair = open_pair()
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(Request(1, "o", "m", [{1, 2}]))
    assert info.value.error_code_hint == ErrorCode.BAD_MESSAGE
    pair.send(CLIENT, Request(1, "o", "m"))
    for bad in ({1}, float("nan"), b"bytes"):
        with pytest.raises(LocalProtocolError):
            pair.server.reply(1, bad)
    assert pair.server.state is State.OPEN
    assert pair.send(SERVER, Reply(1, "fine")) == [Reply(1, "fine")]


# -- state errors -----------------------------------------------------------------------


def test_reply_to_a_request_that_is_not_in_flight() -> None:
    pair = open_pair()
    with pytest.raises(LocalProtocolError) as info:
        pair.server.send(Reply(4, None))
    assert info.value.error_code_hint == ErrorCode.UNEXPECTED_MESSAGE
    assert pair.server.state is State.ERROR
    other = open_pair()
    remote_error(other.client, raw_frame(MessageType.REPLY, 1, 4), ErrorCode.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize(
    ("role", "event"),
    [
        (SERVER, Request(1, "o", "m")),
        (SERVER, Oneway("o", "m")),
        (CLIENT, Reply(1, None)),
        (CLIENT, ErrorReply(1, "T", "m")),
    ],
)
def test_events_of_the_wrong_role_are_refused(role: Any, event: Any) -> None:
    pair = open_pair()
    with pytest.raises(LocalProtocolError):
        pair.conn(role).send(event)
    assert pair.conn(role).state is State.ERROR


def test_messages_of_the_wrong_direction_are_remote_errors() -> None:
    pair = open_pair()
    remote_error(
        pair.client,
        raw_frame(MessageType.REQUEST, ["o", "m", [], None, None], 1),
        ErrorCode.UNEXPECTED_MESSAGE,
    )
    pair = open_pair()
    remote_error(pair.server, raw_frame(MessageType.REPLY, None, 1), ErrorCode.UNEXPECTED_MESSAGE)
    pair = open_pair()
    challenge = {"nonce": "00" * 32, "auth": False, "server": "", "version": 1}
    remote_error(
        pair.client, raw_frame(MessageType.CHALLENGE, challenge), ErrorCode.UNEXPECTED_MESSAGE
    )


def test_client_cannot_send_before_the_challenge() -> None:
    client = Connection(CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Request(1, "o", "m"))


def test_after_an_error_only_one_goodbye_can_be_sent() -> None:
    pair = open_pair()
    remote_error(pair.server, b"garbage!" * 3, ErrorCode.BAD_MAGIC)
    with pytest.raises(RemoteProtocolError):
        pair.server.next_event()  # stays in ERROR
    with pytest.raises(LocalProtocolError):
        pair.server.send(Reply(1, None))
    goodbye = Goodbye(ErrorCode.BAD_MAGIC, "bad magic")
    pair.client.receive_data(pair.server.send(goodbye))
    assert pair.client.next_event() == goodbye
    assert pair.client.next_event() == ConnectionClosed()
    with pytest.raises(LocalProtocolError):
        pair.server.send(goodbye)


def test_send_failed_puts_the_connection_in_error() -> None:
    pair = open_pair()
    pair.client.send_failed()
    assert pair.client.state is State.ERROR


# -- closing ----------------------------------------------------------------------------


def test_end_of_file_is_connection_closed_for_ever() -> None:
    pair = open_pair()
    pair.server.receive_data(b"")
    assert pair.server.next_event() == ConnectionClosed()
    assert pair.server.next_event() == ConnectionClosed()
    pair.server.receive_data(b"")  # repeated EOF is harmless
    with pytest.raises(LocalProtocolError):
        pair.server.receive_data(b"more")


def test_end_of_file_inside_a_frame_is_truncation() -> None:
    pair = open_pair()
    data = pair.client.send(Request(1, "o", "m"))
    pair.server.receive_data(data[:-1])
    pair.server.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.error_code_hint == ErrorCode.TRUNCATED


def test_replies_may_still_be_sent_after_the_client_half_closed() -> None:
    pair = open_pair()
    pair.server.receive_data(pair.client.send(Request(1, "o", "m")))
    pair.server.receive_data(b"")
    assert events(pair.server) == [Request(1, "o", "m"), ConnectionClosed()]
    pair.client.receive_data(pair.server.send(Reply(1, "late")))
    assert pair.client.next_event() == Reply(1, "late")


def test_goodbye_from_either_side_closes() -> None:
    pair = open_pair()
    assert pair.send(CLIENT, Goodbye(ErrorCode.NORMAL, "bye")) == [
        Goodbye(ErrorCode.NORMAL, "bye"),
        ConnectionClosed(),
    ]
    assert pair.client.state is State.CLOSED and pair.server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.send(Request(1, "o", "m"))


def test_goodbye_in_the_handshake() -> None:
    pair = ConnectionPair()
    goodbye = Goodbye(ErrorCode.TOO_MANY_CONNECTIONS, "too many connections")
    assert pair.send(SERVER, goodbye) == [goodbye, ConnectionClosed()]
