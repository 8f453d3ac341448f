"""Namespace operations: Pyro 3 rules and messages, queries, change sets, feed, load."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

from pairns.errors import NamingError
from pairns.namespace import (
    MAX_META_BYTES,
    ChangeSet,
    Entry,
    HybridClock,
    Kind,
    Namespace,
    Stamp,
)

from .support import assert_matches_oracle, make_ns, snapshot


@attrs.frozen
class Err:
    """An expected ``NamingError(message, name)``."""

    message: str
    name: str | None


OK = "ok"  # the operation succeeds (its effect is checked elsewhere)


def populated() -> Namespace:
    """``:`` with ``Default``, ``Pyro``, group ``g`` (``h``, ``obj``), ``g.h.obj``, object
    ``top`` and ``Default.x``."""
    ns, _ = make_ns()
    ns.create_group(":g")
    ns.create_group(":g.h")
    ns.register(":g.obj", "PYRO://h/1")
    ns.register(":g.h.obj", "PYRO://h/2")
    ns.register(":top", "PYRO://h/3")
    ns.register(":Default.x", "PYRO://h/4")
    return ns


U = "PYRO://h/9"

CASES: list[tuple[str, tuple[Any, ...], Any]] = [
    # resolve
    ("resolve", (":g.obj",), "PYRO://h/1"),
    ("resolve", (":g.h.obj",), "PYRO://h/2"),
    ("resolve", (":top",), "PYRO://h/3"),
    ("resolve", (":",), Err("attempt to resolve groupname", ":")),
    ("resolve", (":g",), Err("attempt to resolve groupname", ":g")),
    ("resolve", (":Default",), Err("attempt to resolve groupname", ":Default")),
    ("resolve", (":nope",), Err("name not found", ":nope")),
    ("resolve", (":g.nope",), Err("name not found", ":g.nope")),
    ("resolve", (":nope.x",), Err("name not found", ":nope.x")),
    ("resolve", (":top.x",), Err("group not found", ":top.x")),
    ("resolve", (":g.obj.x.y",), Err("group not found", ":g.obj.x.y")),
    # list
    ("list", (":",), [("Default", 0), ("Pyro", 0), ("g", 0), ("top", 1)]),
    ("list", (":g",), [("h", 0), ("obj", 1)]),
    ("list", (":g.h",), [("obj", 1)]),
    ("list", (":Pyro",), []),
    ("list", (":nope",), Err("group not found", ":nope")),
    ("list", (":nope.x",), Err("group not found", ":nope.x")),
    ("list", (":g.nope",), Err("group not found", ":g.nope")),
    ("list", (":top",), Err("is no group", ":top")),
    ("list", (":top.x",), Err("is no group", ":top.x")),
    # flatlist
    (
        "flatlist",
        (),
        [
            (":Default.x", "PYRO://h/4"),
            (":g.h.obj", "PYRO://h/2"),
            (":g.obj", "PYRO://h/1"),
            (":top", "PYRO://h/3"),
        ],
    ),
    # register
    ("register", (":g.new", U), OK),
    ("register", (":new", U), OK),
    ("register", (":", U), Err("invalid name", ":")),
    ("register", (":g.new", "not a uri"), Err("invalid URI", ":g.new")),
    ("register", (":g.new", "PYRO://h/"), Err("invalid URI", ":g.new")),
    ("register", (":g.new", 42), Err("invalid URI", ":g.new")),
    ("register", (":g.obj", "bad"), Err("invalid URI", ":g.obj")),  # URI first, as Pyro 3
    ("register", (":nope.new", U), Err("(parent)group not found", ":nope")),
    ("register", (":nope.deeper.new", U), Err("(parent)group not found", ":nope.deeper")),
    ("register", (":top.new", U), Err("parent is no group", ":top")),
    ("register", (":top.a.new", U), Err("parent is no group", ":top.a")),
    ("register", (":g.obj", U), Err("name already exists", ":g.obj")),
    ("register", (":g.h", U), Err("name already exists", ":g.h")),
    ("register", (":Pyro", U), Err("name already exists", ":Pyro")),
    # unregister
    ("unregister", (":g.obj",), OK),
    ("unregister", (":top",), OK),
    ("unregister", (":",), Err("invalid name", ":")),
    ("unregister", (":g.nope",), Err("name not found", ":g.nope")),
    ("unregister", (":nope",), Err("name not found", ":nope")),
    ("unregister", (":g.h",), Err("is a group, not an object", ":g.h")),
    ("unregister", (":nope.x",), Err("(parent)group not found", ":nope")),
    ("unregister", (":top.x",), Err("parent is no group", ":top")),
    # create_group
    ("create_group", (":g.new",), OK),
    ("create_group", (":new",), OK),
    ("create_group", (":",), Err("invalid groupname", ":")),
    ("create_group", (":g.h",), Err("group already exists", ":g.h")),
    ("create_group", (":g.obj",), Err("group already exists", ":g.obj")),
    ("create_group", (":nope.new",), Err("(parent)group not found", ":nope")),
    ("create_group", (":top.new",), Err("parent is no group", ":top")),
    # delete_group
    ("delete_group", (":g",), OK),
    ("delete_group", (":g.h",), OK),
    ("delete_group", (":",), Err("not allowed to delete root group", ":")),
    ("delete_group", (":nope",), Err("group not found", ":nope")),
    ("delete_group", (":g.nope",), Err("group not found", ":g.nope")),
    ("delete_group", (":top",), Err("is no group", ":top")),
    ("delete_group", (":g.obj",), Err("is no group", ":g.obj")),
    ("delete_group", (":nope.x",), Err("(parent)group not found", ":nope")),
    ("delete_group", (":top.x",), Err("parent is no group", ":top")),
    # set_meta
    ("set_meta", (":g.obj", {"a": 1}), OK),
    ("set_meta", (":g", [1, 2]), OK),
    ("set_meta", (":", "root meta"), OK),
    ("set_meta", (":g.obj", None), OK),
    ("set_meta", (":nope", 1), Err("name not found", ":nope")),
    ("set_meta", (":nope.x", 1), Err("name not found", ":nope.x")),
    ("set_meta", (":top.x", 1), Err("group not found", ":top.x")),
    ("set_meta", (":g.obj", {1j}), Err("invalid metadata", ":g.obj")),
    ("set_meta", (":g.obj", float("nan")), Err("invalid metadata", ":g.obj")),
    ("set_meta", (":g.obj", {(1, 2): "tuple key"}), Err("invalid metadata", ":g.obj")),
    ("set_meta", (":g.obj", "x" * MAX_META_BYTES), Err("metadata too large", ":g.obj")),
    ("set_meta", (":g.obj", "\u00e9" * (MAX_META_BYTES // 2)), Err("metadata too large", ":g.obj")),
    # get_meta / get_system_meta
    ("get_meta", (":g.obj",), None),
    ("get_meta", (":",), None),
    ("get_meta", (":nope",), Err("name not found", ":nope")),
    ("get_meta", (":top.x",), Err("group not found", ":top.x")),
    ("get_system_meta", (":nope",), Err("name not found", ":nope")),
    ("get_system_meta", (":top.x",), Err("group not found", ":top.x")),
    # helpers
    ("kind_of", (":g",), Kind.GROUP),
    ("kind_of", (":top",), Kind.OBJECT),
    ("kind_of", (":nope",), None),
    ("exists", (":g.h.obj",), True),
    ("exists", (":g.h.nope",), False),
]


@pytest.mark.parametrize(("op", "args", "expected"), CASES, ids=lambda v: repr(v)[:40])
def test_pyro3_rules(op: str, args: tuple[Any, ...], expected: Any) -> None:
    ns = populated()
    before = snapshot(ns)
    if isinstance(expected, Err):
        with pytest.raises(NamingError) as info:
            getattr(ns, op)(*args)
        assert (info.value.message, info.value.name) == (expected.message, expected.name)
        assert snapshot(ns) == before  # a refused operation changes nothing
    elif expected == OK:
        changes = getattr(ns, op)(*args)
        assert isinstance(changes, ChangeSet) and len(changes) >= 1
        assert changes.seqs[-1] == ns.last_seq
        assert_matches_oracle(ns)
    else:
        assert getattr(ns, op)(*args) == expected


def test_register_stores_the_canonical_uri() -> None:
    ns, _ = make_ns()
    ns.register(":Default.o", "pyroloc://LocalHost:7766/thing")
    assert ns.resolve(":Default.o") == "PYROLOC://localhost:7766/thing"


def test_registered_object_round_trip() -> None:
    ns, _ = make_ns()
    ns.register(":Default.o", "PYRO://h/1")
    assert ns.list(":Default") == [("o", 1)]
    ns.unregister(":Default.o")
    with pytest.raises(NamingError, match="name not found"):
        ns.resolve(":Default.o")
    ns.register(":Default.o", "PYRO://h/2")
    assert ns.resolve(":Default.o") == "PYRO://h/2"


def test_delete_group_removes_everything_under_it() -> None:
    ns = populated()
    changes = ns.delete_group(":g")
    assert sorted(e.name for e in changes) == [":g", ":g.h", ":g.h.obj", ":g.obj"]
    assert all(e.deleted for e in changes)
    assert changes.entries[-1].name == ":g"  # children first, the group last
    names_in_order = [e.name for e in changes]
    assert names_in_order.index(":g.h.obj") < names_in_order.index(":g.h")
    assert len({e.stamp for e in changes}) == 1  # one change, one stamp
    assert ns.list(":") == [("Default", 0), ("Pyro", 0), ("top", 1)]
    assert ns.flatlist() == [(":Default.x", "PYRO://h/4"), (":top", "PYRO://h/3")]
    with pytest.raises(NamingError, match="name not found"):
        ns.resolve(":g.h.obj")
    # re-created group starts empty
    ns.create_group(":g")
    assert ns.list(":g") == []
    assert_matches_oracle(ns)


# -- initial groups -----------------------------------------------------------------


def test_bootstrap_creates_root_pyro_and_default() -> None:
    ns, _ = make_ns(bootstrap=False)
    assert ns.list(":") == []  # the root exists even before
    changes = ns.bootstrap()
    assert [e.name for e in changes] == [":", ":Pyro", ":Default"]
    assert ns.list(":") == [("Default", 0), ("Pyro", 0)]
    assert ns.entry_count == 2
    assert len(ns.bootstrap()) == 0  # nothing missing the second time


def test_bootstrap_creates_a_nested_default_group_with_its_parents() -> None:
    ns, _ = make_ns(default_group=":My.Nested.Group")
    assert ns.list(":") == [("My", 0), ("Pyro", 0)]
    assert ns.list(":My") == [("Nested", 0)]
    assert ns.list(":My.Nested") == [("Group", 0)]
    assert ns.default_group == ":My.Nested.Group"


def test_bootstrap_recreates_deleted_initial_groups_but_leaves_objects_alone() -> None:
    ns, _ = make_ns()
    ns.delete_group(":Pyro")
    ns.delete_group(":Default")
    ns.register(":Default", "PYRO://h/1")
    changes = ns.bootstrap()
    assert [e.name for e in changes] == [":Pyro"]
    assert ns.resolve(":Default") == "PYRO://h/1"


def test_bad_default_group_is_refused() -> None:
    with pytest.raises(NamingError):
        Namespace("A", HybridClock("A"), default_group="Default")


# -- metadata -----------------------------------------------------------------------


def test_metadata_round_trip_and_copies() -> None:
    ns = populated()
    ns.set_meta(":g.obj", {"b": [1, 2], "a": (3, 4)})
    meta = ns.get_meta(":g.obj")
    assert meta == {"a": [3, 4], "b": [1, 2]}  # stored as JSON: tuples become lists
    meta["b"].append(99)
    assert ns.get_meta(":g.obj") == {"a": [3, 4], "b": [1, 2]}
    assert ns.resolve(":g.obj") == "PYRO://h/1"  # metadata keeps the URI
    ns.set_meta(":g", "group meta")
    assert ns.get_meta(":g") == "group meta"
    assert ns.list(":g") == [("h", 0), ("obj", 1)]  # and the children
    ns.set_meta(":", {"root": True})
    assert ns.get_meta(":") == {"root": True}
    ns.unregister(":g.obj")
    ns.register(":g.obj", "PYRO://h/1")
    assert ns.get_meta(":g.obj") is None  # a new registration starts without metadata


def test_largest_metadata_fits() -> None:
    ns = populated()
    ns.set_meta(":g.obj", "x" * (MAX_META_BYTES - 2))  # plus two quotes
    assert len(ns.get_meta(":g.obj")) == MAX_META_BYTES - 2


def test_system_metadata_uses_the_injected_clock() -> None:
    ns, clock = make_ns("node-1", start=5000.0)
    clock.advance(10)
    ns.register(":Default.o", "PYRO://h/1")
    assert ns.get_system_meta(":Default.o") == {
        "created": 5010.0,
        "modified": 5010.0,
        "owner": "node-1",
        "kind": "object",
    }
    clock.advance(5)
    ns.set_meta(":Default.o", 1)
    assert ns.get_system_meta(":Default.o") == {
        "created": 5010.0,
        "modified": 5015.0,
        "owner": "node-1",
        "kind": "object",
    }
    assert ns.get_system_meta(":Default")["kind"] == "group"
    assert ns.get_system_meta(":Default")["created"] == 5000.0
    bare, _ = make_ns(bootstrap=False)
    assert bare.get_system_meta(":") == {
        "created": 0.0,
        "modified": 0.0,
        "owner": "",
        "kind": "group",
    }


# -- change sets and undo -----------------------------------------------------------


def test_change_set_shape() -> None:
    ns, _ = make_ns()
    first = ns.last_seq
    changes = ns.register(":Default.o", "PYRO://h/1")
    assert len(changes) == 1
    (entry,) = list(changes)
    assert entry.name == ":Default.o" and entry.kind is Kind.OBJECT and not entry.deleted
    assert changes.seqs == [first + 1] and changes.rows == [(first + 1, entry)]
    assert changes.previous == [None] and changes.previous_seqs == [0]
    again = ns.unregister(":Default.o")
    assert again.previous == [entry] and again.previous_seqs == [first + 1]
    assert again.entries[0].deleted and again.entries[0].stamp > entry.stamp


def test_undo_restores_previous_entries_and_positions() -> None:
    ns = populated()
    before = snapshot(ns)
    last = ns.last_seq
    changes = ns.delete_group(":g")
    ns.undo(changes)
    assert snapshot(ns) == before
    assert ns.entries_since(last) == []  # restored entries have their old positions
    assert ns.last_seq == last + len(changes)  # numbers are never reused
    ns.undo(changes)  # idempotent
    assert snapshot(ns) == before


def test_undo_of_a_new_name_removes_it() -> None:
    ns, _ = make_ns()
    before = snapshot(ns)
    ns.undo(ns.create_group(":Default.g"))
    assert snapshot(ns) == before
    assert ns.entry(":Default.g") is None


@pytest.mark.parametrize("order", ["later first", "earlier first"])
def test_undo_of_overlapping_change_sets_in_any_order(order: str) -> None:
    ns, _ = make_ns()
    before = snapshot(ns)
    first = ns.register(":Default.o", "PYRO://h/1")
    second = ns.unregister(":Default.o")
    third = ns.register(":Default.o", "PYRO://h/2")
    undo_order = [third, second, first] if order == "later first" else [first, second, third]
    for changes in undo_order:
        ns.undo(changes)
    assert snapshot(ns) == before


def test_undo_of_an_earlier_change_keeps_a_later_committed_one() -> None:
    ns, _ = make_ns()
    failed = ns.register(":Default.o", "PYRO://h/1")
    committed = ns.set_meta(":Default.o", "m")
    ns.undo(failed)  # the later write stands; it now replaces nothing
    assert ns.resolve(":Default.o") == "PYRO://h/1"
    assert ns.get_meta(":Default.o") == "m"
    assert committed.previous == [None]
    ns.undo(committed)
    assert not ns.exists(":Default.o")


# -- change feed --------------------------------------------------------------------


def test_entries_since() -> None:
    ns, _ = make_ns()
    start = ns.last_seq
    a = ns.register(":Default.a", "PYRO://h/1")
    b = ns.register(":Default.b", "PYRO://h/2")
    c = ns.unregister(":Default.a")
    rows = ns.entries_since(start)
    assert rows == [b.rows[0], c.rows[0]]  # :Default.a appears once, with its tombstone
    assert ns.entries_since(start, limit=1) == [b.rows[0]]
    assert ns.entries_since(ns.last_seq) == []
    everything = ns.entries_since(0)
    assert [s for s, _ in everything] == sorted(s for s, _ in everything)
    assert len(everything) == ns.stored_count
    assert ns.seq_of(":Default.a") == c.seqs[0] and ns.seq_of(":nope") == 0
    del a


def test_feed_order_survives_undo() -> None:
    ns, _ = make_ns()
    ns.register(":Default.a", "PYRO://h/1")
    failed = ns.set_meta(":Default.a", 1)
    ns.register(":Default.b", "PYRO://h/2")
    ns.undo(failed)
    seqs = [s for s, _ in ns.entries_since(0)]
    assert seqs == sorted(seqs)


# -- load ---------------------------------------------------------------------------


def test_load_rebuilds_the_same_state() -> None:
    ns = populated()
    ns.delete_group(":g.h")
    ns.set_meta(":g", {"k": "v"})
    fresh, _ = make_ns("B", bootstrap=False)
    fresh.load(reversed(ns.entries_since(0)))  # any order
    assert snapshot(fresh) == snapshot(ns)
    assert fresh.last_seq == ns.last_seq
    assert len(fresh.bootstrap()) == 0


def test_load_keeps_the_higher_stamp_and_the_given_last_seq() -> None:
    old = Entry(":x", Kind.OBJECT, "PYRO://h/1", None, 1.0, 1.0, "A", Stamp(10, "A"))
    new = attrs.evolve(old, uri="PYRO://h/2", stamp=Stamp(20, "A"))
    ns, _ = make_ns(bootstrap=False)
    ns.load([(5, new), (3, old)], last_seq=42)
    assert ns.resolve(":x") == "PYRO://h/2"
    assert ns.last_seq == 42


def test_load_of_100k_entries_is_fast() -> None:
    stamp_base = 1_700_000_000_000_000 << 16
    rows: list[tuple[int, Entry]] = [
        (1, Entry(":", Kind.GROUP, None, None, 1.0, 1.0, "A", Stamp(stamp_base, "A"))),
        (2, Entry(":Default", Kind.GROUP, None, None, 1.0, 1.0, "A", Stamp(stamp_base + 1, "A"))),
    ]
    for g in range(100):
        rows.append(
            (
                len(rows) + 1,
                Entry(
                    f":Default.g{g}",
                    Kind.GROUP,
                    None,
                    None,
                    1.0,
                    1.0,
                    "A",
                    Stamp(stamp_base + len(rows), "A"),
                ),
            )
        )
    while len(rows) < 100_000:
        i = len(rows)
        name = f":Default.g{i % 100}.o{i}"
        rows.append(
            (
                i + 1,
                Entry(
                    name,
                    Kind.OBJECT,
                    f"PYRO://h/{i}",
                    None,
                    1.0,
                    1.0,
                    "A",
                    Stamp(stamp_base + i, "A"),
                    deleted=i % 10 == 0,
                ),
            )
        )
    ns, _ = make_ns(bootstrap=False)
    started = time.perf_counter()
    ns.load(rows)
    elapsed = time.perf_counter() - started
    assert elapsed < 20.0, f"load took {elapsed:.2f}s"  # guards a hang or O(n^2), not speed
    assert ns.stored_count == 100_000
    assert ns.entry_count == 1 + 100 + sum(1 for _, e in rows[102:] if not e.deleted)
    assert ns.resolve(":Default.g1.o201") == "PYRO://h/201"
    assert len(ns.list(":Default.g7")) > 800
    assert ns.last_seq == 100_000


# -- digest -------------------------------------------------------------------------


def test_digest_is_equal_for_equal_entries_and_differs_otherwise() -> None:
    ns = populated()
    rows = ns.entries_since(0)
    a, _ = make_ns("B", bootstrap=False)
    b, _ = make_ns("C", bootstrap=False)
    for _, e in rows:
        a.merge(e)
    for _, e in reversed(rows):
        b.merge(e)
    assert a.digest() == b.digest() == ns.digest()
    ns.set_meta(":g", 1)
    assert ns.digest() != a.digest()
    loaded, _ = make_ns("D", bootstrap=False)
    loaded.load(ns.entries_since(0))  # computed lazily after load
    assert loaded.digest() == ns.digest()
    loaded.register(":g.more", "PYRO://h/5")  # then kept up to date
    ns.merge(loaded.entry(":g.more"))  # type: ignore[arg-type]
    assert loaded.digest() == ns.digest()


def test_digest_covers_every_field() -> None:
    base = Entry(":x", Kind.OBJECT, "PYRO://h/1", {"a": 1}, 1.0, 2.0, "A", Stamp(10, "A"))
    variants = [
        attrs.evolve(base, name=":y"),
        attrs.evolve(base, kind=Kind.GROUP),
        attrs.evolve(base, uri="PYRO://h/2"),
        attrs.evolve(base, meta={"a": 2}),
        attrs.evolve(base, created=1.5),
        attrs.evolve(base, modified=2.5),
        attrs.evolve(base, owner="B"),
        attrs.evolve(base, stamp=Stamp(11, "A")),
        attrs.evolve(base, stamp=Stamp(10, "B")),
        attrs.evolve(base, deleted=True),
    ]
    from pairns.namespace import entry_hash

    hashes = {entry_hash(v) for v in [base, *variants]}
    assert len(hashes) == len(variants) + 1
    assert entry_hash(attrs.evolve(base, meta={"b": 1, "a": 2})) == entry_hash(
        attrs.evolve(base, meta={"a": 2, "b": 1})
    )


# -- dump pages and lookups -----------------------------------------------------------


def test_dump_pages_walk_every_visible_name_in_order() -> None:
    ns = populated()
    ns.set_meta(":g.obj", {"m": 1})
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page, more = ns.dump_page(after, 3)
        seen.extend(page)
        if not more:
            break
        after = page[-1]["name"]
    assert [item["name"] for item in seen] == [
        ":Default",
        ":Default.x",
        ":Pyro",
        ":g",
        ":g.h",
        ":g.h.obj",
        ":g.obj",
        ":top",
    ]
    assert seen[6] == {"name": ":g.obj", "kind": "object", "uri": "PYRO://h/1", "meta": {"m": 1}}
    assert seen[3] == {"name": ":g", "kind": "group", "uri": None, "meta": None}
    assert ns.dump_page(":top", 10) == ([], False)


def test_lookup_and_entry() -> None:
    ns = populated()
    entry = ns.lookup(":g.obj")
    assert entry is not None and entry.uri == "PYRO://h/1"
    assert ns.lookup(":nope") is None
    ns.unregister(":g.obj")
    assert ns.lookup(":g.obj") is None
    tomb = ns.entry(":g.obj")
    assert tomb is not None and tomb.deleted
    assert ns.stored_count == ns.entry_count + 2  # the root entry and one tombstone
