"""The outgoing side of the change feed: what to send the twin, page by page.

* :class:`TwinOrigin` - which entries came from the twin (they are not echoed back).
* :class:`FeedCursor` - pages through the feed above a position in linear time.
* :func:`build_batch` - the next :class:`~pairns.replication.messages.Batch` to send.

No IO and no Trio: the session (:mod:`pairns.replication.session`) calls these.
"""

from __future__ import annotations

import operator
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from pairns.namespace import Entry, Namespace, Stamp
from pairns.naming.requests import RequestTable
from pairns.replication.messages import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    Batch,
    Item,
    estimate_records_size,
    estimate_size,
)

__all__ = [
    "FeedCursor",
    "StableMarks",
    "TwinOrigin",
    "build_batch",
    "bury_collected",
    "item_entry",
    "item_seen",
]

#: ``item.entry`` and ``item.seen`` of a batch :class:`Item`, as fast callables.
item_entry = operator.attrgetter("entry")
item_seen = operator.attrgetter("seen")


class _OriginRef(weakref.ref[Entry]):
    __slots__ = ("key", "link", "twin")

    key: int
    twin: str
    link: int


class TwinOrigin:
    """Which entries of the namespace were merged from the twin, by identity.

    The sender does not echo them. Identity, not the stamp's node, decides: a node may
    write an entry stamped by its twin (a tombstone copied onto the children of a group
    the twin deleted, see ``docs/namespace-merge.md``), and the twin must receive that
    one. Weak references: an entry replaced in the namespace drops out by itself.
    """

    def __init__(self) -> None:
        self._refs: dict[int, _OriginRef] = {}

    def __len__(self) -> int:
        return len(self._refs)

    def add(self, entry: Entry, twin: str, link: int) -> None:
        """*entry* was merged from *twin* on connection number *link*."""
        ref = _OriginRef(entry, self._gone)
        ref.key, ref.twin, ref.link = id(entry), twin, link
        self._refs[ref.key] = ref

    def add_all(self, entries: Iterable[Entry], twin: str, link: int) -> None:
        """:meth:`add` for each of *entries* (a merged batch)."""
        refs = self._refs
        gone = self._gone
        for entry in entries:
            ref = _OriginRef(entry, gone)
            ref.key, ref.twin, ref.link = id(entry), twin, link
            refs[ref.key] = ref

    def came_from(self, entry: Entry, twin: str, link: int | None = None) -> bool:
        """True if *entry* was merged from *twin* (on connection *link*, if given)."""
        ref = self._refs.get(id(entry))
        return (
            ref is not None
            and ref() is entry
            and ref.twin == twin
            and (link is None or ref.link == link)
        )

    def _gone(self, ref: weakref.ref[Entry]) -> None:
        key = getattr(ref, "key", None)
        if key is not None and self._refs.get(key) is ref:
            del self._refs[key]


class StableMarks:
    """How far the twin holds this node's feed with everything it wrote before sent.

    A batch the twin built with nothing more to send (``more`` false) covers the twin's
    whole durable feed, so every change the twin made before it applied what its ack
    covers; once that batch is durable here, a change from the twin that arrives later
    was made knowing what the ack covers (see ``docs/namespace-merge.md``). The marks
    wait, oldest first, until the position this node applied (and stored) covers them.
    """

    def __init__(self) -> None:
        self._marks: deque[tuple[int, int]] = deque()
        self._stable = 0

    def note(self, batch: Batch) -> None:
        """The twin sent *batch* (before it is durable here)."""
        if not batch.more:
            self._marks.append((batch.upto, batch.ack))

    def stable(self, applied: int) -> int:
        """The highest ack of a mark at or below *applied* (this node durably applied
        the twin's feed that far), or of one taken before."""
        marks = self._marks
        while marks and marks[0][0] <= applied:
            self._stable = max(self._stable, marks.popleft()[1])
        return self._stable


def bury_collected(
    ns: Namespace,
    items: Sequence[Item],
    pairs: list[tuple[Entry, Stamp | None]],
    seen_before: int,
    now: float,
) -> list[Entry]:
    """Replace, in *pairs* (the ``(entry, seen)`` of *items*), each live entry the twin
    sent from a position of its feed known here before (at or below *seen_before*,
    see ``Pairing._seen_before``) whose name has no entry here, by a tombstone just
    above it written by this node; return those tombstones.

    Such an entry was known here, then deleted and the deletion collected
    (``Namespace.is_collected``): only a twin that lost the deletion (restored from an
    older copy of its database) still holds it. Merged, it would bring the name back;
    the tombstone travels to the twin instead and ends it there too. It beats only that
    entry (and older ones): a change the twin made to the name after the restore wins.
    """
    if not items or not seen_before or items[0].seq > seen_before:
        return []
    buried: list[Entry] = []
    for i, item in enumerate(items):
        if item.seq > seen_before:
            break
        entry = item.entry
        if ns.is_collected(entry):
            tomb = Entry(
                name=entry.name,
                kind=entry.kind,
                uri=None,
                meta=None,
                created=entry.created,
                modified=max(now, entry.modified),
                owner=ns.node_id,
                stamp=Stamp(entry.stamp.hlc + 1, ns.node_id),
                deleted=True,
            )
            pairs[i] = (tomb, entry.stamp)
            buried.append(tomb)
    return buried


