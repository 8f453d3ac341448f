"""Helpers shared by the namespace tests: a fake clock, a snapshot of what a namespace
shows, and an oracle that computes visibility naively, straight from the written rule."""

from __future__ import annotations

from typing import Any

import attrs

from pairns import names
from pairns.namespace import Entry, HybridClock, Kind, Namespace


@attrs.define
class FakeTime:
    """A wall clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_ns(
    node: str = "A",
    *,
    start: float = 1000.0,
    default_group: str = names.DEFAULT_GROUP,
    bootstrap: bool = True,
) -> tuple[Namespace, FakeTime]:
    """A namespace on a fake clock, bootstrapped unless told otherwise."""
    time = FakeTime(start)
    ns = Namespace(node, HybridClock(node, now=time), default_group=default_group)
    if bootstrap:
        ns.bootstrap()
    return ns, time


def visible_names(ns: Namespace) -> dict[str, str]:
    """Every visible name with its kind ("group"/"object"), from the public dump."""
    page, more = ns.dump_page(None, 10**9)
    assert not more
    shown = {item["name"]: item["kind"] for item in page}
    assert ":" not in shown
    shown[":"] = "group"
    return shown


def snapshot(ns: Namespace) -> dict[str, Any]:
    """Everything a client (and the status page) can see, plus the stored entries."""
    shown = visible_names(ns)
    return {
        "visible": shown,
        "objects": ns.flatlist(),
        "lists": {name: ns.list(name) for name, kind in shown.items() if kind == "group"},
        "meta": {name: ns.get_meta(name) for name in shown},
        "count": ns.entry_count,
        "digest": ns.digest(),
        "stored": {e.name: e for _, e in ns.entries_since(0)},
    }


def _upper(name: str) -> list[str]:
    """The proper ancestors of *name* but the root, top first (written here, not taken
    from the code under test)."""
    parts = names.parts(name)
    return [names.ROOT + names.SEP.join(parts[:i]) for i in range(1, len(parts))]


def oracle(entries: dict[str, Entry]) -> dict[str, Kind]:
    """Visible names and kinds, computed naively from the rule in docs/namespace-merge.md."""

    def self_visible(name: str, entry: Entry) -> bool:
        if name == names.ROOT or entry.deleted:
            return False
        for ancestor in _upper(name):
            above = entries.get(ancestor)
            if above is None:
                return False
            if not above.deleted and above.kind is Kind.OBJECT:
                return False
            if above.deleted and not above.stamp < entry.stamp:
                return False
        return True

    shown: dict[str, Kind] = {names.ROOT: Kind.GROUP}
    selfish = [name for name, entry in entries.items() if self_visible(name, entry)]
    for name in selfish:
        shown[name] = entries[name].kind
    for name in selfish:
        for ancestor in _upper(name):
            shown.setdefault(ancestor, Kind.GROUP)
    return shown


def assert_matches_oracle(ns: Namespace) -> None:
    """The incrementally kept view equals the naive rule and a from-scratch rebuild."""
    stored = {e.name: e for _, e in ns.entries_since(0)}
    expected = oracle(stored)
    shown = visible_names(ns)
    assert shown == {n: ("object" if k is Kind.OBJECT else "group") for n, k in expected.items()}
    assert ns.flatlist() == sorted(
        (n, stored[n].uri) for n, k in expected.items() if k is Kind.OBJECT
    )
    for group in (n for n, k in expected.items() if k is Kind.GROUP):
        children = sorted(
            (names.basename(c), int(k))
            for c, k in expected.items()
            if c != names.ROOT and names.parent(c) == group
        )
        assert ns.list(group) == children
    assert ns.entry_count == len(expected) - 1
    fresh, _ = make_ns("Z", bootstrap=False)
    fresh.load(ns.entries_since(0))
    assert visible_names(fresh) == shown
    # The kept bookkeeping is what a from-scratch rebuild makes: later incremental
    # updates start from the same place either way.
    ns.check_invariants()
    fresh.check_invariants()
    assert fresh.digest() == ns.digest()
