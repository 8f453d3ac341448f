"""The peer protocol's messages: JSON round trips and strict parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pairns.namespace import Entry, Kind, Stamp
from pairns.replication.messages import (
    PROTOCOL_VERSION,
    Batch,
    Hello,
    Item,
    RequestRecord,
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
    back = Batch.from_wire(batch.to_wire())
    assert back == batch
    assert not back.is_heartbeat
    heartbeat = Batch(start=9, upto=9, ack=4)
    assert Batch.from_wire(heartbeat.to_wire()).is_heartbeat


@pytest.mark.parametrize(
    "wire",
    [
        {"start": 5, "upto": 4, "ack": 0},  # ends before it starts
        {"start": 0, "upto": 4, "ack": 0, "changes": json.dumps([[7, entry().to_wire(), [0, ""]]])},
        {"start": 0, "upto": 4, "ack": 0, "changes": json.dumps([[0, entry().to_wire(), [0, ""]]])},
        {"start": 0, "upto": 4, "ack": 0, "changes": json.dumps([[1, ["bad"], [0, ""]]])},
        {"start": 0, "upto": 4, "ack": 0, "changes": "nope"},
        {"start": 0, "upto": 4, "ack": 0, "changes": "{}"},
        {"start": 0, "upto": 4, "ack": 0, "changes": "[" * 100_000},
        {"start": 0, "upto": 4, "ack": 0, "changes": [[1, entry().to_wire(), [0, ""]]]},
        {"start": 0, "upto": 4, "ack": 0, "requests": [["r", None, -1]]},
        {"start": 0, "upto": 4},
    ],
)
def test_batch_rejects_garbage(wire: Any) -> None:
    with pytest.raises(ValueError):
        Batch.from_wire(wire)


def test_estimate_grows_with_content() -> None:
    small = entry()
    big = Entry(":g.x", Kind.GROUP, None, {"k": "v" * 10_000}, 1.0, 2.0, "n", Stamp(1, "n"))
    assert estimate_size(big) > estimate_size(small) + 9_000
