"""Exception types shared by every layer of pairns.

Each type has one narrow meaning (in the manner of Trio's exceptions):

* :class:`NamingError` - the namespace refused an operation (Pyro 3 wording).
* :class:`URIError` - a URI string could not be parsed.
* :class:`ProtocolError` and its children - something went wrong on the wire:
  :class:`LocalProtocolError` (*we* tried to send something illegal),
  :class:`RemoteProtocolError` (the *peer* sent garbage),
  :class:`ConnectionClosedError` (the connection is gone),
  :class:`ConnectionDeniedError` (identification refused) and its child
  :class:`TLSError` (a TLS connection could not be made),
  :class:`CallTimeoutError` (no answer in time).
* :class:`RemoteCallError` - the remote method raised something that is not a
  pairns error (a bug or bad arguments on the other side); the original type name
  and message travel with it.
* :class:`StorageError` - the storage backend failed (disk full, corrupt file, ...).

Errors that cross the wire are rebuilt on the client from their type name, but only
for the types listed in :data:`WIRE_ERRORS`; nothing else is ever instantiated from
network data.
"""

from __future__ import annotations

from typing import Any


class PairnsError(Exception):
    """Base class of every error pairns raises on purpose."""


#: Pyro-compatible alias, so ``except PyroError`` in ported code keeps working.
PyroError = PairnsError


class NamingError(PairnsError):
    """A name server operation was refused.

    ``NamingError(message, name)`` carries the Pyro 3 message (``"name not found"``)
    and the offending name; ``str()`` shows both.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        if name is None:
            super().__init__(message)
        else:
            super().__init__(message, name)
        self.message = message
        self.name = name

    def __str__(self) -> str:
        if self.name is None:
            return self.message
        return f"{self.message}: {self.name}"


class URIError(PairnsError):
    """A URI string is malformed; the message says what is wrong with it."""


class ProtocolError(PairnsError):
    """Base class of wire-level errors."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow (a bug on our side)."""

    def __init__(self, message: str, error_code_hint: int = 0) -> None:
        super().__init__(message)
        self.error_code_hint = error_code_hint


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol or one of its limits.

    ``error_code_hint`` is the code to put in the error frame sent back before the
    connection is closed (see :mod:`pairns.wire.limits`).
    """

    def __init__(self, message: str, error_code_hint: int = 0) -> None:
        super().__init__(message)
        self.error_code_hint = error_code_hint


class ConnectionClosedError(ProtocolError):
    """The connection was closed (by the peer, the network or a limit)."""


class ConnectionDeniedError(ProtocolError):
    """The other side refused the connection (identification missing or wrong)."""


class TLSError(ConnectionDeniedError):
    """A TLS connection could not be made: a certificate was refused (expired, unknown
    CA, wrong name, none given where one is required), or one side speaks TLS and the
    other does not. The message says which; nothing is retried on the twin."""


class CallTimeoutError(ConnectionClosedError):
    """A call got no answer within its timeout; the connection is dropped."""


class RemoteCallError(PairnsError):
    """The remote method failed with an error that is not a pairns error.

    ``remote_type`` is the name of the exception type raised on the other side;
    ``remote_traceback`` is its traceback as text, when the server sent one (the
    exception object itself never travels).
    """

    def __init__(
        self,
        message: str,
        remote_type: str = "Exception",
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.args[0]}"


class StorageError(PairnsError):
    """The storage backend failed; the change that caused it was not applied."""


#: The error types that may be rebuilt from an error reply, by name.
WIRE_ERRORS: dict[str, type[PairnsError]] = {
    "NamingError": NamingError,
    "URIError": URIError,
    "ProtocolError": ProtocolError,
    "ConnectionDeniedError": ConnectionDeniedError,
    "StorageError": StorageError,
}


def error_to_wire(exc: BaseException) -> tuple[str, str, list[Any]]:
    """Describe *exc* as ``(type name, message, args)`` for an error reply."""
    if isinstance(exc, NamingError):
        return "NamingError", exc.message, [exc.message, exc.name]
    for name, cls in WIRE_ERRORS.items():
        if type(exc) is cls:
            return name, str(exc), [str(exc)]
    return "RemoteCallError", f"{type(exc).__name__}: {exc}", [str(exc), type(exc).__name__]


def error_from_wire(type_name: str, message: str, args: list[Any]) -> PairnsError:
    """Rebuild the exception an error reply describes (unknown types become RemoteCallError)."""
    if type_name == "NamingError":
        msg = args[0] if args and isinstance(args[0], str) else message
        name = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        return NamingError(msg, name)
    if type_name == "RemoteCallError":
        remote = args[1] if len(args) > 1 and isinstance(args[1], str) else "Exception"
        text = args[0] if args and isinstance(args[0], str) else message
        trace = args[2] if len(args) > 2 and isinstance(args[2], str) else None
        return RemoteCallError(text, remote, trace)
    cls = WIRE_ERRORS.get(type_name)
    if cls is None:
        return RemoteCallError(message, type_name)
    return cls(message)
