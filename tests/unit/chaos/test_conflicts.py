"""The conflict-line parser reads both the JSON form and the old ``Entry`` repr form."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from pairns.chaos.conflicts import parse_conflict_line, parse_log
from pairns.namespace.entry import Entry, Kind
from pairns.namespace.stamps import Stamp

PREFIX = "2026-12-07 01:02:03,456 WARNING pairns.replication: "

NEW_LINE = (
    PREFIX + "conflict (version) on :chaos.g1.o2: kept "
    '{"deleted":false,"kind":"object","meta":null,"name":":chaos.g1.o2","node":"a1b2",'
    '"time":"2026-12-07T01:02:03.400Z","uri":"PYRO://127.0.0.1:1/c1-17"}, lost '
    '{"deleted":false,"kind":"object","meta":{"op":"c2-4"},"name":":chaos.g1.o2",'
    '"node":"c3d4","time":"2026-12-07T01:02:03.300Z","uri":"PYRO://127.0.0.1:1/c2-3"}'
)


def entry(
    name: str,
    kind: Kind = Kind.OBJECT,
    uri: str | None = "PYRO://127.0.0.1:1/c1-17",
    meta: Any = None,
    deleted: bool = False,
    node: str = "abc",
) -> Entry:
    return Entry(
        name=name,
        kind=kind,
        uri=uri,
        meta=meta,
        created=1796609077.1,
        modified=1796609077.1,
        owner=node,
        stamp=Stamp(hlc=117743581249683456, node=node),
        deleted=deleted,
    )


def old_line(kind: str, name: str, kept: Entry, lost: Entry) -> str:
    """A line as the current build logs it (the same format string as the link)."""
    record = logging.LogRecord(
        "pairns.replication",
        logging.WARNING,
        __file__,
        1,
        "conflict (%s) on %s: kept %r, lost %r",
        (kind, name, kept, lost),
        None,
    )
    return PREFIX + record.getMessage()


def test_new_format() -> None:
    record = parse_conflict_line(NEW_LINE, node=2, incarnation=3, time=12.5)
    assert record is not None
    assert (record.node, record.incarnation, record.time) == (2, 3, 12.5)
    assert record.kind == "version"
    assert record.name == ":chaos.g1.o2"
    assert record.kept == {
        "name": ":chaos.g1.o2",
        "kind": "object",
        "deleted": False,
        "uri": "PYRO://127.0.0.1:1/c1-17",
        "meta": None,
        "node": "a1b2",
    }
    assert record.lost["meta"] == {"op": "c2-4"}
    assert record.lost["uri"] == "PYRO://127.0.0.1:1/c2-3"
    assert record.lost["node"] == "c3d4"


def test_new_format_with_tricky_meta_and_tombstone() -> None:
    meta = {"op": 'c1-9", lost {"x', "list": [1, ", lost ", {"a": "}"}]}
    kept = {"name": ":chaos.g1", "kind": "group", "deleted": True, "uri": None, "meta": None}
    lost = {
        "name": ":chaos.g1.o1",
        "kind": "object",
        "deleted": False,
        "uri": "PYRO://h:1/x",
        "meta": meta,
        "extra": [1, 2],
    }
    line = f"conflict (hidden) on :chaos.g1.o1: kept {json.dumps(kept)}, lost {json.dumps(lost)}"
    record = parse_conflict_line(line, node=1, incarnation=1)
    assert record is not None
    assert record.kind == "hidden"
    assert record.kept == kept
    assert record.lost["meta"] == meta
    assert "extra" not in record.lost


def test_new_format_with_metadata_too_large_to_show() -> None:
    line = NEW_LINE.replace('"meta":{"op":"c2-4"}', '"meta_bytes":2048')
    record = parse_conflict_line(line, node=1, incarnation=1)
    assert record is not None
    assert record.lost["meta"] is None
    assert record.lost["meta_bytes"] == 2048
    assert "meta_bytes" not in record.kept


@pytest.mark.parametrize(
    "meta",
    [
        None,
        {"op": "c1-3"},
        {"q": "a', created=1, b", "r": 'it"s, owner=x)'},
        ["x, y", ("(", ")"), {"k": [1, 2.5, True, None]}],
        "plain, created=2.0, owner='z'",
    ],
)
def test_old_format_round_trip(meta: Any) -> None:
    kept = entry(":chaos.o1", uri="PYRO://127.0.0.1:1/c1-17", meta=meta, node="n1")
    lost = entry(":chaos.o1", uri="PYRO://127.0.0.1:1/c2-3", meta={"op": "c2-4"}, node="n2")
    record = parse_conflict_line(
        old_line("version", ":chaos.o1", kept, lost), node=1, incarnation=2
    )
    assert record is not None
    assert record.kind == "version"
    assert record.name == ":chaos.o1"
    expected_meta = meta
    assert record.kept == {
        "name": ":chaos.o1",
        "kind": "object",
        "deleted": False,
        "uri": "PYRO://127.0.0.1:1/c1-17",
        "meta": expected_meta,
        "node": "n1",
    }
    assert record.lost["meta"] == {"op": "c2-4"}
    assert record.lost["node"] == "n2"


def test_old_format_tombstone_group() -> None:
    kept = entry(":chaos.g2", kind=Kind.GROUP, uri=None, deleted=True)
    lost = entry(":chaos.g2.o0", meta={"op": "c3-1"})
    record = parse_conflict_line(
        old_line("hidden", ":chaos.g2.o0", kept, lost), node=2, incarnation=1
    )
    assert record is not None
    assert record.kept["kind"] == "group"
    assert record.kept["deleted"] is True
    assert record.kept["uri"] is None
    assert record.lost["name"] == ":chaos.g2.o0"
    assert record.lost["deleted"] is False


def test_hand_written_old_line() -> None:
    line = (
        "conflict (revived) on :chaos.g0: kept Entry(name=':chaos.g0.o1', "
        "kind=<Kind.OBJECT: 1>, uri='PYRO://127.0.0.1:1/c1-17', meta={'op': 'c1-3'}, "
        "created=1796609077.1, modified=1796609077.1, owner='abc', "
        "stamp=Stamp(hlc=117743581249683456, node='abc'), deleted=False), lost "
        "Entry(name=':chaos.g0', kind=<Kind.GROUP: 0>, uri=None, meta=None, "
        "created=1796609077.1, modified=1796609077.1, owner='def', "
        "stamp=Stamp(hlc=117743581249683000, node='def'), deleted=True)"
    )
    record = parse_conflict_line(line, node=1, incarnation=1)
    assert record is not None
    assert record.kept["meta"] == {"op": "c1-3"}
    assert record.lost == {
        "name": ":chaos.g0",
        "kind": "group",
        "deleted": True,
        "uri": None,
        "meta": None,
        "node": "def",
    }


def test_names_with_odd_characters() -> None:
    line = NEW_LINE.replace("on :chaos.g1.o2:", "on :we:ird'name\"(x):")
    record = parse_conflict_line(line, node=1, incarnation=1)
    assert record is not None
    assert record.name == ":we:ird'name\"(x)"


def test_other_lines_are_ignored() -> None:
    assert parse_conflict_line(PREFIX + "serving alone", node=1, incarnation=1) is None
    assert parse_conflict_line("", node=1, incarnation=1) is None


@pytest.mark.parametrize(
    "line",
    [
        "conflict (version) on :x",
        "conflict (version) on :x: kept nothing, lost nothing",
        'conflict (version) on :x: kept {"name": ":x", "kind": "object", "deleted": false}',
        'conflict (version) on :x: kept {"name": ":x", "kind": "thing", "deleted": false, '
        '"uri": null, "meta": null}, lost {"name": ":x", "kind": "object", "deleted": false, '
        '"uri": null, "meta": null}',
        "conflict (version) on :x: kept Entry(name=':x', kind=<Kind.OBJECT: 1>, uri='u', "
        "meta={'a': 1, created=1.0), lost Entry(name=':x')",
        "conflict (version) on :x: kept [1, 2], lost [3]",
    ],
)
def test_malformed_lines_raise(line: str) -> None:
    with pytest.raises(ValueError, match="malformed conflict line"):
        parse_conflict_line(line, node=1, incarnation=1)


def test_parse_log() -> None:
    kept = entry(":chaos.o1", meta={"op": "c1-1"})
    lost = entry(":chaos.o1", uri="PYRO://127.0.0.1:1/c2-2")
    text = "\n".join(
        [
            PREFIX + "paired with the twin",
            NEW_LINE,
            old_line("version", ":chaos.o1", kept, lost),
            PREFIX + "dropped the twin",
            "",
        ]
    )
    records = parse_log(text, node=2, incarnation=4)
    assert [r.name for r in records] == [":chaos.g1.o2", ":chaos.o1"]
    assert all((r.node, r.incarnation, r.time) == (2, 4, None) for r in records)


def test_parse_log_skips_a_torn_last_line_only() -> None:
    torn = NEW_LINE[: len(NEW_LINE) // 2]
    assert len(parse_log(NEW_LINE + "\n" + torn, node=1, incarnation=1)) == 1
    with pytest.raises(ValueError):
        parse_log(torn + "\n" + NEW_LINE + "\n", node=1, incarnation=1)
