"""Entries and stamps: the fast bulk constructors make the same values as attrs' ones."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairns.namespace.entry import Entry, Kind, make_entry
from pairns.namespace.stamps import Stamp, make_stamp

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@st.composite
def entries(draw: Any) -> Entry:
    kind = draw(st.sampled_from(Kind))
    return Entry(
        name=":" + draw(st.text(alphabet="abc.", min_size=1, max_size=8)),
        kind=kind,
        uri=draw(st.none() | st.just("PYRO://h:1/x")) if kind is Kind.OBJECT else None,
        meta=draw(_json),
        created=draw(st.floats(0, 2e9)),
        modified=draw(st.floats(0, 2e9)),
        owner=draw(st.sampled_from(["n1", "n2"])),
        stamp=Stamp(draw(st.integers(0, 2**63 - 1)), draw(st.sampled_from(["n1", "n2"]))),
        deleted=draw(st.booleans()),
    )


@given(entries())
def test_make_entry_and_make_stamp_equal_the_attrs_constructors(entry: Entry) -> None:
    stamp = make_stamp(entry.stamp.hlc, entry.stamp.node)
    assert stamp == entry.stamp and hash(stamp) == hash(entry.stamp)
    assert not stamp < entry.stamp and stamp <= entry.stamp
    fast = make_entry(
        *[getattr(entry, f.name) for f in attrs.fields(Entry)][:7], stamp, entry.deleted
    )
    assert fast == entry and type(fast) is Entry
    assert attrs.asdict(fast, recurse=False) == attrs.asdict(entry, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.name = ":other"  # type: ignore[misc]


@given(entries())
def test_rows_round_trip_through_from_row(entry: Entry) -> None:
    assert Entry.from_row(entry.to_row()) == entry


def test_from_row_rejects_a_bad_kind() -> None:
    row = list(Entry(":a", Kind.GROUP, None, None, 1.0, 1.0, "n1", Stamp(1, "n1")).to_row())
    row[1] = 7
    with pytest.raises(ValueError, match="kind"):
        Entry.from_row(row)
