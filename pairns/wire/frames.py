"""The frame codec: fixed binary header, optional CRC32, UTF-8 JSON body.

A frame is::

    +-------+---------+------+-------+----------+---------+-------------+
    | magic | version | type | flags | reserved | corr id | body length |   ``!2sBBBBII``
    | b"PN" |    1    |  u8  |  u8   |    0     |   u32   |     u32     |   (14 bytes)
    +-------+---------+------+-------+----------+---------+-------------+
    [ CRC32 of the body, u32, only when flags & FLAG_CRC ]
    [ body: UTF-8 JSON, body-length bytes ]

This module knows nothing about what the bodies mean (see :mod:`pairns.wire.events`)
nor about connection state (see :mod:`pairns.wire.connection`). It never unpickles or
evaluates anything: bodies are decoded with the stdlib JSON decoder only.
"""

from __future__ import annotations

import enum
import json
import json.encoder
import json.scanner
import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

from pairns.errors import RemoteProtocolError
from pairns.wire.limits import (
    CRC_SIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_JSON_DEPTH,
    PROTOCOL_VERSION,
    ErrorCode,
)

__all__ = [
    "FLAG_CRC",
    "HEADER",
    "FrameDecoder",
    "MessageType",
    "decode_json",
    "encode_frame",
    "encode_json",
    "json_depth_exceeds",
]


class MessageType(enum.IntEnum):
    """The message type byte of the frame header."""

    CHALLENGE = 1
    RESPONSE = 2
    WELCOME = 3
    DENIED = 4
    REQUEST = 16
    ONEWAY = 17
    REPLY = 18
    ERROR_REPLY = 19
    GOODBYE = 31


#: Flag bit: a CRC32 of the body follows the header.
FLAG_CRC: Final = 0x01

#: The header layout; one pre-compiled struct shared by every connection.
HEADER: Final = struct.Struct("!2sBBBBII")
assert HEADER.size == HEADER_SIZE

_CRC: Final = struct.Struct("!I")
_KNOWN_TYPES: Final = frozenset(int(t) for t in MessageType)
_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack
_pack_crc = _CRC.pack
_unpack_crc = _CRC.unpack_from
_crc32 = zlib.crc32


# -- JSON -------------------------------------------------------------------------------


def _unserialisable(value: object) -> Any:
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent (not JSON)")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_ENCODER = json.JSONEncoder(
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    check_circular=False,
    default=_unserialisable,
)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _make_fast_encode() -> Callable[[Any], str] | None:
    """The C encoder built once, instead of once per call as ``JSONEncoder.encode`` does.

    ``JSONEncoder.encode`` builds a fresh C encoder object on every call, which costs
    more than encoding a small request. ``json.encoder.c_make_encoder`` is not a public
    API, so this checks that it behaves exactly like ``_ENCODER`` and gives up (returns
    None) when it is missing or different.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    try:
        c_encode = make(None, _unserialisable, basestring, None, ":", ",", False, False, False)

        def fast(value: Any) -> str:
            return "".join(c_encode(value, 0))

        sample = ['é\x00"', 1, 2.5, None, True, {"k": [1, {"a": "b"}]}, (3,)]
        if fast(sample) != _ENCODER.encode(sample):
            return None
        try:
            fast(float("nan"))
        except ValueError:
            return fast
        return None
    except Exception:
        return None


_fast_encode = _make_fast_encode()
_encode_str: Callable[[Any], str] = _fast_encode if _fast_encode is not None else _ENCODER.encode


def encode_json(value: Any) -> bytes:
    """Encode *value* as compact UTF-8 JSON.

    Raises ``TypeError`` for values that are not JSON (sets, bytes, objects),
    ``ValueError`` for NaN/infinity or lone surrogates, ``RecursionError`` for cyclic
    or absurdly deep values.
    """
    return _encode_str(value).encode("utf-8")


def _make_scan() -> Callable[[str, int], tuple[Any, int]]:
    """The decoder's scanner, called directly (``JSONDecoder.decode`` adds two regex
    whitespace matches per call); the C one when available."""
    make: Any = getattr(json.scanner, "c_make_scanner", None) or json.scanner.make_scanner
    scan: Callable[[str, int], tuple[Any, int]] = make(_DECODER)
    return scan


_scan = _make_scan()
_decode_full = _DECODER.decode


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when *value* nests lists/dicts more than *limit* levels deep (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth = pop()
        if type(item) is list:
            children: Any = item
        elif type(item) is dict:
            children = item.values()
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        for child in children:
            if type(child) is list or type(child) is dict:
                push((child, depth))
    return False


def decode_json(body: bytes | bytearray) -> Any:
    """Decode one UTF-8 JSON body, strictly.

    Raises :class:`RemoteProtocolError` with ``BAD_ENCODING`` for invalid UTF-8 or JSON
    (including NaN/Infinity and trailing garbage) and ``TOO_DEEP`` for nesting beyond
    :data:`~pairns.wire.limits.MAX_JSON_DEPTH`.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"frame body is not valid UTF-8: {exc}", ErrorCode.BAD_ENCODING)
    try:
        try:
            value, end = _scan(text, 0)
            if end != len(text):
                raise StopIteration(end)
        except StopIteration:
            # Leading/trailing whitespace, trailing garbage or invalid JSON: let the full
            # decoder accept the first or produce a precise message for the others.
            value = _decode_full(text)
    except RecursionError:
        raise RemoteProtocolError(
            f"frame body nests deeper than {MAX_JSON_DEPTH} levels", ErrorCode.TOO_DEEP
        )
    except ValueError as exc:
        raise RemoteProtocolError(f"frame body is not valid JSON: {exc}", ErrorCode.BAD_ENCODING)
    # Cheap guards first: nesting needs one bracket per level, and so a body longer
    # than the limit (most requests are shorter).
    if (
        len(body) > MAX_JSON_DEPTH
        and body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
        and json_depth_exceeds(value, MAX_JSON_DEPTH)
    ):
        raise RemoteProtocolError(
            f"frame body nests deeper than {MAX_JSON_DEPTH} levels", ErrorCode.TOO_DEEP
        )
    return value


