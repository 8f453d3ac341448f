"""Which objects a daemon serves, which of their methods may be called, and how a
failed call is described to the client.

No IO here: the daemon asks :meth:`ObjectTable.lookup` for a callable (cached per
``(object id, method)`` so the hot path is one dict lookup) and turns exceptions into
``(error type, message, args)`` triples with :func:`describe_call_error`.

Exposure rule (Pyro 3's, minus the dangerous part): every public callable attribute of
a registered object may be called; names starting with ``_`` never; properties and
other non-callable attributes are not methods (their getters are not run).

How a method runs is decided once, at lookup (:class:`Method`): ``async def`` methods
as tasks on the event loop; plain methods inline on the event loop (the name server:
a dict lookup, no task per call) or, for objects registered ``threaded`` (user objects),
in a worker thread; methods marked with :func:`oneway` are answered at once and run in
the background.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from pairns.errors import PairnsError, ProtocolError, error_to_wire
from pairns.wire.limits import ErrorCode

__all__ = [
    "DAEMON_OBJECT_ID",
    "LookupFailed",
    "Method",
    "ObjectTable",
    "check_object_id",
    "is_oneway",
    "oneway",
    "describe_call_error",
    "sanitize_error",
    "unencodable_result",
]

#: The object id of every daemon's built-in object (``ping``, ``resolve``).
DAEMON_OBJECT_ID = "__daemon__"

#: Longest object id accepted by :func:`check_object_id`.
MAX_OBJECT_ID_LENGTH = 256

#: Longest error message put into an error reply when the original is unusable.
MAX_ERROR_TEXT = 8192

#: Longest remote traceback text put into an error reply (its last lines are kept).
MAX_TRACEBACK_TEXT = 16384

ErrorTriple = tuple[str, str, list[Any]]

_F = TypeVar("_F", bound=Callable[..., Any])

#: The attribute :func:`oneway` sets on a function.
_ONEWAY_MARK = "_pairns_oneway"


def oneway(fn: _F) -> _F:
    """Mark a method of a served object as oneway: a call is answered at once (with
    ``None``) and the method runs in the background; what it returns or raises never
    reaches the caller (a failure is logged by the daemon).

    ``@pairns.oneway`` above ``def method(...)`` or ``async def method(...)``.
    """
    setattr(fn, _ONEWAY_MARK, True)
    return fn


def is_oneway(fn: Callable[..., Any]) -> bool:
    """True if *fn* (a function or bound method) was marked with :func:`oneway`."""
    return getattr(fn, _ONEWAY_MARK, False) is True


#: What :attr:`ObjectTable.wrap` is: ``(method name, bound method, is_async) -> callable``.
Wrapper = Callable[[str, Callable[..., Any], bool], Callable[..., Any]]


class Method(NamedTuple):
    """How to call one remote method: the bound method and how it runs."""

    #: The bound method.
    fn: Callable[..., Any]
    #: A coroutine function: runs as a task on the event loop.
    is_async: bool
    #: A plain method of a ``threaded`` object: runs in a worker thread.
    threaded: bool
    #: Marked with :func:`oneway`: answered at once, runs in the background.
    oneway: bool


class LookupFailed(Exception):
    """A method could not be found; ``error`` is the triple for the error reply."""

    def __init__(self, error: ErrorTriple) -> None:
        super().__init__(error[1])
        self.error = error


def check_object_id(object_id: object) -> str:
    """Validate an object id: 1..256 printable ASCII characters, no ``/`` or spaces."""
    if (
        not isinstance(object_id, str)
        or not 0 < len(object_id) <= MAX_OBJECT_ID_LENGTH
        or not all(33 <= ord(ch) <= 126 and ch != "/" for ch in object_id)
    ):
        raise ValueError(
            f"an object id must be 1..{MAX_OBJECT_ID_LENGTH} printable ASCII characters "
            f"without '/' or spaces: {object_id!r}"
        )
    return object_id


class ObjectTable:
    """Registered objects by id, names (for ``PYROLOC``) and a cache of bound methods."""

    __slots__ = ("_contextual", "_methods", "_names", "_objects", "_sync", "_threaded", "wrap")

    def __init__(self) -> None:
        #: ``wrap(method, fn, is_async) -> fn`` applied to each method when it is first
        #: looked up (metrics count calls this way); None: methods are served as they are.
        self.wrap: Wrapper | None = None
        self._objects: dict[str, object] = {}
        self._names: dict[str, str] = {}
        #: ``(object id, method) -> Method``. Only successful lookups are cached, so
        #: its size is bounded by what is registered.
        self._methods: dict[tuple[str, str], Method] = {}
        #: Plain methods answered inline only: the daemon's hot path.
        self._sync: dict[tuple[str, str], Callable[..., Any]] = {}
        #: Objects whose calls see the calling connection (never served by the hot
        #: path): object id -> the methods that do (None: every method).
        self._contextual: dict[str, frozenset[str] | None] = {}
        #: Objects whose plain methods run in worker threads (never the hot path).
        self._threaded: set[str] = set()

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._objects

    def add(
        self,
        obj: object,
        object_id: str,
        name: str | None = None,
        *,
        with_connection: bool | frozenset[str] = False,
        threaded: bool = False,
    ) -> None:
        """Register *obj* under *object_id* (and *name*, if given); with
        *with_connection*, its methods (True) or the methods it names (a set) see the
        calling connection (see :func:`wants_connection`); with *threaded*, its plain
        methods run in worker threads instead of on the event loop."""
        check_object_id(object_id)
        if object_id in self._objects:
            raise ValueError(f"an object is already registered with id {object_id!r}")
        if name is not None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"a name must be a non-empty string: {name!r}")
            if name in self._names:
                raise ValueError(f"an object is already connected under the name {name!r}")
            self._names[name] = object_id
        self._objects[object_id] = obj
        if isinstance(with_connection, frozenset):
            if with_connection:
                self._contextual[object_id] = with_connection
        elif with_connection:
            self._contextual[object_id] = None
        if threaded:
            self._threaded.add(object_id)

    def wants_connection(self, object_id: str, method: str) -> bool:
        """True if calls of *method* on *object_id* must see ``current_connection``."""
        if object_id not in self._contextual:
            return False
        methods = self._contextual[object_id]
        return methods is None or method in methods

    def remove(self, object_id: str) -> object:
        """Unregister *object_id* (and its name); returns the object."""
        try:
            obj = self._objects.pop(object_id)
            self._contextual.pop(object_id, None)
            self._threaded.discard(object_id)
        except KeyError:
            raise KeyError(f"no object is registered with id {object_id!r}") from None
        for name in [n for n, oid in self._names.items() if oid == object_id]:
            del self._names[name]
        for key in [k for k in self._methods if k[0] == object_id]:
            del self._methods[key]
            self._sync.pop(key, None)
        return obj

    def get(self, object_id: str) -> object | None:
        """The object registered under *object_id*, or None."""
        return self._objects.get(object_id)

    def object_id_of(self, obj: object) -> str | None:
        """The id *obj* itself (not an equal object) is registered under, or None."""
        for object_id, registered in self._objects.items():
            if registered is obj:
                return object_id
        return None

    def object_id_for_name(self, name: str) -> str | None:
        """The object id connected under *name*, or None."""
        return self._names.get(name)

    @property
    def sync_methods(self) -> dict[tuple[str, str], Callable[..., Any]]:
        """``(object id, method) -> bound method`` for every plain method looked up so
        far (read by the daemon's hot path; do not modify)."""
        return self._sync

    def lookup(self, object_id: str, method: str) -> Method:
        """The bound method and how it runs (:class:`Method`); cached.

        Raises :class:`LookupFailed` with a clear error for an unknown object, a
        private name, a missing method or an attribute that is not a method.
        """
        key = (object_id, method)
        found = self._methods.get(key)
        if found is not None:
            return found
        obj = self._objects.get(object_id)
        if obj is None:
            raise LookupFailed(error_to_wire(ProtocolError(f"unknown object {object_id!r}")))
        if method.startswith("_"):
            raise LookupFailed(
                _remote(
                    "AttributeError",
                    f"method {method!r} of object {object_id!r} is private "
                    "(names starting with '_' cannot be called remotely)",
                )
            )
        try:
            attr = inspect.getattr_static(obj, method)
        except AttributeError:
            raise LookupFailed(
                _remote("AttributeError", f"object {object_id!r} has no method {method!r}")
            ) from None
        if isinstance(attr, property) or not _callable_attr(attr):
            raise LookupFailed(
                _remote("AttributeError", f"{method!r} of object {object_id!r} is not a method")
            )
        bound = getattr(obj, method)
        if not callable(bound):
            raise LookupFailed(
                _remote("AttributeError", f"{method!r} of object {object_id!r} is not a method")
            )
        is_async = inspect.iscoroutinefunction(bound)
        threaded = not is_async and object_id in self._threaded
        oneway = is_oneway(bound)
        if self.wrap is not None:
            bound = self.wrap(method, bound, is_async)
        found = Method(bound, is_async, threaded, oneway)
        self._methods[key] = found
        if not (is_async or threaded or found.oneway or self.wants_connection(object_id, method)):
            self._sync[key] = bound
        return found


def _callable_attr(attr: object) -> bool:
    if isinstance(attr, (staticmethod, classmethod)):
        return True
    return callable(attr)


def _remote(type_name: str, message: str) -> ErrorTriple:
    return "RemoteCallError", f"{type_name}: {message}", [message, type_name]


def describe_call_error(
    exc: BaseException, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any] | None
) -> ErrorTriple:
    """The error reply for an exception raised by calling ``fn(*args, **kwargs)``.

    pairns errors travel as themselves (``NamingError`` stays ``NamingError``);
    anything else becomes a ``RemoteCallError`` naming the original type, with the
    remote traceback as text (its third argument; never the exception object). A
    ``TypeError`` raised because the arguments do not fit the signature gets a message
    that says so.
    """
    if isinstance(exc, TypeError) and not isinstance(exc, PairnsError):
        try:
            inspect.signature(fn).bind(*args, **(kwargs or {}))
        except TypeError as bind_error:
            name = getattr(fn, "__name__", "method")
            return _remote("TypeError", f"bad arguments for {name}(): {bind_error}")
        except ValueError:
            pass  # no signature available (some builtins): report the error as raised
    error = error_to_wire(exc)
    if error[0] == "RemoteCallError" and exc.__traceback__ is not None:
        text = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_TEXT:]
        error[2].append(text)
    return error


def sanitize_error(error: ErrorTriple) -> ErrorTriple:
    """A version of *error* that always encodes: strings cut and made UTF-8 safe."""
    type_name, message, args = error

    def clean(value: object) -> str:
        text = (value if isinstance(value, str) else repr(value))[:MAX_ERROR_TEXT]
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    clean_args = [clean(a) if isinstance(a, str) else None for a in args]
    return clean(type_name), clean(message), clean_args


def unencodable_result(exc: BaseException, object_id: str, method: str) -> ErrorTriple:
    """The error reply for a result that could not be sent (not JSON, or too large)."""
    text = f"the result of {object_id}.{method}() cannot be sent: {exc}"
    if getattr(exc, "error_code_hint", None) == ErrorCode.FRAME_TOO_LARGE:
        return error_to_wire(ProtocolError(text))
    return _remote("TypeError", text)
