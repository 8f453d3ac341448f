"""Building many entries and stamps at once gives what their constructors give."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairns.namespace import Entry, Kind, Stamp
from pairns.namespace._slots import column_builder
from pairns.namespace.entry import make_entries
from pairns.namespace.stamps import make_stamps

row = st.tuples(
    st.text(max_size=5),
    st.sampled_from(list(Kind)),
    st.one_of(st.none(), st.text(max_size=5)),
    st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.builds(Stamp, st.integers(0, 2**63), st.text(max_size=3)),
    st.booleans(),
)


@given(st.lists(row, max_size=20))
def test_make_entries_equals_the_constructor(rows: list[tuple[object, ...]]) -> None:
    columns = [list(column) for column in zip(*rows, strict=True)] or [[]] * 9
    made = make_entries(*columns)
    assert made == [Entry(*r) for r in rows]  # type: ignore[arg-type]
    assert all(type(e) is Entry for e in made)
    if made:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            made[0].name = "x"  # type: ignore[misc]


def test_make_stamps_and_bad_columns() -> None:
    assert make_stamps([1, 5], ["a", "b"]) == [Stamp(1, "a"), Stamp(5, "b")]
    with pytest.raises(ValueError):
        make_stamps([1, 5], ["a"])
    with pytest.raises(ValueError):
        make_entries([":a"], [Kind.GROUP])


def test_a_class_with_a_validator_is_built_by_its_constructor() -> None:
    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=attrs.validators.instance_of(int))

    build = column_builder(Checked, [[1, 2]])
    assert build([3]) == [Checked(3)]
    with pytest.raises(TypeError):
        build(["no"])