# -- frames -----------------------------------------------------------------------------


def encode_frame(msg_type: int, corr_id: int, body: bytes, checksum: bool = False) -> bytes:
    """The bytes of one frame (header, optional CRC32, body)."""
    if checksum:
        return (
            _pack_header(MAGIC, PROTOCOL_VERSION, msg_type, FLAG_CRC, 0, corr_id, len(body))
            + _pack_crc(_crc32(body))
            + body
        )
    return _pack_header(MAGIC, PROTOCOL_VERSION, msg_type, 0, 0, corr_id, len(body)) + body


class FrameDecoder:
    """Splits a byte stream into frames and decodes their JSON bodies.

    Bytes are appended to one ``bytearray``; frames are read at an offset into it and the
    consumed prefix is dropped once per :meth:`feed` (or at once when everything was
    consumed), so a chunk holding many frames is parsed without quadratic copying. The
    header is checked as soon as it is complete, before any of the body is waited for,
    so an oversized frame is refused without buffering it.
    """

    __slots__ = ("_buf", "_eof", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as frames."""
        return len(self._buf) - self._pos

    @property
    def eof(self) -> bool:
        """True once :meth:`feed_eof` was called."""
        return self._eof

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def feed_eof(self) -> None:
        """Record that the peer will send nothing more."""
        self._eof = True

    def next_frame(self, max_body: int) -> tuple[int, int, Any] | None:
        """The next complete frame as ``(message type, correlation id, JSON value)``.

        Returns None while the frame is incomplete. Raises :class:`RemoteProtocolError`
        for a bad header, a body longer than *max_body*, a CRC mismatch or a body that
        is not valid JSON (a wrong magic is reported as soon as its first byte
        arrives). After an error the decoder's position is unspecified: the connection
        using it is finished.
        """
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if size - pos < HEADER_SIZE:
            if size > pos and not MAGIC.startswith(buf[pos : pos + 2]):
                raise RemoteProtocolError(
                    f"bad frame magic {bytes(buf[pos : pos + 2])!r}", ErrorCode.BAD_MAGIC
                )
            return None
        magic, version, msg_type, flags, reserved, corr_id, length = _unpack_header(buf, pos)
        if magic != MAGIC:
            raise RemoteProtocolError(f"bad frame magic {magic!r}", ErrorCode.BAD_MAGIC)
        if version != PROTOCOL_VERSION:
            raise RemoteProtocolError(
                f"unsupported protocol version {version} (this side speaks {PROTOCOL_VERSION})",
                ErrorCode.UNSUPPORTED_VERSION,
            )
        if flags & ~FLAG_CRC or reserved:
            raise RemoteProtocolError(
                f"bad frame header (flags {flags:#x}, reserved {reserved})", ErrorCode.BAD_HEADER
            )
        if msg_type not in _KNOWN_TYPES:
            raise RemoteProtocolError(
                f"unknown message type {msg_type}", ErrorCode.UNKNOWN_MESSAGE_TYPE
            )
        if length > max_body:
            raise RemoteProtocolError(
                f"frame of {length} bytes exceeds the limit of {max_body} bytes",
                ErrorCode.FRAME_TOO_LARGE,
            )
        start = pos + HEADER_SIZE
        if flags:
            start += CRC_SIZE
        end = start + length
        if end > size:
            return None
        body = buf[start:end]
        if flags:
            (expected,) = _unpack_crc(buf, start - CRC_SIZE)
        if end == size:
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
        if flags and _crc32(body) != expected:
            raise RemoteProtocolError(
                f"frame body does not match its CRC32 ({length} bytes)", ErrorCode.BAD_CHECKSUM
            )
        return msg_type, corr_id, decode_json(body)
