"""Making many instances of a slotted attrs class at once (a resync makes 100,000).

An attrs ``frozen`` class's ``__init__`` sets each field through
``object.__setattr__`` from Python code: about 1.5 us for the nine fields of an
:class:`~pairns.namespace.entry.Entry`. Setting the slots column by column with the
slots' own descriptors (``map(slot.__set__, ...)``) runs no Python code per instance
and takes about half of that. It is only equivalent while ``__init__`` does nothing
else, so :func:`column_builder` uses it only for classes without validators,
converters, ``on_setattr`` hooks or ``__attrs_post_init__``, and only after checking
that it builds instances equal to the ones ``__init__`` builds.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, TypeVar, cast

import attrs

__all__ = ["column_builder"]

T = TypeVar("T")


def column_builder(cls: type[T], sample: Sequence[Sequence[Any]]) -> Callable[..., list[T]]:
    """A function ``build(*columns) -> list[cls]``: one sequence per field, in field
    order, all the same length (else ``ValueError``); instance *i* gets the *i*-th
    value of each column. *sample* is a set of columns the fast form is checked on."""

    def plain(*columns: Sequence[Any]) -> list[T]:
        _check(columns)
        return list(map(cls, *columns))

    fields = attrs.fields(cast(Any, cls))
    slots = [cls.__dict__.get(field.name) for field in fields]
    if (
        hasattr(cls, "__attrs_post_init__")
        or any(f.validator or f.converter or f.on_setattr for f in fields)
        or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
    ):
        return plain
    setters = [slot.__set__ for slot in slots]  # type: ignore[union-attr]
    new = object.__new__

    def fast(*columns: Sequence[Any]) -> list[T]:
        count = _check(columns)
        if len(columns) != len(setters):
            raise ValueError(f"{cls.__name__} needs {len(setters)} columns")
        made: list[T] = list(map(new, repeat(cls, count)))
        for setter, column in zip(setters, columns, strict=True):
            deque(map(setter, made, column), maxlen=0)
        return made

    try:
        if fast(*sample) == plain(*sample):
            return fast
    except Exception:  # pragma: no cover - a class this does not fit: the plain way
        pass
    return plain  # pragma: no cover


def _check(columns: Sequence[Sequence[Any]]) -> int:
    count = len(columns[0]) if columns else 0
    if any(len(column) != count for column in columns):
        raise ValueError("columns of different lengths")
    return count
