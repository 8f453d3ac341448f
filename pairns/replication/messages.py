"""The messages of the peer protocol, as frozen values with a JSON form (no IO here).

The link rides on the rpc layer (see :mod:`pairns.replication.link` for the topology).
Three messages exist:

* :class:`Hello` - each side's identity and what it already has of the other's feed.
* :class:`Batch` - changes from the sender's feed above a position, the sender's
  cumulative acknowledgement of the receiver's feed, and the request ids (with their
  results) of the writes those changes came from. An empty batch is a heartbeat.
* Refusals travel as :class:`~pairns.errors.NamingError` replies to ``hello``.

Everything the twin sends is parsed here, once, by the ``from_wire`` constructors, which
raise ``ValueError`` for anything a pairns node does not send (the link then drops).
"""

from __future__ import annotations

import gc
import json
from typing import Any

import attrs

from pairns.namespace import ZERO_STAMP, Entry, Kind, Stamp

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "PROTOCOL_VERSION",
    "Batch",
    "Hello",
    "Item",
    "RequestRecord",
    "estimate_size",
]

#: Bumped when the messages change incompatibly; twins with different versions refuse.
PROTOCOL_VERSION = 1

#: Most entries one batch carries: big enough that a 100,000-name snapshot is fifty
#: messages, small enough that merging one (tens of milliseconds) does not hold up
#: the clients of the receiving node for long.
MAX_BATCH_ENTRIES = 2000

#: Rough upper bound of one batch's JSON size (the default frame limit is 1 MiB; a batch
#: of entries with large metadata is cut early so it always fits).
MAX_BATCH_BYTES = 512 * 1024


_KINDS = {int(kind): kind for kind in Kind}

#: Largest ``changes`` text accepted (the frame limit bounds it anyway; this says so).
MAX_CHANGES_TEXT = 64 * 1024 * 1024

#: ``changes`` texts at least this long are parsed with the cyclic collector paused.
_GC_PAUSE_TEXT = 32 * 1024

_encode_changes = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


@attrs.frozen
class Hello:
    """The first message of a link, sent by both sides.

    ``applied`` is the position in the *receiver's* feed that the sender has durably
    applied, valid only if ``expect`` (the node id the sender believes the receiver
    has) is the receiver's id; otherwise the receiver starts from 0 (a full snapshot).
    ``full`` asks for (or, in a reply, announces) a full resync in both directions;
    ``probe`` only checks that pairing is possible (the ``-1`` node's diagnostics).
    """

    node_id: str
    role: int
    applied: int
    expect: str
    full: bool = False
    probe: bool = False
    version: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "node_id": self.node_id,
            "role": self.role,
            "applied": self.applied,
            "expect": self.expect,
            "full": self.full,
            "probe": self.probe,
            "version": self.version,
        }

    @classmethod
    def from_wire(cls, value: Any) -> Hello:
        """Parse the JSON form (raises ``ValueError``)."""
        if not isinstance(value, dict):
            raise ValueError(f"invalid hello: {value!r}")
        role = _int(value.get("role"), "role")
        if role not in (1, 2):
            raise ValueError(f"invalid role in hello: {role!r}")
        return cls(
            node_id=_str(value.get("node_id"), "node id"),
            role=role,
            applied=_int(value.get("applied"), "position"),
            expect=_str(value.get("expect", ""), "node id"),
            full=bool(value.get("full", False)),
            probe=bool(value.get("probe", False)),
            version=_int(value.get("version"), "protocol version"),
        )


@attrs.frozen
class Item:
    """One change: its position in the sender's feed, the entry and its knowledge."""

    seq: int
    entry: Entry
    seen: Stamp = ZERO_STAMP

    def to_wire(self) -> list[Any]:
        """The JSON form: ``[seq, entry, seen]``."""
        return [self.seq, self.entry.to_wire(), self.seen.to_wire()]

    @classmethod
    def from_wire(cls, value: Any) -> Item:
        """Parse the JSON form (raises ``ValueError``).

        The hot path of a resync (100,000 of these for a 100,000-name snapshot): every
        field is checked here, inline, then the values are built directly.
        """
        try:
            seq, raw, seen = value
            name, kind, uri, meta, created, modified, owner, hlc, node, deleted = raw
            seen_hlc, seen_node = seen
        except (TypeError, ValueError):
            raise ValueError(f"invalid change: {value!r}") from None
        if (
            type(seq) is not int
            or seq < 0
            or type(name) is not str
            or type(owner) is not str
            or type(node) is not str
            or type(seen_node) is not str
            or type(hlc) is not int
            or hlc < 0
            or type(seen_hlc) is not int
            or seen_hlc < 0
            or (uri is not None and type(uri) is not str)
            or type(deleted) is not bool
            or type(created) not in (int, float)
            or type(modified) not in (int, float)
        ):
            raise ValueError(f"invalid change: {value!r}")
        entry = Entry(
            name,
            _KINDS[kind] if kind in _KINDS else Kind(kind),
            uri,
            meta,
            float(created),
            float(modified),
            owner,
            Stamp(hlc, node),
            deleted,
        )
        return cls(seq, entry, Stamp(seen_hlc, seen_node) if seen_hlc else ZERO_STAMP)


