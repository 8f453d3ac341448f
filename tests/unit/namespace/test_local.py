"""Node-local names: each node resolves ``:Pyro.NameServer`` to itself (Pyro 3)."""

from __future__ import annotations

import pytest

from pairns.errors import NamingError
from pairns.names import NAMESERVER_NAME
from pairns.namespace import Entry, Kind, Namespace, Stamp

from .support import make_ns

A_URI = "PYRO://127.0.0.1:9090/Pyro.NameServer"
B_URI = "PYRO://127.0.0.1:9091/Pyro.NameServer"


def pair() -> tuple[Namespace, Namespace]:
    a, _ = make_ns("A", start=1000.0)
    b, _ = make_ns("B", start=1000.0)
    a.set_local(NAMESERVER_NAME, A_URI)
    b.set_local(NAMESERVER_NAME, B_URI)
    return a, b


def sync(a: Namespace, b: Namespace) -> None:
    for src, dst in ((a, b), (b, a)):
        dst.merge_all([(e, src.seen_of(e.name)) for _, e in src.entries_since(0)])


def test_each_node_resolves_its_own_entry_and_the_digests_agree() -> None:
    a, b = pair()
    found: list[object] = []
    a.on_conflict = b.on_conflict = found.append
    sync(a, b)
    assert a.resolve(NAMESERVER_NAME) == A_URI
    assert b.resolve(NAMESERVER_NAME) == B_URI
    assert a.digest() == b.digest()
    assert found == []
    assert ("NameServer", 1) in a.list(":Pyro")
    assert (NAMESERVER_NAME, A_URI) in a.flatlist()
    assert a.get_system_meta(NAMESERVER_NAME)["kind"] == "object"
    assert a.get_meta(NAMESERVER_NAME) is None


def test_it_is_neither_in_the_feed_nor_in_the_digest() -> None:
    a, _ = make_ns("A", start=1000.0)
    before = (a.digest(), a.last_seq, a.entries_since(0))
    a.set_local(NAMESERVER_NAME, A_URI)
    assert (a.digest(), a.last_seq, a.entries_since(0)) == before
    assert all(e.name != NAMESERVER_NAME for _, e in a.entries_since(0))


def test_clients_cannot_change_it() -> None:
    a, _ = pair()
    for call in (
        lambda: a.register(NAMESERVER_NAME, B_URI),
        lambda: a.unregister(NAMESERVER_NAME),
        lambda: a.set_meta(NAMESERVER_NAME, {"x": 1}),
        lambda: a.create_group(NAMESERVER_NAME),
        lambda: a.register(NAMESERVER_NAME + ".below", B_URI),
    ):
        with pytest.raises(NamingError):
            call()
    assert a.resolve(NAMESERVER_NAME) == A_URI


def test_a_client_cannot_take_the_name_before_the_node_sets_it() -> None:
    a, _ = make_ns("A", start=1000.0)
    with pytest.raises(NamingError, match="name already exists"):
        a.register(NAMESERVER_NAME, B_URI)


def test_a_twin_entry_for_it_is_refused() -> None:
    a, _ = pair()
    forged = Entry(NAMESERVER_NAME, Kind.OBJECT, B_URI, None, 1.0, 1.0, "B", Stamp(1 << 40, "B"))
    with pytest.raises(ValueError, match="keeps for itself"):
        a.merge(forged)
    with pytest.raises(ValueError, match="keeps for itself"):
        a.merge(
            Entry(
                NAMESERVER_NAME,
                Kind.OBJECT,
                None,
                None,
                1.0,
                1.0,
                "B",
                Stamp(1 << 40, "B"),
                deleted=True,
            )
        )
    assert a.resolve(NAMESERVER_NAME) == A_URI


def test_it_follows_its_group() -> None:
    a, _ = pair()
    a.delete_group(":Pyro")
    with pytest.raises(NamingError):
        a.resolve(NAMESERVER_NAME)
    assert NAMESERVER_NAME not in dict(a.flatlist())
    a.create_group(":Pyro")
    assert a.resolve(NAMESERVER_NAME) == A_URI
    assert a.list(":Pyro") == [("NameServer", 1)]
    a.register(":Pyro.other", B_URI)
    assert a.list(":Pyro") == [("NameServer", 1), ("other", 1)]


def test_a_stored_row_of_an_earlier_version_is_dropped_at_load() -> None:
    a, _ = make_ns("A", start=1000.0)
    a.register(":Default.x", B_URI)
    rows = a.entries_since(0)
    old = Entry(NAMESERVER_NAME, Kind.OBJECT, B_URI, None, 1.0, 1.0, "A", Stamp(1 << 40, "A"))
    b, _ = make_ns("A", start=1000.0)
    b.load([*rows, (a.last_seq + 1, old)], a.last_seq + 1)
    assert b.digest() == a.digest()
    assert all(e.name != NAMESERVER_NAME for _, e in b.entries_since(0))
    b.check_invariants()
    b.set_local(NAMESERVER_NAME, A_URI)
    assert b.resolve(NAMESERVER_NAME) == A_URI
    with pytest.raises(ValueError):
        b.set_local(":Default.x", A_URI)


def test_it_comes_back_when_a_write_below_revives_its_group() -> None:
    a, b = pair()
    sync(a, b)
    a.delete_group(":Pyro")
    with pytest.raises(NamingError):
        a.resolve(NAMESERVER_NAME)
    b.register(":Pyro.other", B_URI)  # concurrent with the deletion, newer: revives :Pyro
    for _, entry in b.entries_since(0):
        if entry.name == ":Pyro.other":
            a.merge(entry, b.seen_of(entry.name))
    assert a.resolve(":Pyro.other") == B_URI
    assert a.resolve(NAMESERVER_NAME) == A_URI
    assert ("NameServer", 1) in a.list(":Pyro")
    a.check_invariants()
