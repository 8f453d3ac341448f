"""An order-independent digest of a set of entries, kept up to date in O(1) per change.

Each entry hashes to a 256-bit integer (BLAKE2b over an unambiguous, length-prefixed
encoding of every field); the digest of a set is the sum of its members' hashes modulo
2**256. Adding or replacing one entry is a subtraction and an addition, and two
replicas holding the same entries get the same digest whatever order they applied them
in. Floats are encoded with ``repr`` (exact round trip) and metadata as JSON with
sorted keys, so equal values always encode equally.
"""

from __future__ import annotations

import hashlib
import json

from pairns.namespace.entry import Entry

__all__ = ["DIGEST_MODULUS", "entry_hash", "format_digest"]

#: Digests are sums of entry hashes modulo this.
DIGEST_MODULUS = 1 << 256

_encode_meta = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=True
).encode


def _field(text: str) -> str:
    return f"{len(text)}:{text}"


def entry_hash(entry: Entry) -> int:
    """The 256-bit hash of one entry (every field counts)."""
    meta = "null" if entry.meta is None else _encode_meta(entry.meta)
    uri = "-" if entry.uri is None else _field(entry.uri)
    text = (
        f"{_field(entry.name)}|{int(entry.kind)}|{uri}|{entry.created!r}|{entry.modified!r}"
        f"|{_field(entry.owner)}|{entry.stamp.hlc}|{_field(entry.stamp.node)}"
        f"|{1 if entry.deleted else 0}|{meta}"
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=32).digest(), "big")


def format_digest(total: int) -> str:
    """The hex form of a digest sum (64 digits)."""
    return format(total % DIGEST_MODULUS, "064x")
