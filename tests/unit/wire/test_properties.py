"""Property tests: round trips of random values, and random bytes never crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.errors import RemoteProtocolError
from pairns.wire import (
    CLIENT,
    NEED_DATA,
    PAUSED,
    SERVER,
    Connection,
    ConnectionClosed,
    ErrorReply,
    Goodbye,
    Oneway,
    Reply,
    Request,
    State,
)
from pairns.wire.frames import MessageType, encode_frame, encode_json

from .helpers import ConnectionPair

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
short_text = st.text(max_size=30)
corr_ids = st.integers(min_value=0, max_value=2**32 - 1)


def open_pair() -> ConnectionPair:
    pair = ConnectionPair()
    pair.handshake()
    return pair


@settings(max_examples=100, deadline=None)
@given(
    corr_ids,
    short_text,
    short_text,
    st.lists(json_values, max_size=4),
    st.none()
    | st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=3),
    st.none() | short_text,
    json_values,
)
def test_request_and_reply_round_trip(
    corr_id: int,
    object_id: str,
    method: str,
    args: list[Any],
    kwargs: dict[str, Any] | None,
    request_id: str | None,
    value: Any,
) -> None:
    pair = open_pair()
    request = Request(corr_id, object_id, method, args, kwargs, request_id)
    assert pair.send(CLIENT, request) == [request]
    assert pair.send(SERVER, Reply(corr_id, value)) == [Reply(corr_id, value)]


@settings(max_examples=60, deadline=None)
@given(
    short_text,
    short_text,
    st.lists(json_values, max_size=4),
    corr_ids,
    short_text,
    short_text,
    st.lists(json_values, max_size=3),
)
def test_oneway_and_error_reply_round_trip(
    object_id: str,
    method: str,
    args: list[Any],
    corr_id: int,
    error_type: str,
    message: str,
    error_args: list[Any],
) -> None:
    pair = open_pair()
    oneway = Oneway(object_id, method, args)
    assert pair.send(CLIENT, oneway) == [oneway]
    pair.send(CLIENT, Request(corr_id, object_id, method))
    error = ErrorReply(corr_id, error_type, message, error_args)
    assert pair.send(SERVER, error) == [error]


def drain(conn: Connection) -> None:
    """Read events until the connection wants more data, closes or fails: must end."""
    for _ in range(10_000):
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
            return
        if type(event) is Goodbye or conn.state is State.CLOSED:
            continue
    raise AssertionError("next_event never stopped producing events")


def feed_garbage(conn: Connection, chunks: list[bytes], eof: bool) -> None:
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            drain(conn)
        if eof:
            conn.receive_data(b"")
            drain(conn)
    except RemoteProtocolError as exc:
        assert conn.state is State.ERROR
        assert isinstance(exc.error_code_hint, int)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=6), st.booleans())
def test_random_bytes_never_raise_anything_but_remote_protocol_error(
    chunks: list[bytes], eof: bool
) -> None:
    server = Connection(SERVER)
    server.send(server.challenge())
    feed_garbage(server, chunks, eof)
    feed_garbage(open_pair().server, chunks, eof)
    feed_garbage(open_pair().client, chunks, eof)


@st.composite
def plausible_frames(draw: st.DrawFn) -> bytes:
    """Frames with a valid header but random types, ids and (mostly JSON) bodies."""
    msg_type = draw(st.sampled_from([int(t) for t in MessageType]))
    body = encode_json(draw(json_values)) if draw(st.booleans()) else draw(st.binary(max_size=40))
    return encode_frame(msg_type, draw(corr_ids), body, draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(st.lists(plausible_frames(), min_size=1, max_size=5), st.data())
def test_plausible_frames_and_truncations_never_crash(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frames)
    cut = data.draw(st.integers(min_value=1, max_value=len(stream)))
    for conn in (open_pair().server, open_pair().client):
        feed_garbage(conn, [stream[:cut]], eof=data.draw(st.booleans()))
