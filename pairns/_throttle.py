"""Log lines a client can cause, counted always and logged without flooding the log.

A flood of refused connections (or admin calls, discovery requests, failing oneway
calls) must not turn into a flood of log lines: :class:`RefusalLog` writes the first
line of each kind at WARNING, then at most one per :data:`LOG_INTERVAL` seconds saying
how many more there were; the rest go to DEBUG. The counts are exact either way
(``status()`` and the metrics read them).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

__all__ = ["LOG_INTERVAL", "RefusalLog"]

#: Seconds between two WARNING lines about refusals of one kind.
LOG_INTERVAL: Final = 10.0


class RefusalLog:
    """Counts refusals by kind and logs them, at most one WARNING per kind per interval."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        #: Refusals by kind since the node started.
        self.counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()

    def refused(self, kind: str, message: str, *, exc_info: bool = False) -> None:
        """Count one refusal (or failure) of *kind* and log *message* (throttled; with
        *exc_info*, the WARNING line carries the traceback being handled)."""
        self.counts[kind] += 1
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < LOG_INTERVAL:
            self._quiet[kind] += 1
            self._log.debug("%s", message)
            return
        self._last[kind] = now
        more = self._quiet.pop(kind, 0)
        suffix = f" ({more} more since the last such line)" if more else ""
        self._log.warning("%s%s", message, suffix, exc_info=exc_info)
