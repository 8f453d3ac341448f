"""What the link makes durable: merged batches (in order) and the link's positions.

* :class:`MergeCommitter` - in persistent mode, commits what the links merged, in merge
  order, before their ``applied`` (what the twin is told this node holds) moves past
  it; undoes it all if a commit fails.
* :class:`StoredPositions` - the twin's identity and the positions both ways, kept in
  the node's metadata (``Storage.set_kv``) so a restart resyncs incrementally.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from pairns.errors import StorageError
from pairns.namespace import ChangeSet, Namespace
from pairns.naming.requests import RequestRecord
from pairns.replication.feed_history import FeedHistory
from pairns.replication.session import Link
from pairns.storage import Storage

__all__ = [
    "KV_ACKED",
    "KV_APPLIED",
    "KV_FULL_OWED",
    "KV_TWIN_ID",
    "KV_TWIN_INCARNATION",
    "KV_TWIN_KNOWN",
    "MAX_KNOWN_TWINS",
    "MergeCommitter",
    "StoredPositions",
]

log = logging.getLogger("pairns.replication")

#: Keys of the durable node metadata (``Storage.set_kv``).
KV_TWIN_ID: Final = "twin.node_id"
KV_APPLIED: Final = "twin.applied"
KV_ACKED: Final = "twin.acked"
#: The twin's incarnation (run) that ``twin.applied`` was last heard from.
KV_TWIN_INCARNATION: Final = "twin.incarnation"
#: The feed position up to which the twin is owed everything, its own changes included
#: (a full resync that has not been acknowledged yet; "0": nothing owed).
KV_FULL_OWED: Final = "twin.full_owed"
#: Per twin node id (the current one and earlier ones: a twin wiped, then restored
#: from a copy, comes back with an old id): its feed history as its last hello told
#: it, and up to where in it this node applied its feed (JSON; see ``Pairing``).
KV_TWIN_KNOWN: Final = "twin.known"
#: Twin node ids remembered in :data:`KV_TWIN_KNOWN` (the latest), and runs per id.
MAX_KNOWN_TWINS: Final = 16
MAX_KNOWN_RUNS: Final = 256


class MergeCommitter:
    """Makes merged batches durable in merge order, for every connection.

    In memory (``durable=False``) a merged batch is as durable as it gets at once. In
    persistent mode, batches wait for :meth:`run` (one for all connections): a batch
    merged on a connection that ended since is still made durable (its entries stay,
    and the twin's resend finds them known). *on_durable* is called when some link's
    ``applied`` moved (the sender then has a new ack to tell).
    """

    def __init__(
        self,
        namespace: Namespace,
        storage: Storage,
        *,
        durable: bool,
        on_durable: Callable[[], None],
    ) -> None:
        self.namespace = namespace
        self.storage = storage
        self.durable = durable
        self._on_durable = on_durable
        # Merged batches not durable yet, in merge order, from any connection: waiting
        # (_merged) or being written (_committing). They outlive the connection that
        # merged them: dropping them when a link ends would make reads on this node go
        # back.
        self._merged: list[tuple[Link, int, ChangeSet]] = []
        self._committing: list[tuple[Link, int, ChangeSet]] = []
        self._merged_event = trio.Event()
        # ``(request id, applied at)`` learnt with the batches in _merged.
        self._learnt: list[tuple[str, float]] = []

    def merged(
        self,
        link: Link,
        upto: int,
        changes: ChangeSet,
        learnt: Sequence[RequestRecord] = (),
    ) -> None:
        """*link* merged *changes* from the twin's batch up to *upto*: durable (and
        acknowledged) in order, behind any batch still being stored, also one an
        earlier connection merged (this one may bring it again: its entries are then
        known here, but not yet on disk).

        *learnt*, the request records of the twin's writes that came with the batch,
        are stored in the same transaction: a retry that reaches this node after it
        restarted is then still recognised ("exactly once" across a failover and a
        restart).
        """
        if self.durable and (changes.entries or changes.lost_to or learnt or self.pending()):
            if learnt:
                now = time.time()
                self._learnt.extend((r.request_id, now - r.age) for r in learnt)
            self._merged.append((link, upto, changes))
            self._merged_event.set()
        else:
            if not self.durable:
                self.namespace.settled(changes)
            if link.positions.on_durable(upto):
                self._on_durable()

    def pending(self) -> bool:
        """True while some merged batch is not durable yet."""
        return bool(self._merged or self._committing)

    async def run(self) -> None:
        """Commit merged batches (persistent mode), then advance their links' ``applied``.

        If a commit fails, every merged change that is not durable is undone, newest
        first - what the commit held and what was merged while it ran - and the links
        that merged them fail: memory then holds nothing that the disk and ``applied``
        do not, and the twin's resend after the reconnection merges it again.
        """
        while True:
            if not self._merged:
                self._merged_event = trio.Event()
                await self._merged_event.wait()
                continue
            batch, self._merged = self._merged, []
            learnt, self._learnt = self._learnt, []
            self._committing = batch
            rows: list[Any] = []
            for _, _, changes in batch:
                rows.extend(changes.rows)
            try:
                if rows or learnt:
                    await self.storage.commit(rows, learnt=learnt)
                else:
                    await self.storage.flush()
            except StorageError as exc:
                self._undo(f"cannot store what the twin sent: {exc}")
                continue
            self._committing = []
            for _, _, changes in batch:
                self.namespace.settled(changes)  # durable: collectable (Namespace.collect)
            # Commits are written in the order they were asked for: every write that a
            # merged entry lost to has settled by now. If one was undone, that entry is
            # missing here: the link does not acknowledge it, and the twin sends it again.
            for link, upto, changes in batch:
                if link.closed:
                    continue
                if any(other.undone for other in changes.lost_to):
                    link.positions.received = link.positions.applied
                    link.fail("a local write that the twin's change lost to was undone")
                elif link.positions.on_durable(upto):
                    self._on_durable()

    def _undo(self, reason: str) -> None:
        undone, self._committing, self._merged = self._committing + self._merged, [], []
        self._learnt = []  # the twin sends them again with its changes
        for _, _, changes in reversed(undone):
            self.namespace.undo(changes)
        for link in dict.fromkeys(link for link, _, _ in undone):
            link.positions.received = link.positions.applied
            link.fail(reason)
        log.warning("%s; the twin will send it again", reason)


@attrs.define(eq=False)
class StoredPositions:
    """The link's positions as last stored (or to be stored) in the node's metadata.

    * ``twin_id``, ``twin_incarnation`` - the twin last linked with, and its run.
    * ``applied`` - the highest seq of the twin's feed durably applied here.
    * ``acked`` - the highest seq of this node's feed the twin acknowledged.
    * ``full_owed`` - a full resync not acknowledged yet: up to where the twin is owed
      everything (0: nothing owed).
    * ``known`` - per twin node id: its feed history as last heard, and up to where in
      it this node applied its feed (never lowered by a full resync, whose ``applied``
      starts again from 0): what tells a stale entry of a restored twin from a new one
      (see ``Pairing._seen_before``).
    """

    twin_id: str = ""
    applied: int = 0
    acked: int = 0
    twin_incarnation: str = ""
    full_owed: int = 0
    known: dict[str, tuple[FeedHistory, dict[str, int]]] = attrs.field(factory=dict)
    _persisted: tuple[str, int, int, str, int, str] | None = attrs.field(
        default=None, init=False
    )

    def __attrs_post_init__(self) -> None:
        self._persisted = self._state()

    @classmethod
    def from_kv(cls, kv: Mapping[str, str]) -> StoredPositions:
        """The positions a node stored (unreadable numbers count as 0)."""
        return cls(
            twin_id=kv.get(KV_TWIN_ID, ""),
            applied=_int_or_zero(kv.get(KV_APPLIED)),
            acked=_int_or_zero(kv.get(KV_ACKED)),
            twin_incarnation=kv.get(KV_TWIN_INCARNATION, ""),
            full_owed=_int_or_zero(kv.get(KV_FULL_OWED)),
            known=_known_from_text(kv.get(KV_TWIN_KNOWN)),
        )

    def seen_before(self, node_id: str, history: FeedHistory) -> int:
        """Twin *node_id* now has *history*: note it, and return up to where this node
        had applied its feed as it is now (0 for a node never heard of).

        The claim ``applied`` on the current twin belongs to the history heard before:
        it is credited there first, then cut to what the new history shares (a claim
        past a fork names other changes now).
        """
        seen = self._credited(node_id, self.applied)
        self.known.pop(node_id, None)
        self.known[node_id] = (history, seen)
        while len(self.known) > MAX_KNOWN_TWINS:
            del self.known[next(iter(self.known))]
        while len(seen) > MAX_KNOWN_RUNS:
            del seen[next(iter(seen))]
        known = history.known_prefix(seen)
        if node_id == self.twin_id:
            self.applied = min(self.applied, known)
        return known

    def claim_forked(self, node_id: str, history: FeedHistory, unstored: int = 0) -> bool:
        """True if the claim ``applied`` on twin *node_id*, which now has *history*,
        reaches past where that history forks from what was applied here: the twin
        went back to an older copy of its feed and lost changes it had sent here.
        :meth:`seen_before` would cut the claim; the twin must then get those changes
        back, which only a full resync sends (the echo filter holds back what the twin
        sent, but for what it sent on the current connection). *unstored* is a claim
        a link that has not ended yet holds; the higher one counts. Changes nothing."""
        claim = max(self.applied, unstored)
        if node_id != self.twin_id or claim <= 0:
            return False
        return history.known_prefix(self._credited(node_id, claim)) < claim

    def _credited(self, node_id: str, claim: int) -> dict[str, int]:
        """A copy of what was seen of twin *node_id*'s runs, with *claim* (a position
        of its feed as last heard) credited if it is the current twin."""
        old, seen = self.known.get(node_id, (FeedHistory(), {}))
        seen = dict(seen)
        if node_id == self.twin_id:
            old.credit(seen, claim)
        return seen

    @property
    def persisted_applied(self) -> int:
        """``applied`` as last stored (0 before the first store)."""
        return self._persisted[1] if self._persisted is not None else 0

    def _state(self) -> tuple[str, int, int, str, int, str]:
        return (
            self.twin_id,
            self.applied,
            self.acked,
            self.twin_incarnation,
            self.full_owed,
            _known_to_text(self.known),
        )

    async def persist(self, storage: Storage, *, applied: int, acked: int) -> None:
        """Take *applied* and *acked* (a link's positions) and store what changed since
        the last store; a storage error is logged (the next store tries again)."""
        self.applied = max(0, applied)
        self.acked = max(0, acked)
        if self.twin_id in self.known:
            history, seen = self.known[self.twin_id]
            history.credit(seen, self.applied)
        state = self._state()
        if state == self._persisted:
            return
        failed: list[StorageError] = []

        async def put(key: str, value: str) -> None:
            try:
                await storage.set_kv(key, value)
            except StorageError as exc:
                failed.append(exc)

        # Submitted together, they ride in one transaction (one sync, not five).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(put, KV_TWIN_ID, state[0])
            nursery.start_soon(put, KV_APPLIED, str(state[1]))
            nursery.start_soon(put, KV_ACKED, str(state[2]))
            nursery.start_soon(put, KV_TWIN_INCARNATION, state[3])
            nursery.start_soon(put, KV_FULL_OWED, str(state[4]))
            nursery.start_soon(put, KV_TWIN_KNOWN, state[5])
        if failed:
            log.warning("cannot store the twin's positions: %s", failed[0])
            return
        self._persisted = state


def _known_to_text(known: dict[str, tuple[FeedHistory, dict[str, int]]]) -> str:
    return json.dumps(
        {node: [[list(p) for p in h.incarnations], seen] for node, (h, seen) in known.items()},
        separators=(",", ":"),
    )


def _known_from_text(text: str | None) -> dict[str, tuple[FeedHistory, dict[str, int]]]:
    """Parse :func:`_known_to_text`; a damaged value knows nothing (no stale entry is
    then recognised: the safe side for losing nothing)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
        return {
            str(node): (
                FeedHistory(tuple((str(i), int(f)) for i, f in runs)),
                {str(inc): int(pos) for inc, pos in seen.items()},
            )
            for node, (runs, seen) in value.items()
        }
    except (ValueError, TypeError, AttributeError):
        return {}


def _int_or_zero(text: str | None) -> int:
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        return 0
