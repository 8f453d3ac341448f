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

import itertools
import json
import operator
from collections.abc import Sequence
from contextlib import nullcontext
from sys import intern
from typing import Any, NamedTuple

import attrs

from pairns import _collector as collector
from pairns.namespace import ZERO_STAMP, Entry, Kind, Stamp
from pairns.namespace.entry import make_entries
from pairns.namespace.fields import (
    get_created,
    get_deleted,
    get_hlc,
    get_kind,
    get_meta,
    get_modified,
    get_name,
    get_node,
    get_owner,
    get_stamp,
    get_uri,
)
from pairns.namespace.stamps import make_stamps
from pairns.naming.requests import RequestRecord
from pairns.replication.feed_history import MAX_INCARNATIONS
from pairns.wire.frames import json_depth_exceeds
from pairns.wire.limits import MAX_JSON_DEPTH

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "PROTOCOL_VERSION",
    "Batch",
    "Hello",
    "Item",
    "RequestRecord",
    "estimate_records_size",
    "estimate_size",
]

#: Bumped when the messages change incompatibly; twins with different versions refuse.
#: 3: the twin proves the pair's secret (``challenge``), hellos carry feed incarnations.
#: 4: ``:Pyro.NameServer`` is node-local: an entry for it is refused, not merged.
#: 5: hellos carry the sender's feed history (tombstone collection needs the twin's:
#: which of its positions this node had applied before, see ``docs/namespace-merge.md``).
PROTOCOL_VERSION = 5

#: Most entries one batch carries: big enough that a 100,000-name snapshot is fifty
#: messages, small enough that merging one (tens of milliseconds) does not hold up
#: the clients of the receiving node for long.
MAX_BATCH_ENTRIES = 2000

#: Rough upper bound of one batch's JSON size (the default frame limit is 1 MiB; a batch
#: of entries with large metadata is cut early so it always fits).
MAX_BATCH_BYTES = 512 * 1024


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
    has) is the receiver's id, and if the receiver's history vouches for it:
    ``expect_incarnation`` is the receiver's run the sender last heard from (see
    :mod:`pairns.replication.feed_history`); otherwise the receiver starts from 0 (a
    full snapshot, both ways). ``incarnation`` is the sender's own current run.
    ``full`` asks for (or, in a reply, announces) a full resync in both directions;
    ``probe`` only checks that pairing is possible (the ``-1`` node's diagnostics).
    ``history`` is the sender's feed history (``FeedHistory.incarnations``): the
    receiver finds where it matches the history it last heard of, and so which of the
    sender's positions it had applied before (a restored sender's history forks).
    """

    node_id: str
    role: int
    applied: int
    expect: str
    full: bool = False
    probe: bool = False
    version: int = PROTOCOL_VERSION
    incarnation: str = ""
    expect_incarnation: str = ""
    history: tuple[tuple[str, int], ...] = ()

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
            "incarnation": self.incarnation,
            "expect_incarnation": self.expect_incarnation,
            "history": [list(pair) for pair in self.history],
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
            incarnation=_str(value.get("incarnation", ""), "incarnation"),
            expect_incarnation=_str(value.get("expect_incarnation", ""), "incarnation"),
            history=_history(value.get("history", [])),
        )


def _history(value: Any) -> tuple[tuple[str, int], ...]:
    """A hello's ``history``: at most ``MAX_INCARNATIONS`` ``[id, first seq]`` pairs."""
    if not isinstance(value, list) or len(value) > MAX_INCARNATIONS:
        raise ValueError(f"invalid feed history: {value!r}")
    pairs = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"invalid feed history: {value!r}")
        pairs.append((_str(pair[0], "incarnation"), _int(pair[1], "position")))
    return tuple(pairs)


class Item(NamedTuple):
    """One change: its position in the sender's feed, the entry and its knowledge.

    A named tuple rather than an attrs class: a full resync makes 100,000 of these on
    each side.
    """

    seq: int
    entry: Entry
    seen: Stamp = ZERO_STAMP


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

    def to_wire(self) -> dict[str, Any]:
        """The JSON form: positions, plus the changes and request records as one JSON
        text in columns (see :func:`encode_contents`)."""
        out: dict[str, Any] = {"start": self.start, "upto": self.upto, "ack": self.ack}
        if self.more:
            out["more"] = True
        if self.items or self.requests:
            out["changes"] = encode_contents(self.items, self.requests)
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
        ack = _int(value.get("ack"), "ack")
        text = value.get("changes")
        items: tuple[Item, ...] = ()
        requests: tuple[RequestRecord, ...] = ()
        if text is not None:
            if not isinstance(text, str):
                raise ValueError("invalid batch contents")
            # A resync batch makes a dozen objects per change, all kept: pausing the
            # cyclic collector meanwhile (as Namespace.load does) saves it rescanning them.
            pause = collector.paused() if len(text) >= _GC_PAUSE_TEXT else nullcontext()
            with pause:
                items, requests = decode_contents(text, start, upto)
        return cls(
            start=start,
            upto=upto,
            ack=ack,
            items=items,
            requests=requests,
            more=bool(value.get("more", False)),
        )


