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

    def credit(self, seen: dict[str, int], upto: int) -> None:
        """Note in *seen* (run id -> highest position seen in it) that this feed was
        applied up to *upto*: each run gets the part of its stretch at or below it.

        Kept per run, not as one position: a node restored from an older copy starts a
        new run at the copy's end, and one restored later from a newer copy shares
        more of the old run again; what was seen of that run still holds.
        """
        runs = self.incarnations
        for i, (inc, first) in enumerate(runs):
            if upto < first:
                break
            end = runs[i + 1][1] - 1 if i + 1 < len(runs) else upto
            top = min(upto, end)
            if top >= first and top > seen.get(inc, 0):
                seen[inc] = top

    def known_prefix(self, seen: dict[str, int]) -> int:
        """Up to where this feed is known to have been applied, by what *seen* (see
        :meth:`credit`) says of its runs: run after run, as long as each was seen to
        its end here, then as far as the first one that was not."""
        runs = self.incarnations
        if not runs or (runs[0][1] > 1 and runs[0][0] not in seen):
            return 0
        for i, (inc, first) in enumerate(runs):
            end = runs[i + 1][1] - 1 if i + 1 < len(runs) else None
            if end is not None and end < first:
                continue  # a run that wrote nothing
            got = seen.get(inc, 0)
            if got < first:
                return first - 1
            if end is None or got < end:
                return got
        return 0  # unreachable: the last run always returns

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
