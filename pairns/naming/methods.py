"""The name server's methods, declared once, and the call seam both proxies use.

:data:`METHODS` says, for every method a name server answers over the wire, its Pyro 3
name, whether it reads the namespace, writes it or addresses the node itself
(:class:`Kind`), what its arguments are (:class:`Param`) and what its reply becomes on
the client. :class:`~pairns.naming.proxy.NameServerProxy` and
:class:`~pairns.naming.proxy.AsyncNameServerProxy` offer exactly these methods (a test
holds them to it), and every call of either goes through :meth:`Method.bind`, the one
place where relative names are expanded against the client's default group and a write
gets its request id. The :class:`Call` it returns is what a retry sends again, unchanged.

No IO here: the proxies send a :class:`Call` and hand the reply to :meth:`Method.reply`.
"""

from __future__ import annotations

import enum
import inspect
import os
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar, cast

import attrs

from pairns import names
from pairns.uri import URI

__all__ = [
    "METHODS",
    "Arg",
    "Call",
    "GroupListing",
    "Kind",
    "Method",
    "Param",
    "UriListing",
    "new_request_id",
]

R = TypeVar("R")

#: ``list()``/``flatlist()`` results on the client (the method named ``list`` shadows
#: the builtin in the proxies).
GroupListing = list[tuple[str, int]]
UriListing = list[tuple[str, URI]]

#: A parameter without a default (``inspect.Parameter.empty``, as in a signature).
REQUIRED: Any = inspect.Parameter.empty


def new_request_id() -> str:
    """A fresh client request id for one write (sent again, unchanged, on a retry).

    The name server remembers which request ids it (or its twin) applied, so a write
    retried with the same id is answered with its first result, not applied twice.
    """
    return os.urandom(16).hex()


class Kind(enum.Enum):
    """What a method does, which decides where a call may go and how it may be retried."""

    #: Reads the namespace: either node of a pair may answer, and a retry is harmless.
    READ = "read"
    #: Changes the namespace: carries a fresh request id, goes to one node at a time,
    #: and a retry (on that node or its twin) sends the same id again.
    WRITE = "write"
    #: Asks about, or acts on, the node addressed (``status``, ``twin``, ``shutdown``):
    #: only that node may answer, never its twin in its place.
    NODE = "node"


class Arg(enum.Enum):
    """How the client encodes one argument before sending it."""

    #: A group or object name; a relative one is expanded against the default group.
    NAME = "name"
    #: An optional group name; None (and ``""``) mean the default group.
    GROUP = "group"
    #: A :class:`~pairns.uri.URI` or its string form; sent as a string.
    URI = "uri"
    #: Any JSON value, sent as it is.
    VALUE = "value"


def _group(value: Any, default_group: str) -> str:
    return names.absolute("" if value is None else value, default_group)


def _uri_text(value: Any, default_group: str) -> str:
    return str(value)


def _value(value: Any, default_group: str) -> Any:
    return value


#: How each kind of argument is encoded (the second argument is the default group).
_ENCODERS: dict[Arg, Callable[[Any, str], Any]] = {
    Arg.NAME: names.absolute,  # itself, not a wrapper: one call less on the hot path
    Arg.GROUP: _group,
    Arg.URI: _uri_text,
    Arg.VALUE: _value,
}


@attrs.frozen
class Param:
    """One argument of a method: its name in the signature, its encoding, its default."""

    name: str
    arg: Arg
    default: Any = REQUIRED


class Call(NamedTuple):
    """One call ready to send: a method name, encoded arguments and the request id.

    A write's request id is chosen once, here; a retry of the call (later: on the twin)
    sends the same :class:`Call` again, so the pair applies the write at most once. (A
    named tuple, not an attrs class: it is made for every call, and this is cheaper.)
    """

    method: str
    args: tuple[Any, ...]
    request_id: str | None


@attrs.frozen
class Method(Generic[R]):
    """One name server method: Pyro 3 name, kind, parameters, and the reply conversion."""

    name: str
    kind: Kind
    params: tuple[Param, ...]
    #: Turns the decoded reply into what the proxy method returns.
    reply: Callable[[Any], R] = attrs.field(repr=False)
    #: One encoder per parameter; empty when every argument is sent as it is.
    _encoders: tuple[Callable[[Any, str], Any], ...] = attrs.field(init=False, repr=False, eq=False)
    #: True for a write (kept: the kind is looked at on every call).
    _write: bool = attrs.field(init=False, repr=False, eq=False)

    @_encoders.default
    def _pick_encoders(self) -> tuple[Callable[[Any, str], Any], ...]:
        if all(p.arg is Arg.VALUE for p in self.params):
            return ()
        return tuple(_ENCODERS[p.arg] for p in self.params)

    @_write.default
    def _is_write(self) -> bool:
        return self.kind is Kind.WRITE

    def bind(self, args: tuple[Any, ...], default_group: str) -> Call:
        """The call for *args* (one per parameter, in order): names expanded, a write's
        request id attached.

        Raises :class:`~pairns.errors.NamingError` for a name that is not valid, before
        anything is sent.
        """
        encoders = self._encoders
        if len(encoders) == 1:  # the hot path (resolve, unregister, ...): no loop
            args = (encoders[0](args[0], default_group),)
        elif encoders:
            args = tuple([f(a, default_group) for f, a in zip(encoders, args, strict=True)])
        return Call(self.name, args, new_request_id() if self._write else None)


