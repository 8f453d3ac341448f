"""When a requested full resync starts: :class:`ResyncPacer` (no IO, no clock of its own).

``resync()`` (``pairns-ctl resync``) drops the link and sends everything both ways.
Before this module a client calling it about once a second kept a 50,000-name pair
from ever being ``paired`` (each call restarted the resync that the previous one had
started) and burnt a third of a core on each node. The rules now:

* **Coalesced.** A request that arrives while a full resync runs (asked for and not
  yet back to ``paired``, whoever asked) *joins* it: nothing is restarted.
* **Paced.** A new full resync starts no sooner than :data:`PACE_FACTOR` times the
  last one's duration after it ended (at least :data:`MIN_GAP` seconds); the last one
  may be one the twin asked for (:meth:`began_anyway`), so a client asking the two
  nodes in turn is paced as one asking one node. A
  request inside that gap is *scheduled* for its end, and every later request in the
  gap joins that one. So requested resyncs take at most about 1 / (1 + PACE_FACTOR)
  of the time, however often a client asks, and each one reaches ``paired``.

The Trio side (:class:`~pairns.replication.link.Replicator`) asks :meth:`request`,
starts the resync when told, and reports :meth:`finished` when the link is paired again.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

__all__ = ["MIN_GAP", "PACE_FACTOR", "Decision", "ResyncPacer"]

#: The gap after a requested full resync is this many times its duration: requested
#: resyncs then use at most a fifth of the time (and of the CPU they cost).
PACE_FACTOR: Final = 4.0

#: Shortest gap between the end of one requested full resync and the start of the next
#: (seconds): a small namespace resyncs in milliseconds, and "at once, again" is never
#: what a second request needs.
MIN_GAP: Final = 1.0


class Decision(enum.Enum):
    """What :meth:`ResyncPacer.request` decided."""

    #: Start a full resync now.
    START = "started"
    #: One runs (or is scheduled): this request joins it.
    JOIN = "joined"
    #: Too soon after the last one: it starts at :attr:`ResyncPacer.due`.
    SCHEDULE = "scheduled"


@attrs.define
class ResyncPacer:
    """The coalescing and pacing rule for requested full resyncs."""

    #: When the running requested resync began (None: none runs).
    began: float | None = None
    #: When the scheduled one is due (None: none is scheduled).
    due: float | None = None
    #: Earliest start of the next one (end of the last + its gap).
    not_before: float = float("-inf")
    #: Requests, and how many of them joined one running or scheduled.
    requests: int = 0
    joined: int = 0

    def request(self, now: float, *, running: bool) -> Decision:
        """A client asked for a full resync at *now*; *running* says whether the link
        is in a full resync already (one the twin asked for counts too)."""
        self.requests += 1
        if running or self.began is not None or self.due is not None:
            self.joined += 1
            return Decision.JOIN
        if now < self.not_before:
            self.due = self.not_before
            return Decision.SCHEDULE
        self.began = now
        return Decision.START

    def began_anyway(self, now: float) -> None:
        """A full resync began at *now* that this rule did not start: one the twin
        asked for (its own pacer let it), or one a restore or a new twin made. It counts
        as the running one: requests join it, its end sets the next gap (so two
        clients asking the two nodes in turn are paced as one), and a scheduled one
        is served by it (it began after they asked)."""
        if self.began is None:
            self.began = now
            self.due = None

    def start_due(self, now: float) -> bool:
        """True (and the resync counts as begun) if the scheduled one is due at *now*."""
        if self.due is None or now < self.due:
            return False
        self.due = None
        self.began = now
        return True

    def finished(self, now: float) -> None:
        """The link is paired again: the running requested resync (if any) is over."""
        if self.began is None:
            return
        duration = max(0.0, now - self.began)
        self.began = None
        self.not_before = now + max(MIN_GAP, PACE_FACTOR * duration)
