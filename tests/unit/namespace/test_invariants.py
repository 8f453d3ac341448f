"""``Namespace.check_invariants`` notices upkeep that went wrong (so the property tests
that call it through ``assert_matches_oracle`` can fail)."""

from __future__ import annotations

import attrs
import pytest

from pairns.namespace import Entry, Kind, Stamp
from pairns.namespace import state as state_module
from pairns.namespace.visibility import View

from .support import make_ns


def test_a_consistent_namespace_passes() -> None:
    ns, _ = make_ns()
    ns.set_local(":Pyro.NameServer", "PYRO://127.0.0.1:9090/Pyro.NameServer")
    ns.create_group(":g")
    ns.register(":g.a", "PYRO://h:1/a")
    ns.digest()
    ns.delete_group(":g")
    ns.register(":Default.b", "PYRO://h:1/b")
    ns.check_invariants()


def test_a_view_left_behind_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, _ = make_ns()
    monkeypatch.setattr(View, "refresh", lambda self, name, old, new: ([], []))
    ns.register(":Default.a", "PYRO://h:1/a")
    with pytest.raises(AssertionError, match="view's objects"):
        ns.check_invariants()


def test_a_child_index_left_behind_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, _ = make_ns()
    # Index every new name under the root, whatever its parent.
    monkeypatch.setattr(state_module, "parent_of", lambda name: ":")
    ns.create_group(":Default.g")
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="child index"):
        ns.check_invariants()


def test_a_stale_digest_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    ns, _ = make_ns()
    ns.digest()
    monkeypatch.setattr(state_module, "entry_hash", lambda entry: 0)
    ns.register(":Default.a", "PYRO://h:1/a")
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="digest"):
        ns.check_invariants()


def test_a_load_with_a_name_twice_keeps_the_newest_and_stays_consistent() -> None:
    old = Entry(":x", Kind.OBJECT, "PYRO://h/1", None, 1.0, 1.0, "A", Stamp(10, "A"))
    new = attrs.evolve(old, uri="PYRO://h/2", stamp=Stamp(20, "A"))
    other = attrs.evolve(old, name=":y", stamp=Stamp(5, "A"))
    ns, _ = make_ns(bootstrap=False)
    ns.load([(3, new), (4, other), (5, old)])
    assert ns.resolve(":x") == "PYRO://h/2"
    assert ns.entries_since(0) == [(3, new), (4, other)]
    assert ns.last_seq == 4  # the feed goes on after the rows kept
    ns.check_invariants()
