"""Entries from storage rows: one at a time and many at once give the same values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairns.namespace.entry import (
    Entry,
    Kind,
    entries_from_columns,
    entries_from_rows,
    entries_to_columns,
)
from pairns.namespace.stamps import Stamp

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


@given(st.lists(entries(), max_size=8))
def test_entries_from_rows_equals_from_row_one_by_one(batch: list[Entry]) -> None:
    rows = [entry.to_row() for entry in batch]
    built = entries_from_rows(rows)
    assert built == [Entry.from_row(row) for row in rows] == batch
    assert all(type(entry) is Entry and type(entry.stamp) is Stamp for entry in built)


@given(st.lists(entries(), max_size=8))
def test_entries_to_columns_is_to_row_by_column_and_round_trips(batch: list[Entry]) -> None:
    columns = entries_to_columns(batch)
    rows = [entry.to_row() for entry in batch]
    expected = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(10)]
    expected[7] = [int(hlc) for hlc in expected[7]]  # the one difference: the HLC as int
    assert columns == expected
    assert entries_from_columns(*columns) == batch


def test_entries_from_rows_rejects_bad_rows() -> None:
    good = Entry(":a", Kind.GROUP, None, None, 1.0, 1.0, "n1", Stamp(1, "n1")).to_row()
    for column, bad in ((1, 7), (1, -1), (7, "not a number"), (3, "{not json")):
        row = list(good)
        row[column] = bad
        with pytest.raises(ValueError, match="invalid entry"):
            entries_from_rows([good, row])
    with pytest.raises(ValueError, match="invalid entry"):
        entries_from_rows([good, good[:5]])


@given(entries())
def test_rows_round_trip_through_from_row(entry: Entry) -> None:
    assert Entry.from_row(entry.to_row()) == entry


def test_from_row_rejects_a_bad_kind() -> None:
    row = list(Entry(":a", Kind.GROUP, None, None, 1.0, 1.0, "n1", Stamp(1, "n1")).to_row())
    row[1] = 7
    with pytest.raises(ValueError, match="kind"):
        Entry.from_row(row)