# -- the contents of a batch, in columns -----------------------------------------------
#
# A full resync moves 100,000 changes and as many request records; one JSON object of
# per-field lists ("columns") is the cheapest form for both ends in CPython: the sender
# fills each column with one C-level ``map`` over the entries, the C codec encodes and
# decodes flat lists of scalars, and the receiver checks each column's types with one
# C-level pass and builds entries and stamps with ``map`` (no Python code per value).
# Node ids (owner, stamp node, seen node - a handful per batch) travel once, in a
# table, and are referred to by index; ``modified`` is null when equal to ``created``;
# request ages travel as whole milliseconds. The columns: ``nodes`` (the table), then
# one value per change in ``seq``, ``name``, ``kind``, ``uri``, ``meta``, ``created``,
# ``modified``, ``owner``, ``hlc``, ``node``, ``deleted``, ``seen_hlc``, ``seen_node``,
# and one per request record in ``rid``, ``result``, ``age_ms``.

_NONE = type(None)
_INT: frozenset[type] = frozenset({int})
_STR: frozenset[type] = frozenset({str})
_BOOL: frozenset[type] = frozenset({bool})
_NUMBER: frozenset[type] = frozenset({int, float})
_NUMBER_OR_NONE: frozenset[type] = frozenset({int, float, _NONE})
_STR_OR_NONE: frozenset[type] = frozenset({str, _NONE})
_KIND_BY_VALUE = (Kind.GROUP, Kind.OBJECT)

_get_seq = operator.attrgetter("seq")
_get_entry = operator.attrgetter("entry")
_get_seen = operator.attrgetter("seen")
_get_request_id = operator.attrgetter("request_id")
_get_result = operator.attrgetter("result")
_get_age = operator.attrgetter("age")


def _age_ms(age: float) -> int:
    return round(age * 1000) if age > 0 else 0


def encode_contents(items: Sequence[Item], requests: Sequence[RequestRecord]) -> str:
    """The changes and request records of a batch as one JSON text of columns."""
    entries = list(map(_get_entry, items))
    stamps = list(map(get_stamp, entries))
    seens = list(map(_get_seen, items))
    owners = list(map(get_owner, entries))
    nodes = list(map(get_node, stamps))
    seen_nodes = list(map(get_node, seens))
    table = list(dict.fromkeys(owners + nodes + seen_nodes))
    index = {node: i for i, node in enumerate(table)}.__getitem__
    created = list(map(get_created, entries))
    modified = [
        None if m == c and m else m
        for c, m in zip(created, map(get_modified, entries), strict=True)
    ]
    contents: dict[str, Any] = {
        "nodes": table,
        "seq": list(map(_get_seq, items)),
        "name": list(map(get_name, entries)),
        "kind": list(map(int, map(get_kind, entries))),
        "uri": list(map(get_uri, entries)),
        "meta": list(map(get_meta, entries)),
        "created": created,
        "modified": modified,
        "owner": list(map(index, owners)),
        "hlc": list(map(get_hlc, stamps)),
        "node": list(map(index, nodes)),
        "deleted": list(map(get_deleted, entries)),
        "seen_hlc": list(map(get_hlc, seens)),
        "seen_node": list(map(index, seen_nodes)),
        "rid": list(map(_get_request_id, requests)),
        "result": list(map(_get_result, requests)),
        "age_ms": list(map(_age_ms, map(_get_age, requests))),
    }
    return _encode_changes(contents)


def _column(contents: dict[str, Any], key: str, types: frozenset[type] | None) -> list[Any]:
    """One column, every value of one of *types* (any JSON value if None)."""
    column = contents.get(key)
    if type(column) is not list:
        raise ValueError(f"invalid batch column {key!r}")
    if types is not None and not set(map(type, column)) <= types:
        raise ValueError(f"invalid value in batch column {key!r}")
    return column


def _indexes(contents: dict[str, Any], key: str, table: list[str]) -> list[str]:
    """A column of indexes into *table*, resolved."""
    column = _column(contents, key, _INT)
    if column and min(column) < 0:
        raise ValueError(f"invalid index in batch column {key!r}")
    try:
        return list(map(table.__getitem__, column))
    except IndexError:
        raise ValueError(f"invalid index in batch column {key!r}") from None


def _naturals(contents: dict[str, Any], key: str) -> list[int]:
    column = _column(contents, key, _INT)
    if column and min(column) < 0:
        raise ValueError(f"negative value in batch column {key!r}")
    return column