@attrs.frozen
class RequestRecord:
    """A client request id, the result its write returned, and its age in seconds."""

    request_id: str
    result: Any
    age: float = 0.0

    def to_wire(self) -> list[Any]:
        """The JSON form: ``[request id, result, age]``."""
        return [self.request_id, self.result, round(self.age, 3)]

    @classmethod
    def from_wire(cls, value: Any) -> RequestRecord:
        """Parse the JSON form (raises ``ValueError``)."""
        if type(value) is not list or len(value) != 3:
            raise ValueError(f"invalid request record: {value!r}")
        request_id, result, age = value
        if (type(age) is not float and type(age) is not int) or age < 0:
            raise ValueError(f"invalid request record age: {value!r}")
        if type(request_id) is not str or len(request_id) > 256:
            raise ValueError(f"invalid request id: {request_id!r}")
        return cls(request_id, result, float(age))


@attrs.frozen
class Batch:
    """Changes of the sender's feed in ``(start, upto]`` plus a cumulative ack.

    ``start`` must equal what the receiver has applied (else the batch is refused: the
    link resyncs); after applying, the receiver's position is ``upto``. ``ack`` is the
    highest position of the *receiver's* feed the sender has durably applied.
    """

    start: int
    upto: int
    ack: int
    items: tuple[Item, ...] = ()
    requests: tuple[RequestRecord, ...] = ()
    #: False when the sender has nothing more to send right now (it reached its end).
    more: bool = False

    @property
    def is_heartbeat(self) -> bool:
        """True if the batch carries nothing but positions."""
        return not self.items and not self.requests and self.upto == self.start

    def to_wire(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {"start": self.start, "upto": self.upto, "ack": self.ack}
        if self.more:
            out["more"] = True
        if self.items:
            # The changes travel as one JSON text inside the frame: the frame decoder
            # then sees one string instead of walking four nested values per change,
            # and the C codec does the work on both sides (Item.from_wire still
            # checks every change).
            # Item.to_wire written out inline (a resync encodes 100,000 of these).
            changes = []
            for item in self.items:
                e, st, seen = item.entry, item.entry.stamp, item.seen
                wire = [e.name, int(e.kind), e.uri, e.meta, e.created, e.modified, e.owner]
                wire += (st.hlc, st.node, e.deleted)
                changes.append([item.seq, wire, [seen.hlc, seen.node]])
            out["changes"] = _encode_changes(changes)
        if self.requests:
            out["requests"] = [[r.request_id, r.result, round(r.age, 3)] for r in self.requests]
        return out

    @classmethod
    def from_wire(cls, value: Any) -> Batch:
        """Parse the JSON form (raises ``ValueError``)."""
        if not isinstance(value, dict):
            raise ValueError(f"invalid batch: {value!r}")
        start = _int(value.get("start"), "batch start")
        upto = _int(value.get("upto"), "batch end")
        if upto < start:
            raise ValueError(f"batch ends before it starts: {start}..{upto}")
        changes = value.get("changes", "[]")
        requests_raw = value.get("requests", [])
        if not isinstance(changes, str) or not isinstance(requests_raw, list):
            raise ValueError("invalid batch contents")
        if len(changes) > MAX_CHANGES_TEXT:
            raise ValueError("batch too large")
        # A resync batch makes a dozen objects per change, all kept: pausing the cyclic
        # collector meanwhile (as Namespace.load does) saves it rescanning them.
        gc_paused = len(changes) >= _GC_PAUSE_TEXT and gc.isenabled()
        if gc_paused:
            gc.disable()
        try:
            items_raw = json.loads(changes)
            if not isinstance(items_raw, list):
                raise ValueError("invalid batch changes")
            items = tuple([Item.from_wire(v) for v in items_raw])
        except RecursionError as exc:
            raise ValueError(f"invalid batch changes: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid batch changes: {exc}") from None
        finally:
            if gc_paused:
                gc.enable()
        for item in items:
            if not start < item.seq <= upto:
                raise ValueError(f"change {item.seq} outside its batch {start}..{upto}")
        return cls(
            start=start,
            upto=upto,
            ack=_int(value.get("ack"), "ack"),
            items=items,
            requests=tuple(RequestRecord.from_wire(v) for v in requests_raw),
            more=bool(value.get("more", False)),
        )


def estimate_size(entry: Entry) -> int:
    """A cheap upper-bound-ish guess of an entry's JSON size (for cutting batches)."""
    size = 120 + len(entry.name) + len(entry.owner) + len(entry.stamp.node)
    if entry.uri is not None:
        size += len(entry.uri)
    if entry.meta is not None:
        size += 64 if isinstance(entry.meta, int | float | bool) else len(repr(entry.meta))
    return size
