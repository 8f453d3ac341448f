"""The frame codec on its own: header checks, CRC, JSON strictness, splitting."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest

from pairns.errors import RemoteProtocolError
from pairns.wire.frames import (
    FLAG_CRC,
    HEADER,
    FrameDecoder,
    MessageType,
    decode_json,
    encode_frame,
    encode_json,
    json_depth_exceeds,
)
from pairns.wire.limits import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_JSON_DEPTH,
    PROTOCOL_VERSION,
    ErrorCode,
)

REQ = int(MessageType.REQUEST)
BODY = ["obj", "resolve", [":Default.x", 1, 2.5, None, True, {"k": "é"}], None, "rid-1"]

SAMPLES = [
    encode_frame(REQ, 7, encode_json(BODY)),
    encode_frame(REQ, 0xFFFF_FFFF, encode_json(BODY), checksum=True),
    encode_frame(int(MessageType.REPLY), 3, encode_json("x" * 5000)),
    encode_frame(int(MessageType.REPLY), 3, encode_json(None)),
]


def decode_all(data: bytes, max_body: int = DEFAULT_MAX_FRAME_SIZE) -> list[tuple[int, int, Any]]:
    decoder = FrameDecoder()
    decoder.feed(data)
    out = []
    while (frame := decoder.next_frame(max_body)) is not None:
        out.append(frame)
    assert decoder.buffered == 0
    return out


def fail(data: bytes, code: ErrorCode, max_body: int = DEFAULT_MAX_FRAME_SIZE) -> str:
    decoder = FrameDecoder()
    decoder.feed(data)
    with pytest.raises(RemoteProtocolError) as info:
        while decoder.next_frame(max_body) is not None:
            pass
    assert info.value.error_code_hint == code
    return str(info.value)


def test_header_layout_is_the_documented_one() -> None:
    frame = encode_frame(REQ, 0x01020304, b"[]")
    assert HEADER.size == HEADER_SIZE == 14
    assert frame == b"PN" + bytes([PROTOCOL_VERSION, REQ, 0, 0]) + b"\x01\x02\x03\x04" + (
        b"\x00\x00\x00\x02[]"
    )


def test_crc_frame_carries_the_crc_after_the_header() -> None:
    frame = encode_frame(REQ, 1, b"[1]", checksum=True)
    assert frame[4] == FLAG_CRC
    assert frame[HEADER_SIZE : HEADER_SIZE + 4] == struct.pack("!I", zlib.crc32(b"[1]"))
    assert frame.endswith(b"[1]")


@pytest.mark.parametrize("frame", SAMPLES)
def test_sample_whole(frame: bytes) -> None:
    ((_, corr_id, value),) = decode_all(frame)
    assert value == json.loads(frame[-struct.unpack("!I", frame[10:14])[0] :])
    assert corr_id == struct.unpack("!I", frame[6:10])[0]


@pytest.mark.parametrize("frame", SAMPLES)
def test_sample_split_at_every_offset(frame: bytes) -> None:
    expected = decode_all(frame)
    for cut in range(1, len(frame)):
        decoder = FrameDecoder()
        decoder.feed(frame[:cut])
        assert decoder.next_frame(DEFAULT_MAX_FRAME_SIZE) is None
        decoder.feed(frame[cut:])
        assert [decoder.next_frame(DEFAULT_MAX_FRAME_SIZE)] == expected
        assert decoder.next_frame(DEFAULT_MAX_FRAME_SIZE) is None


@pytest.mark.parametrize("frame", SAMPLES)
def test_sample_byte_by_byte_then_trailing_bytes_stay(frame: bytes) -> None:
    decoder = FrameDecoder()
    got = []
    for i in range(len(frame)):
        decoder.feed(frame[i : i + 1])
        if (f := decoder.next_frame(DEFAULT_MAX_FRAME_SIZE)) is not None:
            got.append(f)
    assert got == decode_all(frame)
    decoder.feed(frame + frame[:5])
    assert decoder.next_frame(DEFAULT_MAX_FRAME_SIZE) == got[0]
    assert decoder.next_frame(DEFAULT_MAX_FRAME_SIZE) is None
    assert decoder.buffered == 5


def test_many_frames_in_one_chunk() -> None:
    frames = [encode_frame(REQ, i, encode_json(["o", "m", [i], None, None])) for i in range(500)]
    got = decode_all(b"".join(frames))
    assert [corr for _, corr, _ in got] == list(range(500))


def test_bad_magic_is_reported_from_the_first_byte() -> None:
    assert "magic" in fail(b"G", ErrorCode.BAD_MAGIC)
    fail(b"PX", ErrorCode.BAD_MAGIC)
    fail(b"GET / HTTP/1.1\r\n\r\n", ErrorCode.BAD_MAGIC)


def test_a_magic_prefix_waits_for_more() -> None:
    decoder = FrameDecoder()
    decoder.feed(MAGIC[:1])
    assert decoder.next_frame(100) is None


def test_unsupported_version() -> None:
    frame = bytearray(SAMPLES[0])
    frame[2] = PROTOCOL_VERSION + 1
    assert "version" in fail(bytes(frame), ErrorCode.UNSUPPORTED_VERSION)


def test_unknown_flags_and_reserved_byte() -> None:
    frame = bytearray(SAMPLES[0])
    frame[4] = 0x02
    fail(bytes(frame), ErrorCode.BAD_HEADER)
    frame = bytearray(SAMPLES[0])
    frame[5] = 1
    fail(bytes(frame), ErrorCode.BAD_HEADER)


def test_unknown_message_type() -> None:
    frame = bytearray(SAMPLES[0])
    frame[3] = 99
    fail(bytes(frame), ErrorCode.UNKNOWN_MESSAGE_TYPE)


def test_oversize_frame_is_refused_from_its_header_alone() -> None:
    header = HEADER.pack(MAGIC, PROTOCOL_VERSION, REQ, 0, 0, 1, DEFAULT_MAX_FRAME_SIZE + 1)
    # Only the header was fed: the body was never waited for.
    assert "exceeds" in fail(header, ErrorCode.FRAME_TOO_LARGE)


def test_frame_at_the_default_size_limit_is_accepted() -> None:
    body = encode_json("x" * (DEFAULT_MAX_FRAME_SIZE - 2))
    assert len(body) == DEFAULT_MAX_FRAME_SIZE
    ((_, _, value),) = decode_all(encode_frame(int(MessageType.REPLY), 1, body))
    assert len(value) == DEFAULT_MAX_FRAME_SIZE - 2


def test_bad_crc() -> None:
    frame = bytearray(SAMPLES[1])
    frame[-3] ^= 0x01
    fail(bytes(frame), ErrorCode.BAD_CHECKSUM)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe[]", b"[1,", b"[1] x", b"NaN", b"[Infinity]", b"", b"{'a': 1}", b'"\xed\xa0\x80"'],
)
def test_invalid_encoding_or_json(body: bytes) -> None:
    fail(encode_frame(REQ, 1, body), ErrorCode.BAD_ENCODING)


def test_whitespace_around_json_is_accepted() -> None:
    assert decode_json(b" \n[1, 2] \t") == [1, 2]


def test_json_depth_limit() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert decode_json(ok.encode()) is not None
    too_deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    fail(encode_frame(REQ, 1, too_deep.encode()), ErrorCode.TOO_DEEP)
    mixed = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    fail(encode_frame(REQ, 1, mixed.encode()), ErrorCode.TOO_DEEP)


def test_json_nesting_that_would_overflow_the_stack_is_a_clean_error() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    fail(encode_frame(REQ, 1, body), ErrorCode.TOO_DEEP)


def test_many_brackets_but_shallow_is_fine() -> None:
    value = [[i] for i in range(MAX_JSON_DEPTH * 3)]
    assert decode_json(encode_json(value)) == value
    assert not json_depth_exceeds(value, 2)
    assert json_depth_exceeds(value, 1)


def test_encode_json_is_compact_and_strict() -> None:
    assert encode_json({"a": [1, "é", None]}) == '{"a":[1,"é",null]}'.encode()
    for bad in (float("nan"), {1, 2}, b"bytes", object()):
        with pytest.raises((TypeError, ValueError)):
            encode_json(bad)
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises((RecursionError, ValueError)):
        encode_json(cyclic)