def _none(result: Any) -> None:
    return None


def _any(result: Any) -> Any:
    return result


def _bool(result: Any) -> bool:
    return bool(result)


def _dict(result: Any) -> dict[str, Any]:
    return cast(dict[str, Any], result)


def _str(result: Any) -> str:
    return str(result)


def _group_listing(result: Any) -> GroupListing:
    return [(str(n), int(k)) for n, k in result]


def _uri_listing(result: Any) -> UriListing:
    return [(str(n), URI.from_string(u)) for n, u in result]


#: Bound of :data:`_parsed_uris` (emptied when full: a client resolves a working set of
#: names again and again, and one wave of misses costs no more than no cache at all).
URI_CACHE_SIZE = 4096

#: Parsed reply URIs by their text. Parsing is most of a client's CPU time per resolve
#: outside the socket calls, and a :class:`URI` is a frozen value, so sharing one is safe.
_parsed_uris: dict[str, URI] = {}


def _parsed_uri(result: Any) -> URI:
    if type(result) is not str:
        return URI.from_string(result)  # raises URIError
    uri = _parsed_uris.get(result)
    if uri is None:
        uri = URI.from_string(result)  # a bad one raises URIError and is not kept
        if len(_parsed_uris) >= URI_CACHE_SIZE:
            _parsed_uris.clear()
        _parsed_uris[result] = uri
    return uri


def _optional_uri(result: Any) -> URI | None:
    return None if result is None else _parsed_uri(result)


def _m(name: str, kind: Kind, reply: Callable[[Any], R], *params: Param) -> Method[R]:
    return Method(name, kind, params, reply)


_NAME = Param("name", Arg.NAME)

PING = _m("ping", Kind.NODE, _bool)
RESOLVE = _m("resolve", Kind.READ, _parsed_uri, _NAME)
LIST = _m("list", Kind.READ, _group_listing, Param("group", Arg.GROUP, None))
FLATLIST = _m("flatlist", Kind.READ, _uri_listing)
GET_META = _m("getMeta", Kind.READ, _any, _NAME)
GET_SYSTEM_META = _m("getSystemMeta", Kind.READ, _dict, _NAME)
DUMP = _m(
    "dump",
    Kind.READ,
    _dict,
    Param("after", Arg.VALUE, None),
    Param("limit", Arg.VALUE, 10_000),
)
REGISTER = _m("register", Kind.WRITE, _none, _NAME, Param("uri", Arg.URI))
UNREGISTER = _m("unregister", Kind.WRITE, _none, _NAME)
CREATE_GROUP = _m("createGroup", Kind.WRITE, _none, _NAME)
DELETE_GROUP = _m("deleteGroup", Kind.WRITE, _none, _NAME)
SET_META = _m("setMeta", Kind.WRITE, _none, _NAME, Param("meta", Arg.VALUE))
STATUS = _m("status", Kind.NODE, _dict)
TWIN = _m("twin", Kind.NODE, _optional_uri)
RESYNC = _m("resync", Kind.NODE, _none)
SHUTDOWN = _m("shutdown", Kind.NODE, _bool)
LOAD = _m("load", Kind.NODE, _dict, Param("entries", Arg.VALUE))
ADMIN_CHALLENGE = _m("adminChallenge", Kind.NODE, _str)

#: The methods that carry the admin proof (``admin=``) when the proxy has an admin
#: identification (see :mod:`pairns.security.admin`).
ADMIN = frozenset({RESYNC.name, SHUTDOWN.name, LOAD.name})

#: Every method a name server answers over the wire, by name. ``fullName`` is not here:
#: the proxies answer it themselves, against their own default group.
METHODS: dict[str, Method[Any]] = {
    m.name: m
    for m in (
        PING,
        RESOLVE,
        LIST,
        FLATLIST,
        GET_META,
        GET_SYSTEM_META,
        DUMP,
        REGISTER,
        UNREGISTER,
        CREATE_GROUP,
        DELETE_GROUP,
        SET_META,
        STATUS,
        TWIN,
        RESYNC,
        SHUTDOWN,
        LOAD,
        ADMIN_CHALLENGE,
    )
}
