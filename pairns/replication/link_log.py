"""The log line of a link state change (no IO): its level, its words, its fields.

Every change of the link's state (or of the reason it shows) is one line::

    twin link: syncing -> paired (twin 127.0.0.1:9091): in sync

with the structured fields ``twin``, ``link_state``, ``previous_state`` and, when
there is one, ``reason`` (see :mod:`pairns.structured_log`). The level says how much
it matters: pairing, syncing and a drop are warnings, a refusal an error. A ``-2`` node
whose twin is away tries again every few seconds; those retries are changes too, but
only the first failure (``serving alone``), a new reason and every tenth attempt are
shown (INFO); the rest go out at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import attrs

from pairns.replication.state import LinkState, LinkStatus

__all__ = ["RETRY_SUMMARY_EVERY", "ChangeLine", "describe_change"]

#: Every this many failed attempts in a row, a retry's failure is shown at INFO.
RETRY_SUMMARY_EVERY: Final = 10

_LIVE: Final = frozenset({LinkState.SYNCING, LinkState.PAIRED})


@attrs.frozen
class ChangeLine:
    """One log line: its level, its message and its structured fields."""

    level: int
    message: str
    fields: Mapping[str, Any]


def describe_change(
    before: LinkStatus,
    after: LinkStatus,
    *,
    twin: str,
    note: str = "",
    failures: int = 0,
    new_reason: bool = True,
    level: int | None = None,
    fields: Mapping[str, Any] | None = None,
) -> ChangeLine | None:
    """The line for the change *before* -> *after*, or None if nothing changed.

    *twin* is the twin's address; *note* says more than the state's reason (what
    the node does now). *failures* is how many attempts to reach the twin failed in a
    row, this one included if *after* is such a failure (0: none); *new_reason* says
    whether its reason differs from the previous failure's. *level* overrides the
    level; *fields* are added to the line's fields.
    """
    if before.state is after.state and before.reason == after.reason:
        return None
    shown = "; ".join(part for part in (after.reason, note) if part)
    message = f"twin link: {before.state.value} -> {after.state.value} (twin {twin})"
    if shown:
        message = f"{message}: {shown}"
    data: dict[str, Any] = {
        "twin": twin,
        "link_state": after.state.value,
        "previous_state": before.state.value,
    }
    if after.reason:
        data["reason"] = after.reason
    if fields:
        data.update(fields)
    if level is None:
        level = _level(before.state, after.state, failures=failures, new_reason=new_reason)
    return ChangeLine(level, message, data)


def _level(before: LinkState, after: LinkState, *, failures: int, new_reason: bool) -> int:
    if after is LinkState.REFUSED:
        return logging.ERROR
    if after in _LIVE:
        return logging.WARNING
    if after is LinkState.DOWN:
        if before in _LIVE or failures <= 1:
            return logging.WARNING  # a drop, or the first failure: now serving alone
        if new_reason or failures % RETRY_SUMMARY_EVERY == 0:
            return logging.INFO
        return logging.DEBUG
    if after is LinkState.CONNECTING and failures > 0:
        return logging.DEBUG  # trying again after a failed attempt
    return logging.INFO
