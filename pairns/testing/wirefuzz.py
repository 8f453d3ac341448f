"""Fuzz inputs for the wire protocol: plausible frames and their mutations (no IO).

The live fuzz test (``tests/integration/test_fuzz.py``) sends these to a real node, and
``make fuzz`` (``tests/fuzz/atheris_codec.py``) seeds its corpus with them. Every input
comes from a :class:`random.Random`, so a run is repeated exactly from its seed.

* :func:`valid_frame` - a frame a client may send once the handshake is done: requests
  and oneways to the name server (and to objects that do not exist) with random
  arguments, plus frames a client must never send (replies, challenges, goodbyes).
* :func:`mutate` - one of a dozen damages: bit flips, a wrong length, a truncation,
  trailing garbage, a bad CRC, deep nesting, invalid UTF-8, spliced frames, ...
* :func:`fuzz_frame` - either, or plain random bytes.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from typing import Any, Final

from pairns.wire.frames import FLAG_CRC, HEADER, MessageType, encode_frame
from pairns.wire.limits import MAGIC, PROTOCOL_VERSION

__all__ = ["MUTATIONS", "fuzz_frame", "mutate", "random_json", "valid_frame"]

#: The name server's methods, and a few that do not exist or are private.
METHODS: Final = (
    "ping", "resolve", "list", "flatlist", "getMeta", "getSystemMeta", "dump", "register",
    "unregister", "createGroup", "deleteGroup", "setMeta", "status", "twin", "fullName",
    "resync", "load", "adminChallenge", "_private", "__init__", "nosuchmethod", "",
)  # fmt: skip

#: Object ids: the name server, the daemon's own object, the peer endpoint, unknown ones.
OBJECTS: Final = (
    "Pyro.NameServer", "Pyro.NameServer", "Pyro.NameServer", "__daemon__",
    "Pyro.NameServer.Peer", "nosuchobject", "", "a/b", "x" * 300,
)  # fmt: skip


def random_text(rng: random.Random, limit: int = 40) -> str:
    """A short string: names, garbage, Unicode (with surrogates escaped away)."""
    kind = rng.randrange(5)
    if kind == 0:
        return ":" + ".".join(
            "".join(rng.choice("abcXYZ019-_") for _ in range(rng.randrange(1, 8)))
            for _ in range(rng.randrange(1, 4))
        )
    if kind == 1:
        return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(limit)))
    if kind == 2:
        return "".join(chr(rng.randrange(0x80, 0x2FFF)) for _ in range(rng.randrange(limit)))
    if kind == 3:
        return f"PYRO://h{rng.randrange(100)}:{rng.randrange(70000)}/o{rng.randrange(1000)}"
    return ""


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, at most a few levels deep."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, -1, 1, 2**31, -(2**63), 2**64, 10**30, rng.randrange(-1000, 1000)))
    if kind == 3:
        return rng.choice((0.5, -1e308, 1e-308, rng.random()))
    if kind in (4, 5):
        return random_text(rng)
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_text(rng, 8): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _corr(rng: random.Random) -> int:
    return rng.choice((0, 1, 2, 0xFFFF_FFFF, rng.randrange(2**32)))


def valid_frame(rng: random.Random) -> bytes:
    """A well-formed frame (well-formed on the wire; not always allowed or sensible)."""
    kind = rng.randrange(10)
    corr = _corr(rng)
    checksum = rng.random() < 0.2
    if kind < 6:
        args = [random_json(rng) for _ in range(rng.randrange(4))]
        kwargs = None if rng.random() < 0.8 else {random_text(rng, 8): random_json(rng)}
        rid = None if rng.random() < 0.7 else random_text(rng, 40)
        body = [rng.choice(OBJECTS), rng.choice(METHODS), args, kwargs, rid]
        return encode_frame(MessageType.REQUEST, corr, _dumps(body), checksum)
    if kind < 8:
        args = [random_json(rng) for _ in range(rng.randrange(3))]
        body = [rng.choice(OBJECTS), rng.choice(METHODS), args, None]
        return encode_frame(MessageType.ONEWAY, corr, _dumps(body), checksum)
    # Types a client never sends, with plausible bodies.
    msg_type = rng.choice(list(MessageType))
    return encode_frame(msg_type, corr, _dumps(random_json(rng)), checksum)


def _dumps(value: Any) -> bytes:
    # ASCII-escaped: valid UTF-8 whatever the text (the mutations make invalid bodies).
    return json.dumps(value).encode("ascii")


# -- mutations ----------------------------------------------------------------------------


def _flip_bits(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 9)):
        if data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _set_byte(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    if data:
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _wrong_length(rng: random.Random, frame: bytes) -> bytes:
    if len(frame) < HEADER.size:
        return frame
    length = rng.choice((0, 1, len(frame), 2**20, 2**20 + 1, 2**31, 2**32 - 1, rng.randrange(2**32)))  # noqa: E501
    return frame[:10] + struct.pack("!I", length) + frame[14:]


def _truncate(rng: random.Random, frame: bytes) -> bytes:
    return frame[: rng.randrange(len(frame) + 1)]


def _trailing(rng: random.Random, frame: bytes) -> bytes:
    return frame + rng.randbytes(rng.randrange(1, 64))


def _header_field(rng: random.Random, frame: bytes) -> bytes:
    """A wrong magic, version, type, flags or reserved byte."""
    if len(frame) < HEADER.size:
        return frame
    data = bytearray(frame)
    i = rng.randrange(6)
    data[i] = rng.randrange(256)
    return bytes(data)


def _bad_crc(rng: random.Random, frame: bytes) -> bytes:
    if len(frame) < HEADER.size:
        return frame
    body = frame[HEADER.size + (4 if frame[5] & FLAG_CRC else 0) :]
    header = bytearray(frame[: HEADER.size])
    header[5] = FLAG_CRC
    return bytes(header) + rng.randbytes(4) + body


def _deep(rng: random.Random, frame: bytes) -> bytes:
    depth = rng.choice((63, 64, 65, 200, 5000))
    body = b"[" * depth + b"]" * depth
    return encode_frame(MessageType.REQUEST, _corr(rng), body)


def _bad_utf8(rng: random.Random, frame: bytes) -> bytes:
    body = b'["Pyro.NameServer", "resolve", ["\xff\xfe\xc3\x28"], null, null]'
    return encode_frame(MessageType.REQUEST, _corr(rng), body)


def _not_json(rng: random.Random, frame: bytes) -> bytes:
    body = rng.choice(
        (b"", b"{", b"NaN", b"[1,]", b'"\\ud800"', b"1e99999", b"[" + b"1," * 1000 + b"1]")
    )
    return encode_frame(rng.choice(list(MessageType)), _corr(rng), body)


def _splice(rng: random.Random, frame: bytes) -> bytes:
    other = valid_frame(rng)
    cut = rng.randrange(len(frame) + 1)
    return frame[:cut] + other[rng.randrange(len(other) + 1) :]


def _duplicate(rng: random.Random, frame: bytes) -> bytes:
    return frame * rng.randrange(2, 5)


#: Every mutation, each ``(rng, frame) -> bytes``.
MUTATIONS: Final[tuple[Callable[[random.Random, bytes], bytes], ...]] = (
    _flip_bits,
    _set_byte,
    _wrong_length,
    _truncate,
    _trailing,
    _header_field,
    _bad_crc,
    _deep,
    _bad_utf8,
    _not_json,
    _splice,
    _duplicate,
)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """*frame* damaged by one or two random mutations."""
    for _ in range(rng.randrange(1, 3)):
        frame = rng.choice(MUTATIONS)(rng, frame)
    return frame


def fuzz_frame(rng: random.Random) -> bytes:
    """One fuzz input: a valid frame (30%), a mutated one (60%) or random bytes (10%)."""
    roll = rng.random()
    if roll < 0.3:
        return valid_frame(rng)
    if roll < 0.9:
        return mutate(rng, valid_frame(rng))
    header = MAGIC + bytes([PROTOCOL_VERSION]) if rng.random() < 0.5 else b""
    return header + rng.randbytes(rng.randrange(1, 200))