class FeedCursor:
    """Pages through the change feed above a position without rescanning it per page.

    ``Namespace.entries_since(seq)`` walks the feed from its end, so paging a
    100,000-name snapshot with it is quadratic. The cursor takes one listing and serves
    pages from it while every row in the page is still the current entry of its name;
    a row that was replaced (or undone) since, or a page the listing cannot fill, makes
    it list again from the position asked for, which is always right (changes made
    after the listing have higher positions than everything in it).

    The first page of a full snapshot (above 0) is listed on its own, without the whole
    feed: the twin can start merging it while the next call takes the long listing.
    """

    def __init__(self, ns: Namespace) -> None:
        self._ns = ns
        self._rows: list[tuple[int, Entry]] = []
        self._index = 0
        self._base = 0  # the position the rows were listed above
        self._first = True

    def rows(self, start: int, limit: int) -> list[tuple[int, Entry]]:
        """Up to *limit* ``(seq, entry)`` rows above *start*, in feed order."""
        if self._first:
            self._first = False
            if start <= 0:
                return self._ns.entries_since(start, limit=limit)
        rows, i = self._rows, self._index
        if start < self._base:
            rows, i = [], 0  # asked to go back: list again
        while i < len(rows) and rows[i][0] <= start:
            i += 1
        page = rows[i : i + limit]
        current = self._ns.entry
        # A short page from the listing may just mean the listing ended while the feed
        # went on: only a full page of current rows is served from it.
        if len(page) < limit or any(current(entry.name) is not entry for _, entry in page):
            rows = self._ns.entries_since(start)
            i = 0
            page = rows[:limit]
            self._base = start
        if len(rows) - i > limit:
            self._rows, self._index = rows, i
        else:
            self._rows, self._index, self._base = [], 0, 0
        return page


def build_batch(
    ns: Namespace,
    *,
    start: int,
    end: int,
    ack: int,
    requests: RequestTable,
    now: float,
    skip: Callable[[Entry], bool] | None = None,
    durable_end: int | None = None,
    limit: int = MAX_BATCH_ENTRIES,
    max_bytes: int = MAX_BATCH_BYTES,
    cursor: FeedCursor | None = None,
) -> Batch:
    """The next batch of *ns*'s feed above *start*, up to the durable position *end*.

    Entries for which *skip* is true (what the twin itself sent, see
    :class:`TwinOrigin`) are not sent back, but the batch's ``upto`` still covers their
    positions so the twin's ack does.
    ``more`` says whether the feed holds more below *durable_end* (default: *end*; the
    sender passes a smaller *end* when its send window is full). A *cursor* over *ns*
    makes paging through a long feed linear.
    """
    if end <= start:
        rows: list[tuple[int, Entry]] = []
    elif cursor is not None:
        rows = cursor.rows(start, limit)
    else:
        rows = ns.entries_since(start, limit=limit)
    items: list[Item] = []
    size = 0
    upto = start
    cut = False
    for seq, entry in rows:
        if seq > end:
            break
        upto = seq
        if skip is None or not skip(entry):
            items.append(Item(seq, entry, ns.seen_of(entry.name)))
            size += estimate_size(entry)
            if size >= max_bytes:
                cut = True
                break
    else:
        cut = len(rows) >= limit
    if not cut:
        upto = max(upto, end)  # nothing else at or below the durable end
    records = tuple(requests.between(start, upto, now)) if upto > start else ()
    # The request records of these writes travel too: with long request ids a full
    # batch could outgrow the frame. Rare, so simply: keep the first half until it fits.
    while len(items) > 1 and size + estimate_records_size(records) > max_bytes:
        del items[len(items) // 2 :]
        upto = items[-1].seq
        size = sum(map(estimate_size, map(item_entry, items)))
        records = tuple(requests.between(start, upto, now))
    last = end if durable_end is None else durable_end
    return Batch(
        start=start, upto=upto, ack=ack, items=tuple(items), requests=records, more=upto < last
    )
