"""Names in the namespace: validation at the edge, cheap helpers inside the core.

Inside pairns a name is a plain ``str`` that is always *absolute* and already valid, so
that a resolve is a dict lookup and nothing more. :func:`absolute` is the one gate every
name from outside passes through (it runs on every call, so it is a single regular
expression match, with no cache to grow).

The rules are Pyro 3's:

* The root group is ``":"``. An absolute name starts with ``":"``; its parts are
  separated by ``"."`` (``":Test.simple.object1"``).
* A relative name (no leading ``":"``) is searched in the default group: ``"object1"``
  means ``":Default.object1"`` when the default group is ``":Default"``. The empty name
  means the default group itself (Pyro 3's ``_expandName``).
* A part consists of ASCII characters 33..126 except backslash, ``"."`` and ``":"``;
  empty parts (``":a..b"``, ``":a."``, ``"a."``) are invalid.

Errors use Pyro 3's wording: ``NamingError("invalid name", name)`` for a malformed name
and ``NamingError("invalid character(s) in name", name)`` when a part holds a character
outside the allowed set. A name longer than :data:`MAX_NAME_LENGTH` is refused with
``NamingError("name too long", <the first 64 characters>...)``.
"""

from __future__ import annotations

import re

from pairns.errors import NamingError

__all__ = [
    "DEFAULT_GROUP",
    "MAX_NAME_LENGTH",
    "NAMESERVER_NAME",
    "ROOT",
    "SEP",
    "absolute",
    "basename",
    "check_default_group",
    "is_absolute_valid",
    "is_ancestor",
    "join",
    "parent",
    "parts",
]

#: The namespace root group.
ROOT = ":"
#: Separates the parts of a compound name.
SEP = "."
#: Where relative names are searched unless configured otherwise (``PYRO_NS_DEFAULTGROUP``).
DEFAULT_GROUP = ":Default"
#: The name the name server registers itself under (Pyro 3's ``NAMESERVER_NAME``).
NAMESERVER_NAME = ":Pyro.NameServer"

#: The daemon object id the name server is served under (``PYRO://host:port/Pyro.NameServer``).
NAMESERVER_OBJECT_ID = "Pyro.NameServer"

#: Longest accepted absolute name, in characters. Pyro 3 had no limit, but its
#: persistent name server mapped names onto file paths, which most systems cap at 4096
#: bytes (255 per part). 1024 leaves room for any sane hierarchy while keeping every
#: entry, wire frame and log line small: a client cannot make the node store or echo
#: megabyte-sized keys.
MAX_NAME_LENGTH = 1024

# One part: printable ASCII 33..126 without "\\" (92), "." (46) and ":" (58).
_PART = r"[!-\-/-9;-\[\]-~]+"
_ABSOLUTE_RE = re.compile(rf":(?:{_PART}(?:\.{_PART})*)?", re.ASCII)
_RELATIVE_RE = re.compile(rf"{_PART}(?:\.{_PART})*", re.ASCII)
# Characters that may appear anywhere in a name (parts plus the separators); used only
# to pick the error message once a name has failed.
_ALLOWED_CHARS_RE = re.compile(r"[!-\[\]-~]*", re.ASCII)

#: Longest piece of an offending name quoted back in an error.
_QUOTE_LIMIT = 64


def _quote(name: str) -> str:
    return name if len(name) <= _QUOTE_LIMIT else name[:_QUOTE_LIMIT] + "..."


def _invalid(name: str) -> NamingError:
    if len(name) > MAX_NAME_LENGTH:
        return NamingError("name too long", _quote(name))
    body = name[1:] if name.startswith(ROOT) else name
    # Pyro 3 reports bad characters separately from bad structure; a ":" inside a
    # name is structure (it only belongs at the front).
    if _ALLOWED_CHARS_RE.fullmatch(body.replace(ROOT, "a")) is None:
        return NamingError("invalid character(s) in name", _quote(name))
    return NamingError("invalid name", _quote(name))


def is_absolute_valid(name: object) -> bool:
    """True if *name* is a valid absolute name (a ``str`` starting with ``":"``)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _ABSOLUTE_RE.fullmatch(name) is not None
    )


def absolute(name: object, default_group: str = DEFAULT_GROUP) -> str:
    """The valid absolute form of *name*, expanding a relative name against *default_group*.

    *default_group* must itself be valid and absolute (see :func:`check_default_group`;
    it is checked once at configuration time, not here). Raises :class:`NamingError`.
    """
    if not isinstance(name, str):
        raise NamingError("invalid name", _quote(repr(name)))
    if name.startswith(ROOT):
        if len(name) <= MAX_NAME_LENGTH and _ABSOLUTE_RE.fullmatch(name) is not None:
            return name
        raise _invalid(name)
    if not default_group.startswith(ROOT):
        raise NamingError("default group name is not absolute", _quote(default_group))
    if not name:
        return default_group
    if _RELATIVE_RE.fullmatch(name) is None:
        raise _invalid(name)
    full = default_group + name if default_group == ROOT else default_group + SEP + name
    if len(full) > MAX_NAME_LENGTH:
        raise NamingError("name too long", _quote(full))
    return full


def check_default_group(group: object) -> str:
    """Validate a configured default group: it must be a valid absolute name.

    The root ``":"`` is accepted (relative names then live in the root). Raises
    :class:`NamingError`.
    """
    if not isinstance(group, str) or not group.startswith(ROOT):
        raise NamingError(
            "default group name is not absolute",
            _quote(group if isinstance(group, str) else repr(group)),
        )
    return absolute(group)


def parent(absname: str) -> str:
    """The group that holds *absname*: ``":"`` for top-level names.

    The root has no parent: ``parent(":")`` raises ``ValueError`` (a caller bug, since
    no operation needs the root's parent).
    """
    if absname == ROOT:
        raise ValueError("the root group has no parent")
    idx = absname.rfind(SEP)
    return ROOT if idx < 0 else absname[:idx]


def basename(absname: str) -> str:
    """The last part of *absname* (``"c"`` for ``":a.b.c"``; ``""`` for the root)."""
    if absname == ROOT:
        return ""
    return absname[absname.rfind(SEP) + 1 :] if SEP in absname else absname[1:]


def parts(absname: str) -> tuple[str, ...]:
    """The parts of *absname* (``("a", "b")`` for ``":a.b"``; ``()`` for the root)."""
    if absname == ROOT:
        return ()
    return tuple(absname[1:].split(SEP))


def join(group: str, base: str) -> str:
    """The absolute name of child *base* of absolute *group*."""
    return ROOT + base if group == ROOT else group + SEP + base


def is_ancestor(a: str, b: str) -> bool:
    """True if group *a* is a proper ancestor of *b* (the root is everyone's ancestor)."""
    if a == ROOT:
        return b != ROOT
    return b.startswith(a) and len(b) > len(a) and b[len(a)] == SEP