def decode_contents(
    text: str, start: int, upto: int
) -> tuple[tuple[Item, ...], tuple[RequestRecord, ...]]:
    """Parse what :func:`encode_contents` made, for a batch of ``(start, upto]``.

    Every value is checked (raises ``ValueError``): types per column, positions
    strictly increasing inside the batch, indexes inside the node table, and nesting no
    deeper than the frame limit (the frame decoder only sees this text as a string).
    """
    if len(text) > MAX_CHANGES_TEXT:
        raise ValueError("batch too large")
    try:
        contents = json.loads(text)
    except (RecursionError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid batch changes: {exc}") from None
    if type(contents) is not dict:
        raise ValueError("invalid batch changes")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth_exceeds(
        contents, MAX_JSON_DEPTH
    ):
        raise ValueError(f"batch changes nest deeper than {MAX_JSON_DEPTH} levels")
    table = _column(contents, "nodes", _STR)
    if any(len(node) > 256 for node in table):
        raise ValueError("invalid node id in batch")
    table = list(map(intern, table))
    seqs = _naturals(contents, "seq")
    count = len(seqs)
    if count and not (start < seqs[0] and seqs[-1] <= upto):
        raise ValueError(f"changes {seqs[0]}..{seqs[-1]} outside their batch {start}..{upto}")
    if not all(map(operator.lt, seqs, itertools.islice(seqs, 1, None))):
        raise ValueError("change positions not increasing in batch")
    names = _column(contents, "name", _STR)
    kind_values = _column(contents, "kind", _INT)
    uris = _column(contents, "uri", _STR_OR_NONE)
    metas = _column(contents, "meta", None)
    created = _column(contents, "created", _NUMBER)
    modified = _column(contents, "modified", _NUMBER_OR_NONE)
    owners = _indexes(contents, "owner", table)
    hlcs = _naturals(contents, "hlc")
    nodes = _indexes(contents, "node", table)
    deleted = _column(contents, "deleted", _BOOL)
    seen_hlcs = _naturals(contents, "seen_hlc")
    seen_nodes = _indexes(contents, "seen_node", table)
    columns = (names, kind_values, uris, metas, created, modified, owners, hlcs, nodes)
    if any(len(c) != count for c in (*columns, deleted, seen_hlcs, seen_nodes)):
        raise ValueError("batch columns of different lengths")
    if kind_values and (min(kind_values) < 0 or max(kind_values) >= len(_KIND_BY_VALUE)):
        raise ValueError("invalid entry kind in batch")
    kinds = list(map(_KIND_BY_VALUE.__getitem__, kind_values))
    try:
        created = list(map(float, created))
        modified = [c if m is None else float(m) for c, m in zip(created, modified, strict=True)]
        ages_s = [age / 1000 for age in _naturals(contents, "age_ms")]
    except OverflowError:
        raise ValueError("a time in the batch is out of range") from None
    stamps = make_stamps(hlcs, nodes)
    entries = make_entries(names, kinds, uris, metas, created, modified, owners, stamps, deleted)
    seens = [
        ZERO_STAMP if hlc == 0 else Stamp(hlc, node)
        for hlc, node in zip(seen_hlcs, seen_nodes, strict=True)
    ]
    # tuple.__new__ straight from C (a named tuple's own __new__ is Python code).
    items = tuple(
        map(tuple.__new__, itertools.repeat(Item), zip(seqs, entries, seens, strict=True))
    )
    request_ids = _column(contents, "rid", _STR)
    results = _column(contents, "result", None)
    if not len(request_ids) == len(results) == len(ages_s):
        raise ValueError("batch columns of different lengths")
    if request_ids and max(map(len, request_ids)) > 256:
        raise ValueError("invalid request id in batch")
    records = tuple(
        map(
            tuple.__new__,
            itertools.repeat(RequestRecord),
            zip(request_ids, results, ages_s, strict=True),
        )
    )
    return items, records


#: Bytes an entry adds to a batch's changes text besides its name, URI and metadata,
#: at most: every number at its longest (seq, kind, two times, two HLCs, three node
#: indexes, deleted) and the separators.
_ENTRY_FIXED_BYTES = 150
#: The same for a request record besides its id and result (the age, separators).
_RECORD_FIXED_BYTES = 24


def _json_bytes(text: str) -> int:
    """UTF-8 bytes of *text* as a JSON string in a changes text (quotes included)."""
    if text.isascii() and text.isprintable():
        return len(text) + 2 + text.count('"') + text.count("\\")
    return len(_encode_changes(text).encode())


def estimate_size(entry: Entry) -> int:
    """At least the bytes *entry* adds to a batch's changes text (UTF-8), for cutting
    batches. The frame that carries the text escapes it once more, which at most
    doubles it; the sender's budget is a third of a frame.

    Metadata is measured encoded: counted in characters, 16,000 emoji (64,000 bytes)
    counted as 16,000 and let a batch outgrow the frame limit.
    """
    size = _ENTRY_FIXED_BYTES + _json_bytes(entry.name)
    uri, meta = entry.uri, entry.meta
    size += 4 if uri is None else _json_bytes(uri)
    size += 4 if meta is None else len(_encode_changes(meta).encode())
    return size


def estimate_records_size(records: Sequence[RequestRecord]) -> int:
    """At least the bytes *records* add to a batch's changes text (UTF-8)."""
    size = 0
    for record in records:
        result = record.result
        size += _RECORD_FIXED_BYTES + _json_bytes(record.request_id)
        size += 4 if result is None else len(_encode_changes(result).encode())
    return size
