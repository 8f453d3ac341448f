"""The namespace of one node: entries, derived visibility, Pyro 3 operations, merge.

State
-----
:class:`Namespace` holds, per name, the one :class:`~pairns.namespace.entry.Entry` with
the highest stamp it has seen: a group, an object or a tombstone. Entries never change;
the containers around them do. Names given to every method are already absolute and
valid (the service calls :func:`pairns.names.absolute` at the edge).

Visibility is derived from the entries, never stored in them, by one rule that depends
only on the set of entries (see ``docs/namespace-merge.md``):

* The root ``":"`` is always a visible group.
* A live entry (not a tombstone) is *self-visible* when every proper ancestor other than
  the root has an entry, no ancestor's entry is a live object, and every ancestor whose
  entry is a tombstone was deleted *before* this entry was written (tombstone stamp
  lower than the entry's stamp).
* A name is visible when it is self-visible or is an ancestor of a self-visible name.
  A self-visible name shows its own kind; an ancestor shown only because of a
  self-visible descendant is a group (a deleted group *revived* by a newer write under
  it shows as a group with no metadata).

So a group deletion hides what was written under it before the deletion (on this node
or concurrently on the twin), a newer write under a deleted group brings the group path
back, and children of a name that is now an object are hidden. Queries (``resolve``,
``list``, ``flatlist``, metadata, ``entry_count``) and the validation of operations all
read the same derived view, which is maintained incrementally: a resolve is one dict
lookup. Every path that changes the stored entries (an operation, a merge, a bulk
merge, a load, an undo) stores them through one primitive, ``_put``, which updates the
entries, the change feed, the knowledge, the child index, the tombstone count and the
digest a column at a time (``_put_one`` is its form for one entry); the view is then
updated from what was stored. :meth:`Namespace.check_invariants` recomputes all of it
from scratch, for tests.

Operations and change sets
--------------------------
:meth:`Namespace.register`, :meth:`~Namespace.unregister`,
:meth:`~Namespace.create_group`, :meth:`~Namespace.delete_group` and
:meth:`~Namespace.set_meta` validate against the visible state, raise
:class:`~pairns.errors.NamingError` with Pyro 3's wording and the offending name, and
otherwise apply their change at once and return a :class:`ChangeSet`: the new entries
(tombstones included), the local sequence number each got, and what each replaced. The
change set is the unit of durability and replication::

    changes = ns.register(name, uri)
    try:
        await storage.commit(changes.rows)
    except StorageError:
        ns.undo(changes)
        raise

:meth:`Namespace.undo` puts back the previous entries (with their sequence numbers). It
is safe when several change sets are in flight: if a later change set already replaced
one of the undone entries, that later change set is rewired to replace the older
entry instead, so undoing in any order ends in the right state.

A delete writes tombstones for every stored live descendant (each one a copy of the
group's tombstone under the descendant's name), children first, so the twin never sees
a group vanish while its children still stand. A local write that replaces a tombstone
with a live entry (re-creating a group, setting metadata on a revived one) first
tombstones the stored live descendants older than that tombstone in the same way, so
what the deletion hid on this node does not come back with the name.

Change feed
-----------
Every applied change - local operation or merged remote entry - gets the next local
sequence number (:attr:`Namespace.last_seq`), and :meth:`Namespace.entries_since` lists
``(seq, entry)`` of every name changed after a position, ordered by ``seq``, each name
once with its current entry. An undo gives the restored entries their old numbers back
(the twin never saw what was undone). :meth:`Namespace.load` rebuilds it all from storage.

Merge and conflicts
-------------------
:meth:`Namespace.merge` keeps, per name, the entry with the higher stamp (equal stamps
are the same change, merged once). That is commutative, associative and idempotent, and
visibility is a function of the entries alone, so replicas that hold the same entries
show the same namespace, whatever order they got them in. :meth:`Namespace.digest`
(O(1) to read) is equal on two replicas exactly when they hold the same entries.

A merge reports :class:`Conflict` values through :attr:`Namespace.on_conflict` (and
counts them in :attr:`Namespace.conflict_count`):

* ``"version"`` - a local entry lost to a different remote one written without
  knowledge of it (versions that differ only in stamp and times are not reported).
  Knowledge is tracked per name as ``seen``: the highest stamp from another node the
  version's history includes; pass it to :meth:`~Namespace.merge` (the sender reads it
  with :meth:`~Namespace.seen_of` or from :attr:`ChangeSet.seen`). Without it no
  version conflict can be told apart from a normal update, and none is reported.
* ``"hidden"`` - a visible entry was hidden by a remote group deletion (or by its
  parent becoming an object) that did not know about it.
* ``"revived"`` - a deleted group came back because of a newer remote write under it.

Bulk merge
----------
:meth:`~Namespace.merge_all` merges a batch of at least :data:`BULK_MERGE_MIN` entries
(a resync sends 2,000 at a time) with the cyclic garbage collector paused, and through a
bulk path when this rule holds: no tombstone is stored or in the batch, every entry is
valid and no name changes kind. Then no merge can hide or revive anything, so entries
go into the dicts (last writer wins, ``"version"`` conflicts decided per entry, the
change set recorded as usual) and the view is updated once for the batch
(:meth:`View.add_bulk <pairns.namespace.visibility.View.add_bulk>`); the digest is
updated per entry only when the batch is small next to the namespace, else recomputed
when next asked for. The outcome is the same as merging one by one (entries, feed,
knowledge, view, digest, conflicts, undo); only ``on_conflict`` runs once the whole
batch is applied. A full resync to a fresh node takes this path unless the twin holds
tombstones; any other batch takes the per-entry path.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from typing import Any, cast

import attrs

from pairns import _collector as collector
from pairns import names
from pairns.errors import NamingError, URIError
from pairns.namespace.changes import ChangeSet, Conflict
from pairns.namespace.digest import DIGEST_MODULUS, entry_hash, format_digest
from pairns.namespace.entry import Entry, Kind
from pairns.namespace.fields import get_deleted, get_hlc, get_name, get_stamp
from pairns.namespace.stamps import BOOTSTRAP_HLC, ZERO_STAMP, HybridClock, Stamp
from pairns.namespace.visibility import View, depth, newer, parent_of, upper_ancestors
from pairns.uri import URI
from pairns.uri import is_canonical as is_canonical_uri

__all__ = [
    "BULK_MERGE_MIN",
    "COLLECT_BATCH",
    "MAX_META_BYTES",
    "NODE_LOCAL_NAMES",
    "ChangeSet",
    "Conflict",
    "Namespace",
]

#: Largest user metadata accepted by ``set_meta``, as compact JSON (UTF-8 bytes). Pyro
#: programs keep small descriptions there; 64 KiB leaves plenty of room while one name
#: cannot bloat every snapshot, resync and wire frame.
MAX_META_BYTES = 64 * 1024

#: Smallest batch :meth:`Namespace.merge_all` merges as a bulk (a resync sends 2,000).
BULK_MERGE_MIN = 256

#: Most tombstones one :meth:`Namespace.collect` call drops: it runs on the event loop,
#: and storage deletes their rows in one transaction (a few milliseconds each).
COLLECT_BATCH = 2_000

#: Names each node holds for itself (Pyro 3: each server of a pair resolves
#: ``:Pyro.NameServer`` to itself): shown by :meth:`Namespace.set_local`, never stored,
#: replicated, merged or counted in the digest, and refused from a twin.
NODE_LOCAL_NAMES = frozenset({names.NAMESERVER_NAME})

_ROOT = names.ROOT
_INF = float("inf")
_SEP = names.SEP
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_third = operator.itemgetter(2)
_is_none = functools.partial(operator.is_, None)
_is_not_zero = functools.partial(operator.is_not, ZERO_STAMP)
_GROUP = Kind.GROUP
_OBJECT = Kind.OBJECT

# Aliases for annotations inside Namespace, whose ``list`` method shadows the builtin.
_Rows = list[tuple[int, Entry]]
_Pairs = list[tuple[str, str]]
_Page = tuple[list[dict[str, Any]], bool]
_Merges = list[tuple[Entry, Stamp | None]]
_Names = list[str]
_Kids = dict[str, list[str]]
_Collected = list[tuple[str, int]]


@attrs.define(eq=False)
class Namespace:
    """The namespace state of one node (see the module docs).

    ``Namespace(node_id, clock, default_group=":Default")``; call :meth:`load` with the
    stored rows, then :meth:`bootstrap` to create the initial groups.
    """

    node_id: str
    clock: HybridClock
    default_group: str = attrs.field(default=names.DEFAULT_GROUP, kw_only=True)
    #: Called with every :class:`Conflict` a merge finds.
    on_conflict: Callable[[Conflict], None] | None = attrs.field(default=None, kw_only=True)
    #: How many conflicts merges have found since start.
    conflict_count: int = attrs.field(default=0, init=False)

    # Stored state: the winning entry per name, its feed position and its knowledge.
    _entries: dict[str, Entry] = attrs.field(init=False, repr=False, factory=dict)
    _seq: dict[str, int] = attrs.field(init=False, repr=False, factory=dict)
    _by_seq: dict[int, str] = attrs.field(init=False, repr=False, factory=dict)
    _by_seq_sorted: bool = attrs.field(init=False, repr=False, default=True)
    _last_seq: int = attrs.field(init=False, repr=False, default=0)
    _seen: dict[str, Stamp] = attrs.field(init=False, repr=False, factory=dict)
    _children: dict[str, set[str]] = attrs.field(init=False, repr=False, factory=dict)
    # The names whose stored entry is a tombstone, in the order they became one, which
    # is feed order but for an undo (the bulk merge path needs none; collect() looks
    # for what it may drop among them only, from the oldest, and stops at the first
    # one too new: a pass costs what it drops, not what the node holds).
    _graves: dict[str, None] = attrs.field(init=False, repr=False, factory=dict)
    #: How many tombstones :meth:`collect` dropped since start.
    collected_count: int = attrs.field(default=0, init=False)
    #: The highest stamp of a tombstone this node ever collected (kept with its data:
    #: :meth:`load` takes it back); see :meth:`is_collected`.
    horizon: Stamp = attrs.field(default=ZERO_STAMP, init=False)
    _view: View = attrs.field(init=False, repr=False)
    # The view's dicts, bound here too: resolve is the hot path.
    _objects: dict[str, str] = attrs.field(init=False, repr=False)
    _listing: dict[str, dict[str, int]] = attrs.field(init=False, repr=False)
    # Sum of the live entries' hashes mod 2**256; None until first asked for (keeps load and the
    # first snapshot fast), kept up to date on every change after that.
    _digest: int | None = attrs.field(init=False, repr=False, default=None)
    _pending: weakref.WeakSet[ChangeSet] = attrs.field(
        init=False, repr=False, factory=weakref.WeakSet
    )
    # Entry id -> the change set in flight that wrote it, while one merge call runs
    # (see _lost_to); None outside of merges.
    _owners: dict[int, ChangeSet] | None = attrs.field(init=False, repr=False, default=None)
    _version: int = attrs.field(init=False, repr=False, default=0)
    _sorted_names: tuple[int, list[str]] | None = attrs.field(init=False, repr=False, default=None)
    # Node-local objects (name -> (uri, time set)); see set_local().
    _local: dict[str, tuple[str, float]] = attrs.field(init=False, repr=False, factory=dict)
    # The groups holding node-local names: only a change at or below one of them can
    # show or hide a node-local name (one startswith per write, not a pass over them).
    _local_scope: tuple[str, ...] = attrs.field(init=False, repr=False, default=())

    def __attrs_post_init__(self) -> None:
        self.default_group = names.check_default_group(self.default_group)
        self._view = View(self._entries, self._children)
        self._objects = self._view.objects
        self._listing = self._view.listing

    # ------------------------------------------------------------------ queries (hot)

    def resolve(self, name: str) -> str:
        """The URI registered under *name*.

        Raises ``NamingError`` with ``"attempt to resolve groupname"`` for a group,
        ``"group not found"`` when an ancestor is an object, else ``"name not found"``.
        """
        uri = self._objects.get(name)
        if uri is not None:
            return uri
        raise self._resolve_error(name)

    def list(self, group: str) -> list[tuple[str, int]]:
        """``(basename, 0 for a group / 1 for an object)`` of the direct children of *group*,
        sorted by name. Raises ``"group not found"`` or ``"is no group"``."""
        listing = self._listing.get(group)
        if listing is not None:
            return sorted(listing.items())
        for ancestor in [*upper_ancestors(group), group]:
            kind = self.kind_of(ancestor)
            if kind is _OBJECT:
                raise NamingError("is no group", group)
            if kind is None:
                raise NamingError("group not found", group)
        raise AssertionError("unreachable: every ancestor is a visible group")  # pragma: no cover

    def flatlist(self) -> _Pairs:
        """``(absolute name, URI)`` of every visible object, sorted by name."""
        return sorted(self._objects.items())

    def kind_of(self, name: str) -> Kind | None:
        """The visible kind of *name*, or ``None`` if it is not visible."""
        if name in self._objects:
            return _OBJECT
        if name in self._listing:
            return _GROUP
        return None

    def exists(self, name: str) -> bool:
        """True if *name* is visible (as a group or an object)."""
        return name in self._objects or name in self._listing

    def lookup(self, name: str) -> Entry | None:
        """The stored entry behind a visible *name*, or ``None`` if it is not visible.

        A deleted group that is visible because of a newer write under it is backed by
        its tombstone; the root may have no entry before :meth:`bootstrap`.
        """
        if name in self._objects or name in self._listing:
            return self._entries.get(name)
        return None

    def entry(self, name: str) -> Entry | None:
        """The stored entry for *name* (visible or not, tombstones too), if any."""
        return self._entries.get(name)

    def get_meta(self, name: str) -> Any:
        """The user metadata of a visible group or object (``None`` until set).

        Raises ``"name not found"``, or ``"group not found"`` when an ancestor is an
        object (Pyro 3).
        """
        self._check_visible(name)
        entry = self._entries.get(name)
        if entry is None or entry.deleted:
            return None
        return _copy_json(entry.meta)

    def get_system_meta(self, name: str) -> dict[str, Any]:
        """``{"created", "modified", "owner", "kind"}`` of a visible name.

        Times are wall-clock seconds; ``owner`` is the id of the node that wrote the
        current version; ``kind`` is ``"group"`` or ``"object"``.
        """
        kind = self._check_visible(name)
        entry = self._entries.get(name)
        if name in self._local:
            since = self._local[name][1]
            return {"created": since, "modified": since, "owner": self.node_id, "kind": "object"}
        if entry is None:  # the root, before bootstrap()
            return {"created": 0.0, "modified": 0.0, "owner": "", "kind": "group"}
        return {
            "created": entry.created,
            "modified": entry.modified,
            "owner": entry.owner,
            "kind": "group" if kind is _GROUP else "object",
        }

    @property
    def entry_count(self) -> int:
        """How many names are visible (groups and objects, the root not counted)."""
        return len(self._objects) + len(self._listing) - 1

    @property
    def stored_count(self) -> int:
        """How many entries are stored, tombstones and hidden entries included."""
        return len(self._entries)

    def digest(self) -> str:
        """A hex digest of every stored live entry (groups and objects), equal on two
        replicas iff they hold the same live entries.

        Tombstones are left out: each node collects them on its own time
        (:meth:`collect`), and a digest that counted them would differ between two
        nodes holding the same namespace for as long as one had collected and the
        other not yet. A settled pair holds the same tombstones apart from those
        collected, which hide nothing, so equal digests still mean equal namespaces.
        """
        if self._digest is None:
            self._digest = sum(map(_live_hash, self._entries.values())) % DIGEST_MODULUS
        return format_digest(self._digest)

    @property
    def tombstone_count(self) -> int:
        """How many stored entries are tombstones."""
        return len(self._graves)

    def dump_page(self, after: str | None, limit: int) -> _Page:
        """Up to *limit* visible names after *after* (exclusive) in name order, as dicts
        with ``name``, ``kind`` (``"group"``/``"object"``), ``uri`` and ``meta``; the flag
        says whether more follow. The root is left out: it always exists and cannot be
        created, so a dump stays something a client can replay."""
        cached = self._sorted_names
        if cached is None or cached[0] != self._version:
            ordered = sorted([*self._objects, *self._listing])
            cached = (self._version, ordered[1:])  # ":" sorts first
            self._sorted_names = cached
        ordered = cached[1]
        start = 0 if after is None else bisect.bisect_right(ordered, after)
        page = []
        for name in ordered[start : start + limit]:
            entry = self._entries.get(name)
            live = entry is not None and not entry.deleted
            is_object = name in self._objects
            page.append(
                {
                    "name": name,
                    "kind": "object" if is_object else "group",
                    "uri": self._objects[name] if is_object else None,
                    "meta": _copy_json(entry.meta) if live and entry is not None else None,
                }
            )
        return page, start + limit < len(ordered)

    def check_invariants(self) -> None:
        """Recompute everything derived from the stored entries from scratch and raise
        ``AssertionError`` naming the first thing the incremental upkeep got wrong: the
        view (visible names, listings and its bookkeeping), the child index, the feed
        index, the knowledge, the tombstone count and a cached digest. For tests; it
        costs as much as a load."""
        entries = self._entries
        children: dict[str, set[str]] = {}
        for name in entries:
            if name != _ROOT:
                children.setdefault(parent_of(name), set()).add(name)
        if children != self._children:
            raise AssertionError("the child index differs from the stored names")
        if self._seq.keys() != entries.keys() or self._by_seq != {
            seq: name for name, seq in self._seq.items()
        }:
            raise AssertionError("the feed index differs from the stored names")
        if not self._seen.keys() <= entries.keys() or ZERO_STAMP in self._seen.values():
            raise AssertionError("knowledge is kept for a name without an entry, or is zero")
        if self._graves.keys() != {name for name, entry in entries.items() if entry.deleted}:
            raise AssertionError("the set of tombstones is wrong")
        if self._digest is not None and self._digest != (
            sum(map(_live_hash, entries.values())) % DIGEST_MODULUS
        ):
            raise AssertionError("the cached digest differs from the stored entries'")
        if self._by_seq_sorted and list(self._by_seq) != sorted(self._by_seq):
            raise AssertionError("the feed index is flagged sorted but is not")
        self._view.check(self._overlay_local)

    # ------------------------------------------------------------------ change feed

    @property
    def last_seq(self) -> int:
        """The sequence number of the latest change applied (0 if none yet)."""
        return self._last_seq

    def seq_of(self, name: str) -> int:
        """The feed position of *name*'s current entry (0 if it has none)."""
        return self._seq.get(name, 0)

    def seen_of(self, name: str) -> Stamp:
        """The replication knowledge of *name*'s current entry (see :meth:`merge`)."""
        return self._seen.get(name, ZERO_STAMP)

    def entries_since(self, seq: int, *, limit: int | None = None) -> _Rows:
        """``(seq, entry)`` of every name changed after position *seq*, ordered by seq
        (tombstones included; each name once, with its current entry). With *limit*,
        only the first *limit* of them."""
        if not self._by_seq_sorted:
            self._by_seq = dict(sorted(self._by_seq.items()))
            self._by_seq_sorted = True
        result: _Rows = []
        if seq <= 0:
            rows = self._by_seq.items()
            listed = rows if limit is None else itertools.islice(rows, max(0, limit))
            result = [(s, self._entries[n]) for s, n in listed]
        else:
            entries = self._entries
            for s, n in reversed(self._by_seq.items()):
                if s <= seq:
                    break
                result.append((s, entries[n]))
            result.reverse()
        return result if limit is None else result[:limit]

    # ------------------------------------------------------------------ tombstones

    def collect(
        self, upto: int, *, limit: int = COLLECT_BATCH, older_than: int | None = None
    ) -> _Collected:
        """Drop up to *limit* tombstones nothing needs any more; ``(name, seq)`` of each,
        for storage to delete their rows.

        A tombstone goes when its feed position is at or below *upto* (the caller's
        rule: durable here and, in a pair, durably held by the twin, which has sent
        everything it wrote before it did; see ``docs/namespace-merge.md``) and:

        * no stored entry lies below its name: such a tombstone may hide a live entry
          older than it, and decides whether a write below it revives the name; one
          with no descendant hides nothing, so the view does not change;
        * it is not a name :meth:`bootstrap` makes again when it has no entry (the
          root, ``:Pyro``, the default group and its parents): a start would bring
          the name back, below the deletion;
        * no change set still in flight wrote it (its commit may fail and be undone,
          which needs the entry).

        With *older_than* (an HLC value), only tombstones stamped below it go (the
        grace period, see ``docs/namespace-merge.md``). A group's tombstone goes on a
        later call than its children's (it has descendants until they went).
        :attr:`horizon` rises to the highest stamp collected.

        The tombstones are looked at oldest first, and the look stops at the first one
        above *upto* or not older than *older_than*: one that comes after it in the
        feed waits for it (the rule only ever allows more as time passes, so waiting
        is safe), and a pass does not walk the whole set each time (100,000
        tombstones held through a grace period took 120 ms a pass).
        """
        seq_of, children, entries = self._seq, self._children, self._entries
        kept = self._bootstrap_names()
        inflight: set[int] | None = None
        doomed: list[str] = []
        for name in self._graves:
            if seq_of[name] > upto:
                break
            if older_than is not None and entries[name].stamp.hlc >= older_than:
                break
            if name in children or name in kept:
                continue
            if inflight is None:
                inflight = {
                    id(entry)
                    for changes in self._pending
                    if not changes.undone
                    for entry in changes.entries
                }
            if id(entries[name]) in inflight:
                continue
            doomed.append(name)
            if len(doomed) >= limit:
                break
        if not doomed:
            return []
        olds = [entries[name] for name in doomed]
        seqs = [seq_of[name] for name in doomed]
        top = max(map(get_stamp, olds))
        self._put(doomed, [None] * len(doomed), seqs, None, olds)
        for name, old in zip(doomed, olds, strict=True):
            self._view.refresh(name, old, None)
        self.collected_count += len(doomed)
        if newer(top, self.horizon):
            self.horizon = top
        return list(zip(doomed, seqs, strict=True))

    def restore_horizon(self, horizon: Stamp) -> None:
        """Take back the :attr:`horizon` stored with the data (after :meth:`load`).

        The clock observes it too: :meth:`load` keeps the clock above every stamp the
        node holds, and a collected tombstone may have held the highest one. Without
        this, a node restarted with its clock behind could stamp a new change exactly
        as one it made before (found by the pair simulation), and two changes with one
        stamp count as the same change.
        """
        if newer(horizon, self.horizon):
            self.horizon = horizon
        if horizon.hlc:
            self.clock.observe(horizon)

    def is_collected(self, entry: Entry) -> bool:
        """True if *entry*, from the twin, is live and its name has no entry here.

        Only meaningful for an entry from a position of the twin's feed this node had
        applied before (the link decides that; see ``docs/namespace-merge.md``): this
        node then got that entry, or a newer version of the name, or nothing because
        the twin had already collected a deletion of it. Having no entry now, this node
        collected a deletion newer than the entry, or never got one that the twin
        collected: either way the name was deleted after *entry*. (Not a comparison
        with :attr:`horizon`: a node wiped since never collected that deletion itself;
        found by the chaos suite, seed 3.)"""
        return not entry.deleted and entry.name not in self._entries

    def _bootstrap_names(self) -> frozenset[str]:
        return frozenset((_ROOT, ":Pyro", *upper_ancestors(self.default_group), self.default_group))

    # ------------------------------------------------------------------ persistence

    def load(self, rows: Iterable[tuple[int, Entry]], last_seq: int = 0) -> None:
        """Replace the whole state with stored ``(seq, entry)`` rows (any order).

        *last_seq* is the highest sequence number storage ever committed, if it knows;
        the feed continues after it and after every row's seq.
        """
        # A bulk load makes ~10 long-lived objects per entry; the cyclic collector
        # would rescan them all several times (a third of the load time), for no gain.
        with collector.paused():
            self._load(rows, last_seq)

    def _load(self, rows: Iterable[tuple[int, Entry]], last_seq: int) -> None:
        ordered = sorted(rows, key=_first)  # storage hands them sorted: one linear pass
        seqs: list[int] = list(map(_first, ordered))
        batch: list[Entry] = list(map(_second, ordered))
        del ordered
        names_: list[str] = list(map(get_name, batch))
        top = max(last_seq, seqs[-1]) if seqs else last_seq
        self._clear()
        kids_of = self._put(names_, batch, seqs, None, None)
        if len(self._entries) != len(batch):
            # Storage keeps one row per name; rows that repeat a name keep the newest.
            newest: dict[str, tuple[int, Entry]] = {}
            for seq, entry in zip(seqs, batch, strict=True):
                old = newest.get(entry.name)
                if old is None or newer(entry.stamp, old[1].stamp):
                    newest[entry.name] = (seq, entry)
            rows_ = sorted(newest.values(), key=_first)
            kept = list(map(_second, rows_))
            top = max(last_seq, rows_[-1][0])
            self._clear()
            seqs = list(map(_first, rows_))
            kids_of = self._put(list(map(get_name, kept)), kept, seqs, None, None)
        del batch, names_, seqs
        entries = self._entries
        for name in NODE_LOCAL_NAMES:
            if name in entries:  # an earlier version stored and replicated it
                kids_of.get(parent_of(name), []).remove(name)
                self._put((name,), (None,), (0,), None, (entries[name],))
        self._last_seq = top
        self._pending = weakref.WeakSet()
        self._view.rebuild(kids_of)
        self._show_local()
        # The clock never runs below a stamp this node holds (a restarted node whose
        # wall clock is behind would otherwise stamp its writes below what they replace).
        if entries:
            self.clock.observe(Stamp(max(map(get_hlc, map(get_stamp, entries.values()))), ""))

    def _clear(self) -> None:
        """Forget every stored entry (the view holds references to these dicts: they
        are emptied in place)."""
        self._entries.clear()
        self._children.clear()
        self._seq.clear()
        self._by_seq.clear()
        self._by_seq_sorted = True
        self._seen.clear()
        self._graves.clear()
        self._digest = None

    def settled(self, changes: ChangeSet) -> None:
        """*changes* is durable: it will not be undone, so it is no longer in flight
        (what it wrote may be collected, see :meth:`collect`). Without this call a
        change set counts as in flight for as long as anything holds it."""
        self._pending.discard(changes)

    def undo(self, changes: ChangeSet) -> None:
        """Put back what *changes* replaced (its commit failed). Idempotent."""
        if changes.undone:
            return
        changes.undone = True
        self._pending.discard(changes)
        for i in reversed(range(len(changes.entries))):
            entry = changes.entries[i]
            name = entry.name
            prev, prev_seq, prev_seen = (
                changes.previous[i],
                changes.previous_seqs[i],
                changes.previous_seen[i],
            )
            if self._entries.get(name) is entry:
                self._store(name, prev, prev_seq, prev_seen, entry, None)
                continue
            # A later change set replaced this entry: make it replace ours instead.
            for other in list(self._pending):
                for j, replaced in enumerate(other.previous):
                    if replaced is entry:
                        other.previous[j] = prev
                        other.previous_seqs[j] = prev_seq
                        other.previous_seen[j] = prev_seen

    # ------------------------------------------------------------------ node-local names

    def set_local(self, name: str, uri: str) -> None:
        """Show object *name* (one of :data:`NODE_LOCAL_NAMES`) with *uri* on this node
        only: it is not stored, not replicated and not in the digest; clients cannot
        change it; it is listed whenever its group exists. The name server calls this at
        every start with its own URI."""
        if name not in NODE_LOCAL_NAMES:
            raise ValueError(f"not a node-local name: {name!r}")
        self._local[name] = (str(URI.from_string(uri)), self.clock.now())
        self._local_scope = tuple({local[: local.rfind(_SEP)] for local in self._local})
        self._version += 1
        self._show_local()

    def _show_local(self) -> None:
        """Make the view show each node-local object exactly while its group is visible
        (the view's own updates know nothing of them)."""
        self._overlay_local(self._objects, self._listing)

    def _overlay_local(self, objects: dict[str, str], listing: dict[str, dict[str, int]]) -> None:
        for name, (uri, _since) in self._local.items():
            idx = name.rfind(_SEP)
            siblings = listing.get(name[:idx] if idx > 0 else _ROOT)
            if siblings is None:
                objects.pop(name, None)
            elif objects.get(name) != uri or siblings.get(name[idx + 1 :]) != 1:
                objects[name] = uri
                siblings[name[idx + 1 :]] = 1

    def _check_not_local(self, name: str) -> None:
        if name in self._local:
            raise NamingError("not allowed to change the name server's own entry", name)

    # ------------------------------------------------------------------ operations

    def bootstrap(self) -> ChangeSet:
        """Create what must exist at start and is missing: the root entry, ``:Pyro``
        and the default group (with its parent groups). Names in the way (say an object
        registered as ``:Default``) are left alone, as Pyro 3 did."""
        changes = self._new_changes()
        # A name with no entry at all gets the lowest stamp a real entry can have: it
        # never supersedes what the twin holds for it (a node restarted empty would
        # otherwise wipe the metadata set on these groups, on both nodes). A group the
        # clients deleted (a tombstone) is made again by a real write above it.
        lowest = Stamp(BOOTSTRAP_HLC, self.node_id)
        now = self.clock.now()
        if _ROOT not in self._entries:
            self._apply(self._new_entry(_ROOT, _GROUP, None, None, lowest, now), changes)
        wanted = [":Pyro", *upper_ancestors(self.default_group), self.default_group]
        for group in dict.fromkeys(g for g in wanted if g != _ROOT):
            if self.kind_of(group) is not None:
                continue
            try:
                self._check_parent(group)
            except NamingError:
                continue
            old = self._entries.get(group)
            stamp = lowest if old is None else self.clock.tick_above(old.stamp)
            self._write_live(self._new_entry(group, _GROUP, None, None, stamp, now), changes)
        return changes

    def register(self, name: str, uri: str) -> ChangeSet:
        """Register object *name* with *uri* (stored in canonical form).

        Pyro 3 errors: ``"invalid name"`` (the root), ``"invalid URI"``,
        ``"(parent)group not found"``, ``"parent is no group"``, ``"name already exists"``.
        """
        if name == _ROOT:
            raise NamingError("invalid name", name)
        try:
            canonical = str(URI.from_string(uri)) if isinstance(uri, str) else None
        except URIError:
            canonical = None
        if canonical is None:
            raise NamingError("invalid URI", name)
        self._check_parent(name)
        if self.exists(name) or name in NODE_LOCAL_NAMES:
            raise NamingError("name already exists", name)
        return self._create(name, _OBJECT, canonical)

    def unregister(self, name: str) -> ChangeSet:
        """Remove object *name*. Pyro 3 errors: ``"invalid name"`` (the root),
        ``"(parent)group not found"``, ``"parent is no group"``, ``"name not found"``,
        ``"is a group, not an object"``."""
        if name == _ROOT:
            raise NamingError("invalid name", name)
        self._check_parent(name)
        kind = self.kind_of(name)
        if kind is None:
            raise NamingError("name not found", name)
        if kind is _GROUP:
            raise NamingError("is a group, not an object", name)
        self._check_not_local(name)
        old = self._entries[name]
        changes = self._new_changes()
        self._apply(self._tombstone(old, _OBJECT), changes)
        return changes

    def create_group(self, name: str) -> ChangeSet:
        """Create group *name*. Pyro 3 errors: ``"invalid groupname"`` (the root),
        ``"(parent)group not found"``, ``"parent is no group"``, ``"group already exists"``
        (also when an object has that name, as in Pyro 3)."""
        if name == _ROOT:
            raise NamingError("invalid groupname", name)
        self._check_parent(name)
        if self.exists(name) or name in NODE_LOCAL_NAMES:
            raise NamingError("group already exists", name)
        return self._create(name, _GROUP, None)

    def delete_group(self, name: str) -> ChangeSet:
        """Delete group *name* and everything under it (tombstones for all, children
        first). Pyro 3 errors: ``"not allowed to delete root group"``,
        ``"(parent)group not found"``, ``"parent is no group"``, ``"group not found"``,
        ``"is no group"``."""
        if name == _ROOT:
            raise NamingError("not allowed to delete root group", name)
        self._check_parent(name)
        kind = self.kind_of(name)
        if kind is None:
            raise NamingError("group not found", name)
        if kind is _OBJECT:
            raise NamingError("is no group", name)
        old = self._entries[name]
        doomed = [d for d in self._view.descendants(name) if not self._entries[d].deleted]
        for descendant in doomed:
            self.clock.observe(self._entries[descendant].stamp)
        tomb = self._tombstone(old, _GROUP)
        changes = self._new_changes()
        doomed.sort(key=depth, reverse=True)
        for descendant in doomed:
            self._apply(attrs.evolve(tomb, name=descendant), changes)
        self._apply(tomb, changes)
        return changes

    def set_meta(self, name: str, meta: Any) -> ChangeSet:
        """Set the user metadata of visible group or object *name* (a JSON value of at
        most :data:`MAX_META_BYTES`). Errors: ``"name not found"``, ``"group not found"``
        (an ancestor is an object), ``"invalid metadata"``, ``"metadata too large"``."""
        kind = self._check_visible(name)
        self._check_not_local(name)
        value = _checked_meta(name, meta)
        old = self._entries.get(name)
        changes = self._new_changes()
        stamp = self.clock.tick() if old is None else self.clock.tick_above(old.stamp)
        now = self.clock.now()
        if old is None:  # the root before bootstrap()
            entry = self._new_entry(name, _GROUP, None, value, stamp, now)
        else:
            entry = Entry(
                name=name,
                kind=kind if kind is not None else _GROUP,
                uri=None if old.deleted else old.uri,
                meta=value,
                created=old.created,
                modified=now,
                owner=self.node_id,
                stamp=stamp,
            )
        self._write_live(entry, changes)
        return changes

    # ------------------------------------------------------------------ merge

    def merge(self, entry: Entry, seen: Stamp | None = None) -> bool:
        """Apply a remote *entry* if its stamp beats the local one; True if applied.

        *seen* is the highest stamp from another node in the history of the sender's
        version (:meth:`seen_of` on the sender); with it, a local version the remote
        one was written without knowing about is reported as a ``"version"`` conflict.
        Raises ``ValueError`` for an entry no node could have written.
        """
        return self._merge_one(entry, seen, None)

    def merge_all(self, items: Iterable[Entry | tuple[Entry, Stamp | None]]) -> ChangeSet:
        """Merge many remote entries (or ``(entry, seen)`` pairs) in order; the change
        set holds those applied, for storage and :meth:`undo`.

        A batch of at least :data:`BULK_MERGE_MIN` entries merges with the cyclic
        garbage collector paused and, when the bulk rule holds (see
        :meth:`_bulk_eligible`), through a bulk path: entries go into the dicts first,
        then the view is brought up to date once for the whole batch. The result
        (entries, change set, feed, view, digest, conflicts) is the one of merging the
        entries one by one; ``on_conflict`` is then called after the whole batch is
        applied rather than in the middle of it.
        """
        return self.merge_pairs(
            [(item, None) if isinstance(item, Entry) else item for item in items]
        )

    def merge_pairs(self, pairs: _Merges) -> ChangeSet:
        """:meth:`merge_all` of ``(entry, seen)`` pairs already in a list (what the
        replication link has: it saves a pass over a 2,000-entry batch)."""
        changes = self._new_changes()
        try:
            if len(pairs) < BULK_MERGE_MIN:
                self._merge_each(pairs, changes)
                return changes
            # Merging makes a dozen long-lived objects per entry: as in load, the cyclic
            # collector would rescan the growing namespace again and again, for no gain.
            with collector.paused():
                if self._bulk_eligible(pairs):
                    self._merge_bulk(pairs, changes)
                else:
                    self._merge_each(pairs, changes)
            return changes
        finally:
            self._owners = None

    def _merge_each(self, pairs: _Merges, changes: ChangeSet) -> None:
        """Merge *pairs* one by one; all or nothing: an invalid entry (``ValueError``)
        undoes what the entries before it applied, then the error goes on (a batch
        from the twin is applied whole or not at all)."""
        try:
            for entry, seen in pairs:
                self._merge_one(entry, seen, changes)
        except ValueError:
            self.undo(changes)
            raise

    def _bulk_eligible(self, pairs: _Merges) -> bool:
        """The bulk rule: no tombstone is stored or merged, every entry is valid and no
        name changes kind (neither against its stored entry nor inside the batch).

        Then no merge can hide a visible name or revive a deleted one (both need a
        tombstone or a group turned into an object), so the only conflicts are
        ``"version"`` ones, decided per entry, and the view only ever gains names or
        changes an object's URI: :meth:`View.add_bulk` does that for a whole batch.
        A full snapshot sent to a fresh node (the 100,000-name resync) is such a batch
        unless the twin holds tombstones; any other batch takes the per-entry path.
        """
        if self._graves:
            return False
        entries = self._entries
        batch = list(map(_first, pairs))
        if set(map(type, batch)) == {Entry}:
            batch_names = list(map(get_name, batch))
            if len(set(batch_names)) == len(batch_names) and entries.keys().isdisjoint(batch_names):
                # Every name new and once: no kind can change; only validity is left.
                try:
                    for entry in batch:
                        _check_remote_entry(entry)
                except ValueError:
                    return False
                return not any(map(get_deleted, batch))
        kinds: dict[str, Kind] = {}
        try:
            for entry, _seen in pairs:
                _check_remote_entry(entry)
                if entry.deleted:
                    return False
                name = entry.name
                kind = kinds.get(name)
                if kind is None:
                    current = entries.get(name)
                    if current is not None and current.kind is not entry.kind:
                        return False
                    kinds[name] = entry.kind
                elif kind is not entry.kind:
                    return False
        except ValueError:
            return False  # the per-entry path refuses the batch (and applies none of it)
        return True

    def _merge_bulk(self, pairs: _Merges, changes: ChangeSet) -> None:
        """Merge *pairs* (which satisfy :meth:`_bulk_eligible`) into *changes*."""
        batch_names = list(map(get_name, map(_first, pairs)))
        if len(set(batch_names)) == len(batch_names) and self._entries.keys().isdisjoint(
            batch_names
        ):
            self._merge_fresh(pairs, batch_names, changes)
            return
        entries, seq_of, seen_of = self._entries, self._seq, self._seen
        c_entries, c_seqs, c_prev = changes.entries, changes.seqs, changes.previous
        c_prev_seqs, c_prev_seen, c_seen = (
            changes.previous_seqs,
            changes.previous_seen,
            changes.seen,
        )
        conflicts: list[Conflict] = []
        # Where in the change set each name was last applied: a name applied again is
        # compared with that, and only its last version is stored (at the end).
        applied: dict[str, int] = {}
        start = len(c_entries)
        at = start
        repeated = False
        last_seq = self._last_seq
        highest = pairs[0][0].stamp
        for entry, seen in pairs:
            if entry.stamp.hlc > highest.hlc:
                highest = entry.stamp
            name = entry.name
            mine = applied.get(name)
            old: Entry | None
            if mine is None:
                old = entries.get(name)
                old_seq = 0 if old is None else seq_of[name]
                old_seen = seen_of.get(name)
            else:
                old, old_seq, old_seen = c_entries[mine], c_seqs[mine], c_seen[mine]
                if old_seen is ZERO_STAMP:
                    old_seen = None
            if old is not None:
                stamp, current = entry.stamp, old.stamp
                if not newer(stamp, current):
                    if mine is None and len(self._pending) > 1:
                        self._lost_to(old, changes)
                    continue
                if seen is not None and self._unknown_to(stamp, seen, current, old, entry):
                    conflicts.append(Conflict("version", name, entry, old))
                if mine is not None:
                    repeated = True
            last_seq += 1
            c_entries.append(entry)
            c_seqs.append(last_seq)
            c_prev.append(old)
            c_prev_seqs.append(old_seq)
            c_prev_seen.append(old_seen)
            c_seen.append(ZERO_STAMP if seen is None or seen == ZERO_STAMP else seen)
            applied[name] = at
            at += 1
        self.clock.observe(highest)  # observing each stamp in turn ends the same
        self._last_seq = last_seq
        if applied:
            if repeated:  # each name's last version only, in feed order
                kept = sorted(applied.values())
                news = [c_entries[i] for i in kept]
                seqs = [c_seqs[i] for i in kept]
                seens = [c_seen[i] for i in kept]
            else:
                news, seqs, seens = c_entries[start:], c_seqs[start:], c_seen[start:]
            stored = list(map(get_name, news))
            self._put(stored, news, seqs, seens, list(map(entries.get, stored)))
            self._view.add_bulk(applied)
            self._show_local()
        for conflict in conflicts:
            self._report(conflict)

    def _merge_fresh(self, pairs: _Merges, batch_names: _Names, changes: ChangeSet) -> None:
        """:meth:`_merge_bulk` when every name of the batch is new here and appears once
        (a snapshot sent to a fresh node): every entry is applied, none replaces
        anything and nothing conflicts, so the change set is filled a column at a time
        (in C) instead of an entry at a time. The result is the one of the general
        loop."""
        batch = list(map(_first, pairs))
        seens = [
            ZERO_STAMP if seen is None or seen is ZERO_STAMP or seen == ZERO_STAMP else seen
            for seen in map(_second, pairs)
        ]
        count = len(batch)
        if not count:
            return
        first = self._last_seq + 1
        seqs = range(first, first + count)
        changes.entries.extend(batch)
        changes.seqs.extend(seqs)
        changes.previous.extend(itertools.repeat(None, count))
        changes.previous_seqs.extend(itertools.repeat(0, count))
        changes.previous_seen.extend(map(self._seen.get, batch_names))
        changes.seen.extend(seens)
        self._put(batch_names, batch, seqs, seens, None)
        self.clock.observe(max(map(get_stamp, batch), key=get_hlc))
        self._last_seq = first + count - 1
        self._view.add_bulk(dict.fromkeys(batch_names))
        self._show_local()

    def _merge_one(self, entry: Entry, seen: Stamp | None, changes: ChangeSet | None) -> bool:
        _check_remote_entry(entry)
        self.clock.observe(entry.stamp)
        name = entry.name
        current = self._entries.get(name)
        if current is not None and not newer(entry.stamp, current.stamp):
            if changes is not None and len(self._pending) > 1:
                self._lost_to(current, changes)
            return False
        lost_version = (
            current is not None
            and seen is not None
            and self._unknown_to(entry.stamp, seen, current.stamp, current, entry)
        )
        target = changes if changes is not None else ChangeSet()
        self._apply(entry, target, seen=seen if seen is not None else ZERO_STAMP, cause=entry)
        if lost_version:
            assert current is not None
            self._report(Conflict("version", name, entry, current))
        return True

    # ------------------------------------------------------------------ internals

    def _unknown_to(
        self, stamp: Stamp, seen: Stamp, current: Stamp, old: Entry, new: Entry
    ) -> bool:
        """True if the remote version (*stamp*, knowledge *seen*) that beats the local
        version *current* was written without knowing it, in a way a client can see.

        A version written by the same node as the local one knew it (a node knows its
        own earlier versions), except when that node is this one: then the remote
        version is one this node lost (restored from an older copy) and gets back from
        the twin, written before the local one. Otherwise the writer knew the local
        version exactly when its *seen* is that version's stamp.
        """
        if _same_content(old, new):
            # Nothing a client sees changes, but for one case: a deletion this node
            # made losing to the twin's, written without knowing it. Its client's
            # unregister is now the twin's, whose later versions (which knew only
            # the twin's) may bring the name back with nothing else to report it.
            return (
                old.deleted
                and current.node == self.node_id
                and stamp.node != self.node_id
                and seen != current
            )
        if stamp.node == current.node:
            return stamp.node == self.node_id
        return seen != current

    def _lost_to(self, current: Entry, changes: ChangeSet) -> None:
        """A remote entry merged into *changes* lost to *current*: if a change set still
        in flight wrote *current*, note it in ``changes.lost_to`` (should it be undone,
        the remote entry must come again; see :class:`ChangeSet`)."""
        owners = self._owners
        if owners is None:
            # Built once per merge call (merges run without a checkpoint, so the sets in
            # flight do not change meanwhile); there are few in flight at any time.
            owners = self._owners = {
                id(entry): other
                for other in self._pending
                if other is not changes and not other.undone
                for entry in other.entries
            }
        owner = owners.get(id(current))
        if owner is not None and owner.entries and not any(
            known is owner for known in changes.lost_to
        ):
            changes.lost_to.append(owner)

    def _report(self, conflict: Conflict) -> None:
        self.conflict_count += 1
        if self.on_conflict is not None:
            self.on_conflict(conflict)

    def _new_changes(self) -> ChangeSet:
        changes = ChangeSet()
        self._pending.add(changes)
        return changes

    def _new_entry(
        self, name: str, kind: Kind, uri: str | None, meta: Any, stamp: Stamp, now: float
    ) -> Entry:
        return Entry(name, kind, uri, meta, now, now, self.node_id, stamp)

    def _tombstone(self, old: Entry, kind: Kind) -> Entry:
        stamp = self.clock.tick_above(old.stamp)
        return Entry(
            name=old.name,
            kind=kind,
            uri=None,
            meta=None,
            created=old.created,
            modified=self.clock.now(),
            owner=self.node_id,
            stamp=stamp,
            deleted=True,
        )

    def _create(self, name: str, kind: Kind, uri: str | None) -> ChangeSet:
        """A new live entry for *name* (already validated), as its own change set."""
        changes = self._new_changes()
        old = self._entries.get(name)  # a tombstone, or a hidden entry
        stamp = self.clock.tick() if old is None else self.clock.tick_above(old.stamp)
        self._write_live(self._new_entry(name, kind, uri, None, stamp, self.clock.now()), changes)
        return changes

    def _write_live(self, entry: Entry, changes: ChangeSet) -> None:
        """Apply a local live write; if it replaces a tombstone, first bury the live
        descendants that tombstone hid, so they cannot come back with the name."""
        old = self._entries.get(entry.name)
        if old is not None and old.deleted:
            stale = [
                d
                for d in self._view.descendants(entry.name)
                if not self._entries[d].deleted and newer(old.stamp, self._entries[d].stamp)
            ]
            stale.sort(key=depth, reverse=True)
            for descendant in stale:
                self._apply(attrs.evolve(old, name=descendant), changes)
        self._apply(entry, changes)

    def _apply(
        self,
        entry: Entry,
        changes: ChangeSet,
        *,
        seen: Stamp | None = None,
        cause: Entry | None = None,
    ) -> None:
        name = entry.name
        old = self._entries.get(name)
        if seen is None:  # a local write: what it knows of other nodes
            if old is None:
                seen = ZERO_STAMP
            elif old.stamp.node != self.node_id:
                seen = old.stamp
            else:
                seen = self._seen.get(name, ZERO_STAMP)
        self._last_seq += 1
        seq = self._last_seq
        changes.entries.append(entry)
        changes.seqs.append(seq)
        changes.previous.append(old)
        changes.previous_seqs.append(self._seq.get(name, 0))
        changes.previous_seen.append(self._seen.get(name))
        changes.seen.append(seen)
        self._store(name, entry, seq, seen, old, cause)

    def _put(
        self,
        names_: Sequence[str],
        news: Sequence[Entry | None],
        seqs: Sequence[int],
        seens: Sequence[Stamp | None] | None,
        olds: Sequence[Entry | None] | None,
    ) -> _Kids:
        """Store entries: the one place the stored state changes (the view is the
        caller's to bring up to date, see :meth:`_store`). :meth:`_put_one` is its
        form for one entry.

        Column *i* makes ``news[i]`` (``None``: nothing) the entry of ``names_[i]`` at
        feed position ``seqs[i]``, with knowledge ``seens[i]`` (``None`` or
        ``ZERO_STAMP``: none; *seens* ``None``: none for all), in place of ``olds[i]``,
        the name's current entry (*olds* ``None``: no name has one). Names are distinct
        and *seqs* ascending. The entries, the feed, the knowledge, the child index,
        the tombstone count and the digest are updated a column at a time, so a batch
        of 100,000 costs few Python steps per entry; one entry costs a few C calls.

        Returns the names newly indexed as children, grouped by parent, each list in
        the order given (a load's rebuild walks these).
        """
        entries, seq_of, by_seq, seen_of = self._entries, self._seq, self._by_seq, self._seen
        count = len(names_)
        if seens is not None and not any(map(_is_not_zero, filter(None, seens))):
            seens = None  # no knowledge at all (each None or ZERO_STAMP): C-level below
        digest = self._digest
        if digest is not None and count > 1 and count * 8 >= len(entries):
            # Cheaper to recompute when next asked for than to update per entry.
            digest = self._digest = None
        # Which names get an entry, and which of those had none: few C calls when
        # every name gets one and none or all had one (every path but a load's repair
        # and an undo).
        all_live = all(news)
        live = None if all_live else list(map(operator.truth, news))
        added: Iterable[str]
        if olds is None:
            added = names_ if live is None else compress(names_, live)
        else:
            replaced = list(compress(names_, olds))
            if replaced:
                deque(map(by_seq.__delitem__, map(seq_of.__getitem__, replaced)), maxlen=0)
                if self._graves:  # else none of the old entries is one
                    graves = self._graves
                    deque(map(graves.pop, replaced, repeat(None)), maxlen=0)
                if digest is not None:
                    digest -= sum(map(_live_hash, filter(None, olds)))
            if not replaced and live is None:
                added = names_
            elif len(replaced) == count:
                added = ()
            elif live is None:
                added = compress(names_, map(_is_none, olds))
            else:
                both = zip(names_, olds, live, strict=True)
                added = [name for name, old, new in both if old is None and new]
        kept: Sequence[str] = names_
        stored = cast(Sequence[Entry], news)
        if live is not None:
            for name in compress(names_, map(operator.not_, live)):
                del entries[name], seq_of[name]
                seen_of.pop(name, None)
                if name != _ROOT:
                    self._unlink_child(name)
            kept = list(compress(names_, live))
            stored = [entry for entry in news if entry is not None]
            seqs = list(compress(seqs, live))
            if seens is not None:
                seens = list(compress(seens, live))
        if kept:
            entries.update(zip(kept, stored, strict=True))
            seq_of.update(zip(kept, seqs, strict=True))
            if self._by_seq_sorted and by_seq and seqs[0] < next(reversed(by_seq)):
                self._by_seq_sorted = False
            by_seq.update(zip(seqs, kept, strict=True))
            if seens is None:
                if seen_of:
                    deque(map(seen_of.pop, kept, repeat(None)), maxlen=0)
            else:
                for name, seen in zip(kept, seens, strict=True):
                    if seen is None or seen is ZERO_STAMP or seen == ZERO_STAMP:
                        seen_of.pop(name, None)
                    else:
                        seen_of[name] = seen
            if any(map(get_deleted, stored)):
                self._graves.update(
                    dict.fromkeys(compress(kept, map(get_deleted, stored)))
                )
            if digest is not None:
                digest += sum(map(_live_hash, stored))
        if digest is not None:
            self._digest = digest % DIGEST_MODULUS
        self._version += 1
        return _index_children(self._children, added) if added else {}

    def _put_one(
        self, name: str, new: Entry | None, seq: int, seen: Stamp | None, old: Entry | None
    ) -> None:
        """:meth:`_put` of one column (a client's write, a merged entry, an undo): the
        same steps, without building columns (which would cost a client's write a
        third more). The property tests hold the two forms to the same outcome (bulk
        merges and loads against merging one by one, and ``check_invariants``)."""
        entries, by_seq = self._entries, self._by_seq
        if old is not None:
            del by_seq[self._seq[name]]
            if old.deleted:
                self._graves.pop(name, None)
        digest = self._digest
        if new is None:
            del entries[name], self._seq[name]
            self._seen.pop(name, None)
            if name != _ROOT:
                self._unlink_child(name)
        else:
            entries[name] = new
            self._seq[name] = seq
            if self._by_seq_sorted and by_seq and seq < next(reversed(by_seq)):
                self._by_seq_sorted = False
            by_seq[seq] = name
            if seen is None or seen is ZERO_STAMP or seen == ZERO_STAMP:
                self._seen.pop(name, None)
            else:
                self._seen[name] = seen
            if new.deleted:
                self._graves[name] = None
            if old is None and name != _ROOT:
                parent = parent_of(name)
                kids = self._children.get(parent)
                if kids is None:
                    self._children[parent] = {name}
                else:
                    kids.add(name)
            if digest is not None and not new.deleted:
                digest += entry_hash(new)
        if digest is not None:
            if old is not None and not old.deleted:
                digest -= entry_hash(old)
            self._digest = digest % DIGEST_MODULUS
        self._version += 1

    def _unlink_child(self, name: str) -> None:
        """Take *name* (no longer stored) out of its parent's set of stored children."""
        parent = parent_of(name)
        siblings = self._children[parent]
        siblings.discard(name)
        if not siblings:
            del self._children[parent]

    def _store(
        self,
        name: str,
        new: Entry | None,
        seq: int,
        seen: Stamp | None,
        old: Entry | None,
        cause: Entry | None,
    ) -> None:
        """Make *new* (or nothing) the entry of *name*, then refresh what it affects."""
        self._put_one(name, new, seq, seen, old)
        hidden, revived = self._view.refresh(name, old, new)
        if self._local_scope and name.startswith(self._local_scope):
            self._show_local()
        if cause is not None:
            for lost in hidden:
                self._report(Conflict("hidden", lost, cause, self._entries[lost]))
            for back in revived:
                self._report(Conflict("revived", back, cause, self._entries[back]))

    # -- validation helpers

    def _check_parent(self, name: str) -> None:
        """Raise Pyro 3's parent errors unless the parent of *name* is a visible group."""
        parent = parent_of(name)
        if parent in self._listing:
            return
        for ancestor in upper_ancestors(name):
            kind = self.kind_of(ancestor)
            if kind is _OBJECT:
                raise NamingError("parent is no group", parent)
            if kind is None:
                raise NamingError("(parent)group not found", parent)
        raise AssertionError("unreachable: the parent is a visible group")  # pragma: no cover

    def _check_visible(self, name: str) -> Kind | None:
        """The visible kind of *name*; Pyro 3's getBranch errors if it is not visible."""
        if name == _ROOT:
            return _GROUP
        kind = self.kind_of(name)
        if kind is not None:
            return kind
        raise self._lookup_error(name)

    def _lookup_error(self, name: str) -> NamingError:
        # Pyro 3: a missing part is "name not found"; an object in the middle of the
        # path (no branches to descend into) is "group not found".
        for ancestor in upper_ancestors(name):
            kind = self.kind_of(ancestor)
            if kind is _OBJECT:
                return NamingError("group not found", name)
            if kind is None:
                break
        return NamingError("name not found", name)

    def _resolve_error(self, name: str) -> NamingError:
        if name == _ROOT or name in self._listing:
            return NamingError("attempt to resolve groupname", name)
        return self._lookup_error(name)


