"""The name helpers of the visibility rule agree with :mod:`pairns.names`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairns import names
from pairns.namespace.visibility import base_of, depth, parent_of, upper_ancestors


@pytest.mark.parametrize(
    ("name", "upper"),
    [
        (":", []),
        (":a", []),
        (":a.b", [":a"]),
        (":a.b.c", [":a", ":a.b"]),
        (":x!.y-z.~", [":x!", ":x!.y-z"]),
    ],
)
def test_upper_ancestors_are_the_ancestors_but_the_root_top_first(
    name: str, upper: list[str]
) -> None:
    assert upper_ancestors(name) == upper


_part = st.text(alphabet="ab!-~", min_size=1, max_size=3)


@given(st.lists(_part, min_size=1, max_size=5))
def test_helpers_match_the_names_module(parts: list[str]) -> None:
    name = names.ROOT + names.SEP.join(parts)
    assert parent_of(name) == names.parent(name)
    assert base_of(name, parent_of(name)) == names.basename(name)
    assert depth(name) == len(parts) - 1
    upper = upper_ancestors(name)
    assert all(names.is_ancestor(a, name) for a in upper)
    assert [names.parts(a) for a in upper] == [tuple(parts[:i]) for i in range(1, len(parts))]
