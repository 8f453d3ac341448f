"""Name validation and the name helpers (Pyro 3 naming rules)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairns import names
from pairns.errors import NamingError

VALID_ABSOLUTE = [
    ":",
    ":a",
    ":TestObj",
    ":Test.simple.object1",
    ":Pyro.NameServer",
    ":with/slash",
    ":!#$%&'()*+,-/09;<=>?@AZ[]^_`az{|}~",
    ":a.b.c.d.e",
]

VALID_RELATIVE = [
    ("object1", ":Default.object1"),
    ("Test.simple.object1", ":Default.Test.simple.object1"),
    ("", ":Default"),
]

INVALID = [
    # (name, Pyro 3 message)
    (":a..b", "invalid name"),
    (":a.", "invalid name"),
    (":.a", "invalid name"),
    ("a.", "invalid name"),
    (".a", "invalid name"),
    ("a..b", "invalid name"),
    ("::", "invalid name"),
    (":a:b", "invalid name"),
    ("a:b", "invalid name"),
    (":a b", "invalid character(s) in name"),
    ("a b", "invalid character(s) in name"),
    (":a\\b", "invalid character(s) in name"),
    (":a\tb", "invalid character(s) in name"),
    (":caf\u00e9", "invalid character(s) in name"),
    (":a\x7f", "invalid character(s) in name"),
    (":" + "x" * names.MAX_NAME_LENGTH, "name too long"),
]


@pytest.mark.parametrize("name", VALID_ABSOLUTE)
def test_valid_absolute_names_pass_unchanged(name: str) -> None:
    assert names.absolute(name) == name
    assert names.is_absolute_valid(name)


@pytest.mark.parametrize(("name", "expected"), VALID_RELATIVE)
def test_relative_names_expand_against_the_default_group(name: str, expected: str) -> None:
    assert names.absolute(name) == expected


@pytest.mark.parametrize(("name", "message"), INVALID)
def test_invalid_names_raise_pyro_messages(name: str, message: str) -> None:
    with pytest.raises(NamingError) as info:
        names.absolute(name)
    assert info.value.message == message
    assert info.value.name is not None
    assert not names.is_absolute_valid(name)


@pytest.mark.parametrize("value", [None, 5, b":a", [":a"], 1.5])
def test_non_strings_are_invalid_names(value: object) -> None:
    with pytest.raises(NamingError) as info:
        names.absolute(value)
    assert info.value.message == "invalid name"
    assert info.value.name == repr(value)


def test_long_names_are_quoted_shortened_in_errors() -> None:
    with pytest.raises(NamingError) as info:
        names.absolute(":" + "y" * 5000)
    assert info.value.name is not None and len(info.value.name) < 100


def test_max_length_is_inclusive() -> None:
    longest = ":" + "x" * (names.MAX_NAME_LENGTH - 1)
    assert names.absolute(longest) == longest


def test_relative_expansion_that_becomes_too_long_is_refused() -> None:
    with pytest.raises(NamingError, match="name too long"):
        names.absolute("x" * (names.MAX_NAME_LENGTH - 5))


@pytest.mark.parametrize(
    ("default_group", "name", "expected"),
    [
        (":Default", "obj", ":Default.obj"),
        (":My.Nested.Group", "obj", ":My.Nested.Group.obj"),
        (":My.Nested.Group", "a.b", ":My.Nested.Group.a.b"),
        (":My.Nested.Group", "", ":My.Nested.Group"),
        (":", "obj", ":obj"),
        (":", "", ":"),
        (":Other", ":Abs.name", ":Abs.name"),
    ],
)
def test_configured_default_group(default_group: str, name: str, expected: str) -> None:
    assert names.absolute(name, names.check_default_group(default_group)) == expected


@pytest.mark.parametrize("group", ["Default", "", ":a..b", ":a b", 7, None])
def test_bad_default_groups_are_refused(group: object) -> None:
    with pytest.raises(NamingError):
        names.check_default_group(group)


def test_relative_name_with_a_relative_default_group_is_refused() -> None:
    with pytest.raises(NamingError, match="default group name is not absolute"):
        names.absolute("obj", "Default")


def test_constants() -> None:
    assert (names.ROOT, names.SEP) == (":", ".")
    assert names.DEFAULT_GROUP == ":Default"
    assert names.NAMESERVER_NAME == ":Pyro.NameServer"


@pytest.mark.parametrize(
    ("name", "parent", "base", "parts"),
    [
        (":a", ":", "a", ("a",)),
        (":a.b", ":a", "b", ("a", "b")),
        (":a.b.c", ":a.b", "c", ("a", "b", "c")),
    ],
)
def test_structure_helpers(name: str, parent: str, base: str, parts: tuple[str, ...]) -> None:
    assert names.parent(name) == parent
    assert names.basename(name) == base
    assert names.parts(name) == parts
    assert names.join(parent, base) == name


def test_root_structure() -> None:
    with pytest.raises(ValueError):
        names.parent(":")
    assert names.basename(":") == ""
    assert names.parts(":") == ()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (":", ":a", True),
        (":", ":a.b", True),
        (":", ":", False),
        (":a", ":a.b", True),
        (":a", ":a.b.c", True),
        (":a", ":a", False),
        (":a", ":ab", False),
        (":a", ":ab.c", False),
        (":a.b", ":a", False),
    ],
)
def test_is_ancestor(a: str, b: str, expected: bool) -> None:
    assert names.is_ancestor(a, b) is expected


_part = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\\.:"),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_part, min_size=1, max_size=5))
def test_generated_valid_names(parts: list[str]) -> None:
    name = ":" + ".".join(parts)
    assert names.absolute(name) == name
    assert names.parts(name) == tuple(parts)
    assert names.absolute(".".join(parts)) == ":Default." + ".".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_random_text_is_either_valid_or_a_naming_error(text: str) -> None:
    try:
        result = names.absolute(text)
    except NamingError as exc:
        assert exc.message in {
            "invalid name",
            "invalid character(s) in name",
            "name too long",
        }
    else:
        assert names.is_absolute_valid(result)
