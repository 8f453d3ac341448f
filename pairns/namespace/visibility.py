"""Which names are visible, derived from the stored entries alone.

The rule (also in ``docs/namespace-merge.md``), for the winning entry of each name:

* The root ``":"`` is always a visible group.
* A live entry is *self-visible* when every proper ancestor other than the root has an
  entry, no ancestor's entry is a live object, and every ancestor whose entry is a
  tombstone has a lower stamp than the entry (it was deleted before the entry was
  written).
* A name is visible when it is self-visible, or when it is an ancestor of a
  self-visible name; then it shows as a group (a deleted group *revived* by a newer
  write under it).

It is a pure function of the set of entries, so two replicas with the same entries see
the same namespace. It is written once, as :func:`limit_below` (what a group hands its
children: the highest tombstone stamp on the path, or ``None`` when they are blocked)
and :func:`self_visible`; :class:`View` decides through them in each of its three ways
of computing the result: one change at a time (``refresh``), a bulk merge at a time
(``add_bulk``) and from scratch (``rebuild``). It keeps the result up to date as
entries change, in time proportional to what the change can affect: the name itself,
its ancestors, and - only when the change alters what descendants depend on
(existence, live object, live group, tombstone stamp) - its stored descendants.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from itertools import compress, repeat

import attrs

from pairns import names
from pairns.namespace.entry import Entry, Kind
from pairns.namespace.fields import get_deleted, get_hlc, get_kind, get_stamp, get_uri
from pairns.namespace.stamps import ZERO_STAMP, Stamp

__all__ = [
    "View",
    "base_of",
    "depth",
    "limit_below",
    "newer",
    "parent_of",
    "self_visible",
    "shows_as_object",
    "upper_ancestors",
]

_ROOT = names.ROOT
_SEP = names.SEP
_GROUP = Kind.GROUP
_OBJECT = Kind.OBJECT


def _slicer(start: int) -> Callable[[str], str]:
    """``name -> name[start:]``, applied in C by ``map``."""
    return operator.itemgetter(slice(start, None))


def parent_of(name: str) -> str:
    """The parent of a non-root absolute name (``":"`` for top-level names)."""
    # Absolute names never hold "." at index 0, so rfind is -1 or >= 2.
    idx = name.rfind(_SEP)
    return name[:idx] if idx > 0 else _ROOT


def base_of(name: str, parent: str) -> str:
    """The last part of *name*, given its *parent*."""
    return name[1:] if parent == _ROOT else name[len(parent) + 1 :]


def upper_ancestors(name: str) -> list[str]:
    """Proper ancestors of *name* without the root, top first."""
    result = []
    idx = name.find(_SEP)
    while idx >= 0:
        result.append(name[:idx])
        idx = name.find(_SEP, idx + 1)
    return result


def newer(a: Stamp, b: Stamp) -> bool:
    """``a > b``, without the generic comparison's overhead (hot loops)."""
    return a.hlc > b.hlc or (a.hlc == b.hlc and a.node > b.node)


def depth(name: str) -> int:
    """How many separators *name* holds (sort key: parents before children)."""
    return name.count(_SEP)


def _signature(entry: Entry | None) -> tuple[int, Stamp | None]:
    """What of an entry matters to its descendants' visibility."""
    if entry is None:
        return (0, None)
    if entry.deleted:
        return (1, entry.stamp)
    return (2, None) if entry.kind is _GROUP else (3, None)


# -- the rule, once ---------------------------------------------------------------
# Walking down from the root, each group hands its children a *limit*: the stamp they
# must beat (the highest tombstone on their path), or None when something above blocks
# them (a missing entry or a live object). Every way the view is computed - one name at
# a time (refresh), a batch at a time (add_bulk), from scratch (rebuild) - decides
# with these two functions.


def limit_below(entry: Entry | None, limit: Stamp | None) -> Stamp | None:
    """The limit for the children of a group whose stored *entry* got *limit* from its
    own parent: ``None`` when they are blocked (no entry, a live object, or *limit*
    ``None``), else *limit* raised to the entry's stamp if the entry is a tombstone."""
    if limit is None or entry is None:
        return None
    if entry.deleted:
        stamp = entry.stamp
        return stamp if newer(stamp, limit) else limit
    return None if entry.kind is _OBJECT else limit


