"""Which stretches of a node's change feed each of its runs (incarnations) wrote.

A twin remembers how far it applied this node's feed (a sequence number). That position
is only meaningful while this node's history up to it is the one the twin saw. A node
restarted from an older copy of its database (a restored backup) numbers its new changes
from the old copy's end again, so the twin's position would then skip them, and the
twin would also hold this node's changes made after the backup that the node itself no
longer has.

So each run of a node starts a new *incarnation* (a random id) at the next sequence
number, and keeps the list of its incarnations with its data. The twin stores the
incarnation it last heard from with its position, and the node checks such a claim
against its own history (:meth:`FeedHistory.vouches`): a position inside a known
incarnation's stretch is a prefix of this node's feed; anything else (an unknown
incarnation, a position past where that incarnation ended or past the durable end of
the feed) means this node's history was replaced, and the pair resyncs in full, both
ways, so that each side gets back what it lacks.

Pure values, no IO: the node stores :meth:`FeedHistory.to_text` with its data.
"""

from __future__ import annotations

import json
import os
from typing import Final

import attrs

__all__ = ["KV_FEED_HISTORY", "MAX_INCARNATIONS", "FeedHistory", "new_incarnation_id"]

#: The storage key of the history (``Storage.set_kv``).
KV_FEED_HISTORY: Final = "feed.incarnations"

#: Incarnations kept. A twin's claim names the incarnation it last talked to, so it is
#: at most a few runs old unless the twin stayed away for this many restarts; a claim
#: older than the list only costs a full resync.
MAX_INCARNATIONS: Final = 64


def new_incarnation_id() -> str:
    """A fresh random incarnation id (64 bits, hex)."""
    return os.urandom(8).hex()


@attrs.frozen
class FeedHistory:
    """``(incarnation id, first sequence number)`` of this node's runs, oldest first."""

    incarnations: tuple[tuple[str, int], ...] = ()

    @property
    def current(self) -> str:
        """The id of the running incarnation ("" before :meth:`started`)."""
        return self.incarnations[-1][0] if self.incarnations else ""

    def started(self, incarnation: str, first_seq: int) -> FeedHistory:
        """The history with a new run that numbers its changes from *first_seq*."""
        kept = self.incarnations[-(MAX_INCARNATIONS - 1) :]
        return FeedHistory((*kept, (incarnation, first_seq)))

    def vouches(self, incarnation: str, position: int, durable_seq: int) -> bool:
        """True if a twin that applied this feed up to *position*, last hearing from
        *incarnation*, holds a prefix of this node's history.

        *durable_seq* is the end of what is durable here. An empty *incarnation* (a
        twin that never learnt one) is judged by the position alone.
        """
        if position <= 0:
            return True
        if position > durable_seq:
            return False
        if not incarnation:
            return True
        for i, (inc, _first) in enumerate(self.incarnations):
            if inc == incarnation:
                if i + 1 < len(self.incarnations):
                    return position < self.incarnations[i + 1][1]
                return True
        return False

    def shared_end(self, current: FeedHistory) -> int | None:
        """Up to where *current* - the same node's history as it is now - is known to
        hold the feed that *self* - its history as this node last heard of it -
        described: ``None`` if at every position (the same runs, or later runs
        added), else the last such position (0 if none).

        A node restored from an older copy of its database starts a new run at the
        copy's end: its history forks from the one heard before at the first run
        that differs, and the positions before that run's first are the ones both
        histories share. A run added after the last one heard of ends the part
        heard of as well: that run starts where the node's feed stood when it
        started, which for a restored node is the copy's end.
        """
        known, now = self.incarnations, current.incarnations
        if not known or not now:
            return 0
        # Either list may have dropped its oldest runs (MAX_INCARNATIONS): align them.
        k = j = 0
        known_ids = [inc for inc, _ in known]
        if now[0][0] in known_ids:
            k = known_ids.index(now[0][0])
        else:
            now_ids = [inc for inc, _ in now]
            if known[0][0] not in now_ids:
                return 0
            j = now_ids.index(known[0][0])
        while k < len(known) and j < len(now):
            if known[k] != now[j]:
                return max(0, min(known[k][1], now[j][1]) - 1)
            k += 1
            j += 1
        if k < len(known):  # runs heard of that the node no longer has
            return max(0, known[k][1] - 1)
        if j < len(now):
            return max(0, now[j][1] - 1)
        return None

    def known_upto(self, current: FeedHistory, applied: int) -> int:
        """How far a node that applied this feed up to *applied* while it was *self*
        knows it now that it is *current*: *applied*, cut where the histories part
        (:meth:`shared_end`)."""
        end = self.shared_end(current)
        return applied if end is None else min(applied, end)

    def to_text(self) -> str:
        """The stored form (JSON)."""
        return json.dumps([list(pair) for pair in self.incarnations], separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> FeedHistory:
        """Parse :meth:`to_text`; None, or a damaged value, gives an empty history (the
        next claims are then judged by position alone, or resync in full)."""
        if not text:
            return cls()
        try:
            value = json.loads(text)
            pairs = tuple((str(inc), int(first)) for inc, first in value)
        except (ValueError, TypeError):
            return cls()
        return cls(pairs)
