"""Small helpers shared by the command-line tools."""

from __future__ import annotations


def first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside *exc* (Trio wraps task errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
