"""Recent client request ids and their results: what makes a retried write safe.

A client sends a fresh request id with every write and the same id again when it
retries (after a timeout, or on the twin after a failover). The node keeps a bounded,
time-limited table ``request id -> result``: a retry of a write that was applied is
answered from the table instead of being applied twice. Records made here travel to
the twin with the changes of the write (by the feed position of the write), so the
twin answers such a retry too. No IO and no clock of its own (``now`` is passed in).

The table belongs to the name service, which deduplicates writes with it
(:mod:`pairns.naming.writes`); the peer link only carries its records.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import attrs

from pairns import _collector as collector

__all__ = ["MAX_REQUESTS", "REQUEST_TTL", "RequestRecord", "RequestTable"]

_request_id = operator.itemgetter(0)
_result = operator.itemgetter(1)
_age = operator.itemgetter(2)

#: How many request ids a node remembers (a client retries within seconds; 100,000 is
#: minutes of writes at full speed, a few tens of MB at most).
MAX_REQUESTS: Final = 100_000

#: How long a request id is remembered, in seconds.
REQUEST_TTL: Final = 600.0

#: Index rows of forgotten records kept before they are cut off in one go (they
#: hold their request id: a few hundred KB at most).
_DEAD_ROWS: Final = 4096


class RequestRecord(NamedTuple):
    """A client request id, the result its write returned, and its age in seconds: how
    a record leaves this table for the twin (:meth:`RequestTable.between`) and comes
    back in (:meth:`RequestTable.learn_all`). An age, not a time: the twin's clock is
    not this node's.

    A named tuple rather than an attrs class: a full resync makes 100,000 of these on
    each side.
    """

    request_id: str
    result: Any
    age: float = 0.0


#: One remembered request: ``(result, seq, at)`` - the result, the feed position of the
#: write (0: learnt from the twin) and when it was applied. A plain tuple: a resync
#: learns 100,000 of these at once.
_Record = tuple[Any, int, float]


@attrs.define(eq=False)
class RequestTable:
    """``request id -> result``, bounded by count and age, indexed by feed position."""

    max_size: int = MAX_REQUESTS
    ttl: float = REQUEST_TTL
    _records: OrderedDict[str, _Record] = attrs.field(init=False, factory=OrderedDict)
    # (seq, request id) of local writes, sorted by seq, for sending with the changes.
    # The first _dead rows name records that are gone; they are cut off in one go
    # (see _trim).
    _by_seq: list[tuple[int, str]] = attrs.field(init=False, factory=list)
    _dead: int = attrs.field(init=False, default=0)

    def __len__(self) -> int:
        return len(self._records)

    def get(self, request_id: str, now: float) -> tuple[bool, Any]:
        """``(True, result)`` if *request_id* was applied (and is not too old)."""
        record = self._records.get(request_id)
        if record is None or now - record[2] > self.ttl:
            return False, None
        return True, record[0]

    def add(self, request_id: str, result: Any, seq: int, now: float) -> None:
        """Remember that the write *request_id* (at feed position *seq*) returned *result*."""
        if request_id in self._records:
            return
        self._records[request_id] = (result, seq, now)
        if seq > 0:
            if self._by_seq and seq < self._by_seq[-1][0]:
                # Among the live rows: one that sorts before a dead row goes first
                # after them, which keeps the live rows in order.
                bisect.insort(self._by_seq, (seq, request_id), lo=self._dead)
            else:
                self._by_seq.append((seq, request_id))
        self._trim(now)

    def learn(self, record: RequestRecord, now: float) -> None:
        """Remember a record the twin sent (it keeps its age)."""
        self.learn_all((record,), now)

    def learn_all(self, records: Iterable[RequestRecord], now: float) -> None:
        """Remember the records of one batch from the twin (each keeps its age).

        The same as :meth:`learn` for each in turn (a known id keeps its first result),
        in one pass: a full resync brings up to :data:`MAX_REQUESTS` of them.
        """
        ttl = self.ttl
        known = self._records
        size = len(known)
        records = records if isinstance(records, Sequence) else list(records)
        ids = list(map(_request_id, records))
        ages = list(map(_age, records))
        if ids and max(ages) < ttl and len(set(ids)) == len(ids) and known.keys().isdisjoint(ids):
            # The common case (a resync): all new, distinct and young - added in C.
            ats = map(float.__sub__, itertools.repeat(float(now)), map(float, ages))
            values = zip(map(_result, records), itertools.repeat(0), ats, strict=False)
            known.update(zip(ids, values, strict=True))
            self._trim(now)
            return
        max_size = self.max_size
        for request_id, result, age in records:
            if age < ttl and request_id not in known:
                known[request_id] = (result, 0, now - age)
                if len(known) > max_size:
                    self._trim(now)  # before a later duplicate could come back
        if len(known) != size:
            self._trim(now)

    def restore(self, stored: Sequence[tuple[str, int, float]], now: float) -> None:
        """Reload ``(request id, seq, applied at)`` of writes kept in storage, in seq
        order (their result is None: every Pyro 3 write returns None), after a
        restart. A seq of 0 marks a write the twin applied (its id was learnt with the
        twin's change): it is remembered, and not sent back to the twin.

        In one pass, with the collector paused: this runs right after the namespace was
        loaded, and allocation-triggered collections would rescan all of it. (Storage
        hands back at most ``RESTORED_REQUESTS`` ids; only those within the TTL count.)
        """
        oldest = now - self.ttl
        young = [row for row in stored if row[2] >= oldest][-self.max_size :]
        if not young:
            return
        with collector.paused():
            records = self._records
            if records:
                young = [row for row in young if row[0] not in records]
            records.update((rid, (None, seq, at)) for rid, seq, at in young)
            new_index = [(seq, rid) for rid, seq, _ in young if seq > 0]
            live = self._by_seq[self._dead :]
            self._by_seq = sorted(live + new_index) if live else new_index
            self._dead = 0
            self._trim(now)

    def between(self, low: int, high: int, now: float) -> list[RequestRecord]:
        """Records of local writes at feed positions in ``(low, high]``."""
        by_seq = self._by_seq
        start = bisect.bisect_right(by_seq, (low, "\U0010ffff"), lo=self._dead)
        end = bisect.bisect_right(by_seq, (high, "\U0010ffff"), lo=start)
        records = self._records
        out = []
        for seq, request_id in by_seq[start:end]:
            record = records.get(request_id)
            if record is not None and record[1] == seq:
                age = now - record[2]
                out.append(RequestRecord(request_id, record[0], age if age > 0.0 else 0.0))
        return out

    def all_records(self, now: float) -> list[RequestRecord]:
        """Every record (for a full resync)."""
        return [
            RequestRecord(rid, result, max(0.0, now - at))
            for rid, (result, _seq, at) in self._records.items()
            if now - at <= self.ttl
        ]

    def _trim(self, now: float) -> None:
        records = self._records
        ttl = self.ttl
        excess = len(records) - self.max_size
        if excess > 0:
            # Too many (a resync learnt a batch at once): the oldest go first.
            for _ in range(excess):
                records.popitem(last=False)
        while records:
            oldest_id, oldest = next(iter(records.items()))
            if now - oldest[2] <= ttl:
                break
            del records[oldest_id]
        # Skip index rows whose record is gone (records leave oldest first, and the
        # index is in nearly the same order), and cut them off only every
        # _DEAD_ROWS: a full table loses its oldest record on every write, and moving
        # the 100,000 rows left each time cost 40 us a write.
        by_seq = self._by_seq
        dead = self._dead
        while dead < len(by_seq) and by_seq[dead][1] not in records:
            dead += 1
        if dead >= _DEAD_ROWS or dead == len(by_seq):
            del by_seq[:dead]
            dead = 0
        self._dead = dead
