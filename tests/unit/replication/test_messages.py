"""The peer protocol's messages: JSON round trips and strict parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairns.namespace import Entry, Kind, Stamp
from pairns.replication.messages import (
    PROTOCOL_VERSION,
    Batch,
    Hello,
    Item,
    RequestRecord,
    encode_contents,
    estimate_records_size,
    estimate_size,
)


def entry(name: str = ":g.x", hlc: int = 5, node: str = "n1", deleted: bool = False) -> Entry:
    return Entry(
        name,
        Kind.OBJECT,
        "PYRO://127.0.0.1:1/x",
        {"a": 1},
        1.0,
        2.0,
        node,
        Stamp(hlc, node),
        deleted,
    )


def test_hello_round_trip() -> None:
    hello = Hello(node_id="a", role=2, applied=17, expect="b", full=True, probe=False)
    assert Hello.from_wire(hello.to_wire()) == hello
    assert hello.version == PROTOCOL_VERSION


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        {"node_id": "a", "role": 3, "applied": 0, "version": 1},
        {"node_id": "a", "role": 1, "applied": -1, "version": 1},
        {"node_id": 5, "role": 1, "applied": 0, "version": 1},
        {"node_id": "a", "role": True, "applied": 0, "version": 1},
        {"node_id": "a", "role": 1, "applied": 0},
    ],
)
def test_hello_rejects_garbage(wire: Any) -> None:
    with pytest.raises(ValueError):
        Hello.from_wire(wire)


def test_batch_round_trip_with_items_and_requests() -> None:
    batch = Batch(
        start=3,
        upto=9,
        ack=4,
        items=(Item(5, entry(), Stamp(2, "n2")), Item(9, entry(":g.y", 7, deleted=True))),
        requests=(RequestRecord("r1", None, 1.5),),
        more=True,
    )
    assert Batch.from_wire(batch.to_wire()) == batch
    heartbeat = Batch(start=9, upto=9, ack=4)
    assert heartbeat.to_wire() == {"start": 9, "upto": 9, "ack": 4}  # positions only
    assert Batch.from_wire(heartbeat.to_wire()) == heartbeat


def contents(**columns: Any) -> str:
    """The contents text of a valid two-change, one-record batch of ``(0, 4]``, with
    some *columns* replaced."""
    batch = Batch(
        start=0,
        upto=4,
        ack=0,
        items=(Item(1, entry()), Item(3, entry(":g.y", 7), Stamp(2, "n2"))),
        requests=(RequestRecord("r1", None, 1.5),),
    )
    value = json.loads(batch.to_wire()["changes"])
    assert Batch.from_wire(batch.to_wire()) == batch
    value.update(columns)
    return json.dumps(value)


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "wire",
    [
        {"start": 5, "upto": 4, "ack": 0},  # ends before it starts
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[1, 7])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[0, 3])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[3, 3])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[3, 1])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[1, 2, 3])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(name=[":g.x", 5])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(kind=[1, 2])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(kind=[1, -1])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(kind=[1, True])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(uri=["PYRO://h/x", 3])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(created=[1.0, "1"])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(modified=[1.0, False])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(owner=[0, 9])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(owner=[0, -1])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(node=[0, 1.0])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(hlc=[5, -7])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(deleted=[False, 0])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seen_hlc=[0, None])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(nodes=["n1", 2])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(nodes=["n1", "x" * 300])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(meta=[None, deep(70)])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(rid=["x" * 300])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(rid=[7])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(age_ms=[-1])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(age_ms=[10**400])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(created=[1.0, 10**400])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(modified=[None, 10**400])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(age_ms=[1.5])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(result=[None, None])},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(hlc=None)},
        {"start": 0, "upto": 4, "ack": 0, "changes": contents(seq=[1, 3], name=[":g.x"])},
        # The list form of protocol 1 (one ``[seq, entry fields, seen]`` per change).
        {
            "start": 0,
            "upto": 4,
            "ack": 0,
            "changes": json.dumps(
                [[1, [":g.x", 1, "PYRO://h/x", None, 1.0, 2.0, "n1", 5, "n1", False], [0, ""]]]
            ),
        },
        {"start": 0, "upto": 4, "ack": 0, "changes": "nope"},
        {"start": 0, "upto": 4, "ack": 0, "changes": "{}"},
        {"start": 0, "upto": 4, "ack": 0, "changes": "[" * 100_000},
        {"start": 0, "upto": 4, "ack": 0, "changes": "{}" + " " * 70 + "[" * 70},
        {"start": 0, "upto": 4, "ack": 0, "changes": {"seq": [1]}},
        {"start": 0, "upto": 4, "changes": contents()},
    ],
)
def test_batch_rejects_garbage(wire: Any) -> None:
    with pytest.raises(ValueError):
        Batch.from_wire(wire)


def test_batch_contents_accept_a_nested_meta_within_the_limit() -> None:
    wire = {"start": 0, "upto": 4, "ack": 0, "changes": contents(meta=[None, deep(60)])}
    batch = Batch.from_wire(wire)
    assert batch.items[1].entry.meta == deep(60)


def test_batch_contents_keep_modified_and_zero_times_exact() -> None:
    same = Entry(":a", Kind.GROUP, None, None, 5.5, 5.5, "n1", Stamp(3, "n1"))
    zero = Entry(":b", Kind.GROUP, None, None, -0.0, -0.0, "n1", Stamp(4, "n1"))
    batch = Batch(start=0, upto=2, ack=0, items=(Item(1, same), Item(2, zero)))
    back = Batch.from_wire(batch.to_wire())
    assert back == batch
    assert str(back.items[1].entry.modified) == "-0.0"


def test_estimate_grows_with_content() -> None:
    small = entry()
    big = Entry(":g.x", Kind.GROUP, None, {"k": "v" * 10_000}, 1.0, 2.0, "n", Stamp(1, "n"))
    assert estimate_size(big) > estimate_size(small) + 9_000


_text = st.text(st.characters(codec="utf-8"), max_size=40)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)


@st.composite
def _any_entry(draw: st.DrawFn) -> Entry:
    node = draw(_text)
    return Entry(
        name=draw(_text),
        kind=draw(st.sampled_from(Kind)),
        uri=draw(st.none() | _text),
        meta=draw(_json_values),
        created=draw(st.floats(allow_nan=False, allow_infinity=False)),
        modified=draw(st.floats(allow_nan=False, allow_infinity=False)),
        owner=draw(st.just(node) | _text),
        stamp=Stamp(draw(st.integers(1, 2**70)), node),
        deleted=draw(st.booleans()),
    )


@given(_any_entry(), st.integers(1, 2**63 - 1), st.integers(0, 2**70), st.text(max_size=8))
def test_estimate_size_bounds_what_an_entry_adds_to_a_batch(
    entry: Entry, seq: int, seen_hlc: int, seen_node: str
) -> None:
    """Any names, URIs and metadata, any Unicode: the estimate is never below the bytes
    the entry adds to the changes text (the node table aside: once per batch)."""
    item = Item(seq, entry, Stamp(seen_hlc, seen_node))
    added = len(encode_contents([item], []).encode()) - len(encode_contents([], []).encode())
    table = {entry.owner, entry.stamp.node, seen_node}
    table_bytes = sum(len(json.dumps(n, ensure_ascii=False).encode()) + 1 for n in table)
    assert estimate_size(entry) >= added - table_bytes


@given(
    st.lists(
        st.builds(
            RequestRecord,
            st.text(st.characters(codec="utf-8"), max_size=256),
            _json_values,
            st.floats(0, 1e6),
        ),
        max_size=5,
    )
)
def test_estimate_records_size_bounds_what_records_add_to_a_batch(
    records: list[RequestRecord],
) -> None:
    added = len(encode_contents([], records).encode()) - len(encode_contents([], []).encode())
    assert estimate_records_size(records) >= added
