"""Parsing and printing Pyro URIs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.errors import URIError
from pairns.uri import DEFAULT_NS_PORT, DEFAULT_PYRO_PORT, MAX_URI_LENGTH, URI, new_object_id

GOOD = [
    # (input, canonical text, protocol, host, port, path)
    (
        "PYRO://localhost/12345678-12345678-12345678-12345678",
        "PYRO://localhost/12345678-12345678-12345678-12345678",
        "PYRO",
        "localhost",
        None,
        "12345678-12345678-12345678-12345678",
    ),
    (
        "PYRO://192.168.1.10:7766/c0a8010a0f2c4a6b9d1e77005b3c2a19",
        "PYRO://192.168.1.10:7766/c0a8010a0f2c4a6b9d1e77005b3c2a19",
        "PYRO",
        "192.168.1.10",
        7766,
        "c0a8010a0f2c4a6b9d1e77005b3c2a19",
    ),
    (
        "PYROLOC://localhost/MyObject",
        "PYROLOC://localhost/MyObject",
        "PYROLOC",
        "localhost",
        None,
        "MyObject",
    ),
    (
        "PYROLOCSSL://host:1234/:Obj",
        "PYROLOCSSL://host:1234/:Obj",
        "PYROLOCSSL",
        "host",
        1234,
        ":Obj",
    ),
    ("PYROSSL://h/abc", "PYROSSL://h/abc", "PYROSSL", "h", None, "abc"),
    (
        "PYRONAME://localhost:9090/:Test.obj",
        "PYRONAME://localhost:9090/:Test.obj",
        "PYRONAME",
        "localhost",
        9090,
        ":Test.obj",
    ),
    ("PYRONAME://:Test.obj", "PYRONAME://:Test.obj", "PYRONAME", None, None, ":Test.obj"),
    ("PYRONAME://name", "PYRONAME://name", "PYRONAME", None, None, "name"),
    (
        "PYRONAME://nshost/Test.obj",
        "PYRONAME://nshost/Test.obj",
        "PYRONAME",
        "nshost",
        None,
        "Test.obj",
    ),
    # case-insensitive protocol and host, canonical upper/lower case
    ("pyro://LocalHost:80/Id", "PYRO://localhost:80/Id", "PYRO", "localhost", 80, "Id"),
    ("PyroName://:x", "PYRONAME://:x", "PYRONAME", None, None, ":x"),
    # IPv6 in brackets, compressed
    ("PYRO://[::1]:7766/x", "PYRO://[::1]:7766/x", "PYRO", "::1", 7766, "x"),
    ("PYRO://[0:0:0:0:0:0:0:1]/x", "PYRO://[::1]/x", "PYRO", "::1", None, "x"),
    ("PYRO://[FE80::1]/x", "PYRO://[fe80::1]/x", "PYRO", "fe80::1", None, "x"),
    # surrounding whitespace (a URI file's newline) is ignored
    ("  PYRO://h/x\n", "PYRO://h/x", "PYRO", "h", None, "x"),
    # the daemon's own object id has a dot in it
    (
        "PYRO://h:9090/Pyro.NameServer",
        "PYRO://h:9090/Pyro.NameServer",
        "PYRO",
        "h",
        9090,
        "Pyro.NameServer",
    ),
    (
        "PYRO://my-host.example.com./a/b",
        "PYRO://my-host.example.com./a/b",
        "PYRO",
        "my-host.example.com.",
        None,
        "a/b",
    ),
    ("PYRO://h:65535/x", "PYRO://h:65535/x", "PYRO", "h", 65535, "x"),
    ("PYRO://h:1/x", "PYRO://h:1/x", "PYRO", "h", 1, "x"),
]

BAD = [
    # (input, fragment of the error message)
    ("", "empty URI"),
    ("   ", "empty URI"),
    ("localhost/obj", 'missing "://"'),
    ("PYRO:/h/x", 'missing "://"'),
    ("HTTP://h/x", "unknown protocol 'HTTP'"),
    ("PYRONAMESSL://h/x", "unknown protocol"),
    ("://h/x", "unknown protocol ''"),
    ("PYRO://h", 'missing "/" before the object id'),
    ("PYROLOC://h", 'missing "/" before the name'),
    ("PYRO:///x", "empty host"),
    ("PYRO://:7766/x", "empty host"),
    ("PYRO://h/", "empty object id"),
    ("PYROLOC://h/", "empty name"),
    ("PYRONAME://", "empty name"),
    ("PYRONAME://h:9090/", "empty name"),
    ("PYRO://h:/x", "empty port"),
    ("PYRO://h:abc/x", "port 'abc' is not a number"),
    ("PYRO://h:-1/x", "is not a number"),
    ("PYRO://h:0/x", "out of range"),
    ("PYRO://h:65536/x", "out of range"),
    ("PYRO://h:99999999999/x", "out of range"),
    ("PYRO://h:\u0661\u0662/x", "is not a number"),
    ("PYRO://::1/x", "must be written in brackets"),
    ("PYRO://[::1/x", "missing ']'"),
    ("PYRO://[::1]x/x", "unexpected 'x'"),
    ("PYRO://[nonsense]/x", "invalid IPv6 address"),
    ("PYRO://-bad/x", "invalid host"),
    ("PYRO://bad..host/x", "invalid host"),
    ("PYRO://h\u00e9/x", "invalid host"),
    ("PYRO://h/a b", "whitespace"),
    ("PYRO://h /x", "whitespace"),
    ("PYRO://h/\x00", "invalid character in object id"),
    ("PYROLOC://h/caf\u00e9", "invalid character in name"),
    ("PYRO://" + "h" * 300 + "/x", "invalid host"),
    ("PYRO://h/" + "x" * MAX_URI_LENGTH, "URI too long"),
]


@pytest.mark.parametrize(("text", "canonical", "protocol", "host", "port", "path"), GOOD)
def test_good_uris(
    text: str, canonical: str, protocol: str, host: str | None, port: int | None, path: str
) -> None:
    uri = URI.from_string(text)
    assert (uri.protocol, uri.host, uri.port, uri.path) == (protocol, host, port, path)
    assert str(uri) == canonical
    assert URI.from_string(str(uri)) == uri


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_bad_uris_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(URIError) as info:
        URI.from_string(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize("value", [None, 5, b"PYRO://h/x", ["PYRO://h/x"]])
def test_non_strings_are_uri_errors(value: object) -> None:
    with pytest.raises(URIError, match="must be a string"):
        URI.from_string(value)


def test_a_uri_instance_is_returned_as_is() -> None:
    uri = URI.from_string("PYRO://h/x")
    assert URI.from_string(uri) is uri


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("PYRO://h/x", ("h", DEFAULT_PYRO_PORT)),
        ("PYROSSL://h/x", ("h", DEFAULT_PYRO_PORT)),
        ("PYROLOC://h/x", ("h", DEFAULT_PYRO_PORT)),
        ("PYROLOCSSL://h/x", ("h", DEFAULT_PYRO_PORT)),
        ("PYRONAME://h/x", ("h", DEFAULT_NS_PORT)),
        ("PYRO://h:1234/x", ("h", 1234)),
        ("PYRONAME://h:1234/x", ("h", 1234)),
        ("PYRO://[::1]/x", ("::1", DEFAULT_PYRO_PORT)),
    ],
)
def test_address_applies_default_ports(text: str, address: tuple[str, int]) -> None:
    assert URI.from_string(text).address == address


def test_default_ports_are_pyro_3s() -> None:
    assert (DEFAULT_PYRO_PORT, DEFAULT_NS_PORT) == (7766, 9090)


def test_hostless_pyroname_has_no_address() -> None:
    with pytest.raises(URIError, match="locate the name server"):
        _ = URI.from_string("PYRONAME://:Test.obj").address


@pytest.mark.parametrize(
    ("text", "ssl"),
    [
        ("PYRO://h/x", False),
        ("PYROSSL://h/x", True),
        ("PYROLOCSSL://h/x", True),
        ("PYROLOC://h/x", False),
        ("PYRONAME://x", False),
    ],
)
def test_is_ssl(text: str, ssl: bool) -> None:
    assert URI.from_string(text).is_ssl is ssl


def test_pyro_constructor() -> None:
    assert str(URI.pyro("localhost", 9090, "Pyro.NameServer")) == (
        "PYRO://localhost:9090/Pyro.NameServer"
    )
    assert str(URI.pyro("::1", None, "x", ssl=True)) == "PYROSSL://[::1]/x"
    with pytest.raises(URIError):
        URI.pyro("", 1, "x")
    with pytest.raises(URIError):
        URI.pyro("h", 0, "x")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("PYRO", None, None, "x"), "needs a host"),
        (("PYROLOC", None, None, "x"), "needs a host"),
        (("PYRONAME", None, 9090, "x"), "a port needs a host"),
        (("PYRO", "h", True, "x"), "port must be an integer"),
        (("PYRO", "h", "80", "x"), "port must be an integer"),
        (("PYRO", 5, None, "x"), "host must be a string"),
        (("FOO", "h", None, "x"), "unknown protocol"),
        (("PYRO", "h", None, 5), "object id must be a string"),
        (("PYRONAME", None, None, "a/b"), "needs a host in front"),
    ],
)
def test_direct_construction_validates(args: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(URIError, match=re.escape(fragment)):
        URI(*args)  # type: ignore[arg-type]


def test_uris_are_frozen_values() -> None:
    a = URI.from_string("pyro://H/x")
    b = URI.from_string("PYRO://h/x")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.host = "other"  # type: ignore[misc]


def test_new_object_ids_look_like_pyro_guids_and_are_unique() -> None:
    ids = {new_object_id() for _ in range(2000)}
    assert len(ids) == 2000
    for oid in list(ids)[:50]:
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){3}", oid)
        assert str(URI.pyro("h", None, oid)) == f"PYRO://h/{oid}"


_host = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9](\.[a-z][a-z0-9]{0,5}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_path = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
)
_port = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["PYRO", "PYROSSL", "PYROLOC", "PYROLOCSSL", "PYRONAME"]),
    _host,
    _port,
    _path,
)
def test_generated_uris_round_trip(protocol: str, host: str, port: int | None, path: str) -> None:
    uri = URI(protocol, host, port, path)
    text = str(uri)
    again = URI.from_string(text)
    assert again == uri
    assert str(again) == text
    assert URI.from_string(protocol.lower() + text[len(protocol) :]) == uri


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([":", "n"]).flatmap(lambda first: _path.map(lambda p: first + p)))
def test_hostless_pyroname_round_trips(name: str) -> None:
    try:
        uri = URI("PYRONAME", None, None, name)
    except URIError as exc:
        assert "/" in name and "needs a host" in str(exc)
        return
    assert URI.from_string(str(uri)) == uri
    assert str(uri) == f"PYRONAME://{name}"


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda p, rest: p + "://" + rest,
            st.sampled_from(["PYRO", "pyroname", "PYROLOC", "PYROSSL", "x"]),
            st.text(max_size=40),
        ),
    )
)
def test_random_text_raises_only_uri_errors(text: str) -> None:
    try:
        uri = URI.from_string(text)
    except URIError:
        return
    assert URI.from_string(str(uri)) == uri


def _reference_canonical(text: str) -> bool:
    try:
        return str(URI.from_string(text)) == text
    except URIError:
        return False


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda p, host, port, path: f"{p}://{host}{port}/{path}",
            st.sampled_from(["PYRO", "pyro", "PYRONAME", "PYROLOC", "PYROLOCSSL", "PYROSSL", "X"]),
            st.sampled_from(["h", "H", "host.example", "[::1]", "[0::1]", "1.2.3.4", "", "a b"]),
            st.sampled_from(["", ":1", ":01", ":65535", ":70000", ":x", ":"]),
            st.text(max_size=20),
        ),
        st.builds(
            lambda p, h, port, path: str(URI(p, h, port, path)),
            st.sampled_from(["PYRO", "PYROSSL", "PYROLOC", "PYROLOCSSL", "PYRONAME"]),
            _host,
            _port,
            _path,
        ),
    )
)
def test_is_canonical_agrees_with_parsing(text: str) -> None:
    """The fast check the peer link uses says exactly what parse-and-format says."""
    from pairns.uri import is_canonical

    assert is_canonical(text) == _reference_canonical(text)
    assert not is_canonical(b"PYRO://h:1/x") and not is_canonical(None)