def _live_hash(entry: Entry) -> int:
    """An entry's share of the digest: its hash if it is live, 0 for a tombstone."""
    return 0 if entry.deleted else entry_hash(entry)


def _same_content(a: Entry, b: Entry) -> bool:
    """True if choosing between *a* and *b* loses nothing a client could see (two nodes
    creating the same group, say)."""
    return a.deleted == b.deleted and a.kind is b.kind and a.uri == b.uri and a.meta == b.meta


def _copy_json(value: Any) -> Any:
    """A private copy of a JSON value (callers must not mutate what entries hold)."""
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value))
    return value


def _checked_meta(name: str, meta: Any) -> Any:
    try:
        text = json.dumps(meta, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise NamingError("invalid metadata", name) from None
    if len(text) > MAX_META_BYTES or len(text.encode()) > MAX_META_BYTES:
        raise NamingError("metadata too large", name)
    return json.loads(text)


#: Longest node id accepted from a twin (pairns makes 32 hex digits).
MAX_NODE_ID_LENGTH = 256


def _check_remote_entry(entry: Entry) -> None:
    """Refuse entries no pairns node writes (the peer is buggy or hostile): what a
    client write could not have made, checked as strictly as the client path does.
    Raises ``ValueError`` saying what is wrong."""
    if type(entry) is not Entry:
        raise ValueError(f"not an entry: {entry!r}")
    name = entry.name
    if not names.is_absolute_valid(name):
        raise ValueError(f"entry with an invalid name: {name!r}")
    if name == _ROOT and (entry.deleted or entry.kind is not _GROUP):
        raise ValueError("the root can only be a live group")
    if name in NODE_LOCAL_NAMES:
        raise ValueError(f"entry for a name each node keeps for itself: {name!r}")
    kind, uri, meta = entry.kind, entry.uri, entry.meta
    if kind is not _GROUP and kind is not _OBJECT:
        raise ValueError(f"entry of an unknown kind: {name!r}")
    if entry.deleted:
        if uri is not None or meta is not None:
            raise ValueError(f"tombstone with a URI or metadata: {name!r}")
    elif kind is _OBJECT:
        if not is_canonical_uri(uri):
            raise ValueError(f"object entry without a URI, or an invalid one: {name!r}: {uri!r}")
    elif uri is not None:
        raise ValueError(f"group entry with a URI: {name!r}")
    if meta is not None:
        try:
            _checked_meta(name, meta)
        except NamingError as exc:
            raise ValueError(f"entry with {exc.args[0]}: {name!r}") from None
    created, modified = entry.created, entry.modified
    if not (
        type(created) is float
        and type(modified) is float
        and 0.0 <= created < _INF
        and 0.0 <= modified < _INF
    ):
        raise ValueError(f"entry with invalid times: {name!r}: {created!r}, {modified!r}")
    stamp, owner = entry.stamp, entry.owner
    if type(stamp) is not Stamp or type(stamp.hlc) is not int or stamp.hlc <= 0:
        raise ValueError(f"entry with an invalid stamp: {name!r}")
    node = stamp.node
    if (
        type(node) is not str
        or not 0 < len(node) <= MAX_NODE_ID_LENGTH
        or type(owner) is not str
        or not 0 < len(owner) <= MAX_NODE_ID_LENGTH
    ):
        raise ValueError(f"entry with an invalid node id: {name!r}")


def _index_children(children: dict[str, set[str]], added: Iterable[str]) -> dict[str, list[str]]:
    """Add the non-root names *added* to their parents' sets of stored children; return
    them grouped by parent, each list in the order given."""
    kids_of: dict[str, list[str]] = {}
    for name in added:
        idx = name.rfind(_SEP)
        if idx > 0:
            parent = name[:idx]
        elif name != _ROOT:
            parent = _ROOT
        else:
            continue
        kids = kids_of.get(parent)
        if kids is None:
            kids_of[parent] = [name]
        else:
            kids.append(name)
    for parent, kids in kids_of.items():
        siblings = children.get(parent)
        if siblings is None:
            children[parent] = set(kids)
        else:
            siblings.update(kids)
    return kids_of