def self_visible(entry: Entry | None, limit: Stamp | None) -> bool:
    """Whether a name with stored *entry*, whose parent hands down *limit*, is
    self-visible: a live entry written after every deletion on its path."""
    if entry is None or limit is None or entry.deleted:
        return False
    stamp = entry.stamp  # newer(stamp, limit), inline: every client write asks
    return stamp.hlc > limit.hlc or (stamp.hlc == limit.hlc and stamp.node > limit.node)


def shows_as_object(entry: Entry) -> bool:
    """Whether a self-visible *entry* shows as an object (else as a group)."""
    return entry.kind is _OBJECT and entry.uri is not None


def _shows_as_objects(entries: list[Entry]) -> list[bool]:
    """:func:`shows_as_object` of each of *entries*, in C-level passes."""
    kinds = map(operator.is_, map(get_kind, entries), repeat(_OBJECT))
    uris = map(operator.is_not, map(get_uri, entries), repeat(None))
    return list(map(operator.and_, kinds, uris))


@attrs.define(eq=False)
class View:
    """The visible namespace derived from *entries* (indexed by *children*).

    Both dicts belong to the owner and are read, never written, here. ``objects`` maps
    each visible object to its URI and ``listing`` each visible group to its visible
    children (``basename -> kind code``); both are updated in place, so references to
    them stay valid.
    """

    entries: dict[str, Entry] = attrs.field(repr=False)
    children: dict[str, set[str]] = attrs.field(repr=False)
    objects: dict[str, str] = attrs.field(init=False, repr=False, factory=dict)
    listing: dict[str, dict[str, int]] = attrs.field(
        init=False, repr=False, factory=lambda: {_ROOT: {}}
    )
    _self_ok: set[str] = attrs.field(init=False, repr=False, factory=set)
    _support: dict[str, int] = attrs.field(init=False, repr=False, factory=dict)

    def descendants(self, name: str) -> list[str]:
        """Every stored name below *name* (any order)."""
        result: list[str] = []
        stack = [name]
        children = self.children
        while stack:
            kids = children.get(stack.pop())
            if kids:
                result.extend(kids)
                stack.extend(kids)
        return result

    def refresh(
        self, name: str, old: Entry | None, new: Entry | None
    ) -> tuple[list[str], list[str]]:
        """Bring the view up to date after *name*'s entry went from *old* to *new*.

        Returns ``(hidden, revived)``: names other than *name* whose live entry stopped
        being visible, and deleted names that became visible because of a write below.
        """
        hidden: list[str] = []
        revived: list[str] = []
        if name == _ROOT:
            return hidden, revived
        memo: dict[str, Stamp | None] = {}
        touched = {name}
        self._recheck(name, memo, touched, hidden)
        if _signature(old) != _signature(new):
            for descendant in self.descendants(name):
                self._recheck(descendant, memo, touched, hidden)
        for touched_name in sorted(touched, key=depth):
            if self._update(touched_name):
                revived.append(touched_name)
        return [h for h in hidden if h != name], revived

    def add_bulk(self, changed: Iterable[str]) -> None:
        """Bring the view up to date after the entries of *changed* names were stored,
        when no entry is a tombstone and none of them changed kind (the bulk merge rule,
        see :meth:`pairns.namespace.Namespace.merge_all`).

        Then every limit is ``ZERO_STAMP`` or ``None`` (no tombstone), nothing visible
        can become hidden or revived, and a change can only make names visible (the
        new name, and the stored names below it that waited for it) or change an
        object's URI. Leaves the same ``objects``, ``listing`` and bookkeeping as
        :meth:`refresh` called once per name.
        """
        entries, objects, self_ok = self.entries, self.objects, self._self_ok
        children = self.children
        # Objects have no visible children, and whether one shows depends only on the
        # groups above it: they are done after every group, per parent and a column
        # at a time (most of a snapshot), with the same outcome as in depth order.
        names_ = [name for name in changed if name != _ROOT]
        # A name already self-visible stays so (the bulk rule) and keeps its kind: an
        # object shown only takes its new URI (most of a batch of updates).
        shown = list(map(self_ok.__contains__, names_))
        if any(shown):
            known = list(compress(names_, shown))
            known = list(compress(known, map(objects.__contains__, known)))
            objects.update(zip(known, map(get_uri, map(entries.__getitem__, known)), strict=True))
            names_ = list(compress(names_, map(operator.not_, shown)))
        got = list(map(entries.__getitem__, names_))
        as_object = _shows_as_objects(got)
        groups = list(compress(names_, map(operator.not_, as_object)))
        chains: dict[str, list[str]] = {}  # a group and its ancestors but the root
        for name in sorted(groups, key=depth):
            if name in self_ok:
                continue
            parent = parent_of(name)
            if not self_visible(entries[name], self._bulk_limit(parent)):
                continue
            # *name* and every stored name below it that waited for it appear: the
            # groups one by one, the objects below each a column at a time.
            stack = [(parent, name)]
            while stack:
                above, below = stack.pop()
                entry = entries[below]
                self._show(below, entry, above, chains)
                below_limit = limit_below(entry, ZERO_STAMP)
                if below_limit is None:
                    continue
                kids = [kid for kid in children.get(below, ()) if kid not in self_ok]
                kid_entries = list(map(entries.__getitem__, kids))
                as_objects = _shows_as_objects(kid_entries)
                self._show_objects(
                    below,
                    list(compress(kids, as_objects)),
                    list(compress(kid_entries, as_objects)),
                    below_limit,
                    chains,
                )
                for kid in compress(kids, map(operator.not_, as_objects)):
                    if self_visible(entries[kid], below_limit):
                        stack.append((below, kid))
        # Objects the walks above showed are done.
        leaf_names = list(compress(names_, as_object))
        leaf_entries = list(compress(got, as_object))
        fresh = list(map(operator.not_, map(self_ok.__contains__, leaf_names)))
        if not all(fresh):
            leaf_names = list(compress(leaf_names, fresh))
            leaf_entries = list(compress(leaf_entries, fresh))
        leaves_of: dict[str, tuple[list[str], list[Entry]]] = {}
        for name, entry in zip(leaf_names, leaf_entries, strict=True):
            idx = name.rfind(_SEP)
            parent = name[:idx] if idx > 0 else _ROOT
            leaves = leaves_of.get(parent)
            if leaves is None:
                leaves_of[parent] = ([name], [entry])
            else:
                leaves[0].append(name)
                leaves[1].append(entry)
        for parent, (kids, kid_entries) in leaves_of.items():
            limit = self._bulk_limit(parent)
            if limit is not None:  # else blocked: none of them shows (nor did before)
                self._show_objects(parent, kids, kid_entries, limit, chains)

    def _show_objects(
        self,
        parent: str,
        kids: list[str],
        kid_entries: list[Entry],
        limit: Stamp,
        chains: dict[str, list[str]],
    ) -> None:
        """Show the self-visible ones of objects *kids* (not shown yet; stored entries
        *kid_entries*) under *parent*, a group shown that hands down *limit* (bulk
        paths, a column at a time; *chains* caches ancestor lists)."""
        if not kids:
            return
        if not any(map(get_deleted, kid_entries)) and min(
            map(get_hlc, map(get_stamp, kid_entries))
        ) > (limit.hlc):
            visible_kids, visible = kids, kid_entries  # self_visible() for all at once
        else:
            ok = [self_visible(entry, limit) for entry in kid_entries]
            visible_kids = list(compress(kids, ok))
            visible = list(compress(kid_entries, ok))
        if visible_kids:
            self.objects.update(zip(visible_kids, map(get_uri, visible), strict=True))
            self._self_ok.update(visible_kids)
            self._count_support(parent, len(visible_kids), chains)
            cut = 1 if parent == _ROOT else len(parent) + 1
            self.listing[parent].update(zip(map(_slicer(cut), visible_kids), repeat(1)))

    def _count_support(self, parent: str, count: int, chains: dict[str, list[str]]) -> None:
        """Count *count* more self-visible names below *parent* and each of its
        ancestors but the root (bulk paths; *chains* caches ancestor lists)."""
        chain = chains.get(parent)
        if chain is None:
            chain = [*upper_ancestors(parent), parent] if parent != _ROOT else []
            chains[parent] = chain
        support = self._support
        for ancestor in chain:
            support[ancestor] = support.get(ancestor, 0) + count

    def _bulk_limit(self, group: str) -> Stamp | None:
        """The limit *group* hands its children while no tombstone is stored (then a
        self-visible group's limit is ``ZERO_STAMP`` and any other name blocks)."""
        if group == _ROOT:
            return ZERO_STAMP
        return limit_below(self.entries[group], ZERO_STAMP) if group in self._self_ok else None

    def _show(self, name: str, entry: Entry, parent: str, chains: dict[str, list[str]]) -> None:
        """Record *name* (not yet shown, its *parent* shown as a group) as self-visible
        and show it as its *entry* says (bulk paths; *chains* caches ancestor lists)."""
        self._self_ok.add(name)
        self._count_support(parent, 1, chains)
        base = base_of(name, parent)
        if shows_as_object(entry):
            self.objects[name] = entry.uri  # type: ignore[assignment]  # shows_as_object
            self.listing[parent][base] = 1
        else:
            self.listing[name] = {}
            self.listing[parent][base] = 0

    def rebuild(self, kids_of: dict[str, list[str]]) -> None:
        """Compute the whole view from scratch (after a bulk load).

        *kids_of* holds the same index as ``children`` with lists in the order the
        entries were made (which keeps memory access sequential at start-up).
        """
        # The rule (limit_below, self_visible) worked out top-down from the root: a
        # group's limit is found once for all its children; the children of a group
        # that all beat it, none deleted - nearly every group - need no step each, and
        # its objects are shown with C-level passes.
        entries = self.entries
        objects = self.objects
        objects.clear()
        self_ok: set[str] = set()
        kid_lists: dict[str, dict[str, int]] = {}  # shown children of each group walked
        direct: dict[str, int] = {}  # self-visible children of each group walked
        walked: list[str] = []  # each group after its parent
        shown_groups: list[str] = []  # self-visible names shown as groups
        stack: list[tuple[str, Stamp]] = [(_ROOT, ZERO_STAMP)]
        while stack:
            group, limit = stack.pop()
            kids = kids_of.get(group)
            if not kids:
                continue
            walked.append(group)
            cut = 1 if group == _ROOT else len(group) + 1
            shown = kid_lists.setdefault(group, {})
            got = list(map(entries.__getitem__, kids))
            if not any(map(get_deleted, got)) and min(map(get_hlc, map(get_stamp, got))) > (
                limit.hlc
            ):
                # self_visible() for every child at once: all live, all above the limit.
                visible_kids, visible = kids, got
            else:
                visible_kids, visible = [], []
                for kid, entry in zip(kids, got, strict=True):
                    if self_visible(entry, limit):
                        visible_kids.append(kid)  # walked below if shown as a group
                        visible.append(entry)
                    elif kid in kids_of:
                        # Not visible itself; a live group or a tombstone may still let
                        # newer names through.
                        below = limit_below(entry, limit)
                        if below is not None:
                            stack.append((kid, below))
            self_ok.update(visible_kids)
            direct[group] = len(visible_kids)
            uris = list(map(get_uri, visible))
            kinds = list(map(get_kind, visible))
            if _GROUP in kinds or None in uris:
                # Shown as groups: groups (walked in turn) and objects without a URI.
                is_object = list(map(shows_as_object, visible))
                for kid, entry, shown_as_object in zip(
                    visible_kids, visible, is_object, strict=True
                ):
                    if not shown_as_object:
                        shown[kid[cut:]] = 0
                        shown_groups.append(kid)
                        if kid in kids_of:
                            below = limit_below(entry, limit)
                            if below is not None:
                                stack.append((kid, below))
                visible_kids = list(compress(visible_kids, is_object))
                uris = list(compress(uris, is_object))
            objects.update(zip(visible_kids, uris, strict=True))
            shown.update(zip(map(_slicer(cut), visible_kids), repeat(1)))
        # support: how many self-visible names each group but the root has below it,
        # summed from the leaves up (walked lists descendants after their ancestors).
        support: dict[str, int] = {}
        for group in reversed(walked):
            total = direct[group]
            if group == _ROOT or not total:
                continue
            support[group] = total
            idx = group.rfind(_SEP)
            direct[group[:idx] if idx > 0 else _ROOT] += total
        # Each visible group's listing is its dict in kid_lists (made here if it has
        # no visible child yet: a revived group below may add one).
        listing = self.listing
        listing.clear()
        listing[_ROOT] = kid_lists.setdefault(_ROOT, {})
        for name in shown_groups:
            listing[name] = kid_lists.setdefault(name, {})
        for name in support:
            if name not in self_ok:
                # A deleted group revived by a newer name below it: shown as a group.
                listing[name] = kid_lists.setdefault(name, {})
                idx = name.rfind(_SEP)
                parent = name[:idx] if idx > 0 else _ROOT
                kid_lists.setdefault(parent, {})[name[idx + 1 :] if idx > 0 else name[1:]] = 0
        self._self_ok = self_ok
        self._support = support

    def check(self, overlay: Callable[[dict[str, str], dict[str, dict[str, int]]], None]) -> None:
        """Raise ``AssertionError`` unless the view, as kept up to date, is what
        :meth:`rebuild` computes from the same entries (*overlay* then adds to the
        rebuilt ``objects`` and ``listing`` what the owner shows beside the rule)."""
        fresh = View(self.entries, self.children)
        fresh.rebuild({group: sorted(kids) for group, kids in self.children.items()})
        overlay(fresh.objects, fresh.listing)
        for what, kept, rebuilt in (
            ("objects", self.objects, fresh.objects),
            ("listing", self.listing, fresh.listing),
            ("self-visible names", self._self_ok, fresh._self_ok),
            ("support counts", self._support, fresh._support),
        ):
            if kept != rebuilt:
                raise AssertionError(f"the view's {what} differ from a rebuild")

    def _limit(self, group: str, memo: dict[str, Stamp | None]) -> Stamp | None:
        """For children of *group*: ``None`` if something above blocks them, else the
        highest tombstone stamp on the path (``ZERO_STAMP`` if none)."""
        if group == _ROOT:
            return ZERO_STAMP
        if group in memo:
            return memo[group]
        result = limit_below(self.entries.get(group), self._limit(parent_of(group), memo))
        memo[group] = result
        return result

    def _recheck(
        self, name: str, memo: dict[str, Stamp | None], touched: set[str], hidden: list[str]
    ) -> None:
        entry = self.entries.get(name)
        # (A tombstone is never self-visible: its limit is not worth looking up.)
        ok = (
            entry is not None
            and not entry.deleted
            and self_visible(entry, self._limit(parent_of(name), memo))
        )
        if ok == (name in self._self_ok):
            return
        touched.add(name)
        support = self._support
        if ok:
            self._self_ok.add(name)
            for ancestor in upper_ancestors(name):
                count = support.get(ancestor, 0) + 1
                support[ancestor] = count
                if count == 1:
                    touched.add(ancestor)
        else:
            self._self_ok.discard(name)
            hidden.append(name)
            for ancestor in upper_ancestors(name):
                count = support[ancestor] - 1
                if count:
                    support[ancestor] = count
                else:
                    del support[ancestor]
                    touched.add(ancestor)

    def _update(self, name: str) -> bool:
        """Make ``objects``/``listing`` show *name* as the rule says; True if a deleted
        name just became visible (revived). Parents must be updated before children."""
        entry = self.entries.get(name)
        new_kind: Kind | None = None
        new_uri: str | None = None
        if name in self._self_ok:
            assert entry is not None
            if shows_as_object(entry):
                new_kind, new_uri = _OBJECT, entry.uri
            else:
                new_kind = _GROUP
        elif name in self._support:
            new_kind = _GROUP
        old_uri = self.objects.get(name)
        old_kind = _OBJECT if old_uri is not None else (_GROUP if name in self.listing else None)
        if old_kind is new_kind and old_uri == new_uri:
            return False
        parent = parent_of(name)
        base = base_of(name, parent)
        if old_kind is _OBJECT:
            del self.objects[name]
        elif old_kind is _GROUP:
            del self.listing[name]
        if new_kind is None:
            siblings = self.listing.get(parent)
            if siblings is not None:
                siblings.pop(base, None)
            return False
        if new_kind is _OBJECT:
            assert new_uri is not None
            self.objects[name] = new_uri
        else:
            self.listing[name] = {}
        self.listing[parent][base] = int(new_kind)
        return old_kind is None and entry is not None and entry.deleted
