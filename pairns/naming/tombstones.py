"""Collecting tombstones: the task that drops deletions nothing needs any more.

A deletion stays as a tombstone so that an older copy of the name, still travelling or
held by the twin, cannot bring the name back. Once the node's own rule says nobody can
send such a copy any more, :meth:`Namespace.collect` drops it from memory and
:meth:`Storage.collect` deletes its row (the rule and why it is safe, including
against a twin restored from an older copy of its database: ``docs/namespace-merge.md``,
"Collecting tombstones").

The rule is a feed position, given as a function (*safe_upto*):

* a single node: what is durable (``storage.last_seq``; in memory, everything);
* a node of a pair: that, and no further than ``Pairing.stable_upto``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Final

import trio

from pairns.config import ConfigError
from pairns.errors import StorageError
from pairns.namespace import Namespace, Stamp
from pairns.namespace.stamps import COUNTER_BITS, ZERO_STAMP
from pairns.namespace.state import COLLECT_BATCH
from pairns.storage import Storage

__all__ = [
    "COLLECT_INTERVAL",
    "GRACE_ENV",
    "KV_HORIZON",
    "TOMBSTONE_GRACE",
    "TombstoneCollector",
    "grace_from_env",
    "horizon_from_text",
]

log = logging.getLogger("pairns.tombstones")

#: The storage key of ``Namespace.horizon`` (stored with the deletion of the rows).
KV_HORIZON: Final = "tombstones.horizon"

#: Seconds a tombstone is kept at least, by its stamp (``PAIRNS_TOMBSTONE_GRACE``
#: overrides it). The twin's acknowledgements and history protect against a twin that
#: goes back to an older copy of a node identity this node has met; a copy of an
#: identity it never met (restored after both nodes were wiped in turn) is only safe
#: if it is younger than this, as with Cassandra's ``gc_grace_seconds``.
TOMBSTONE_GRACE: Final = 60.0

#: The environment variable that overrides :data:`TOMBSTONE_GRACE` (seconds, 0 = none).
GRACE_ENV: Final = "PAIRNS_TOMBSTONE_GRACE"


def grace_from_env(paired: bool, environ: Mapping[str, str] | None = None) -> float:
    """The grace period a node keeps tombstones for: ``PAIRNS_TOMBSTONE_GRACE`` if set,
    else :data:`TOMBSTONE_GRACE` in a pair and none for a single node (it has no twin
    that could send an older copy of a name, so it collects a deletion once it is
    durable). A value that is not a number of seconds >= 0 is a :class:`ConfigError`."""
    text = (os.environ if environ is None else environ).get(GRACE_ENV)
    if text is None:
        return TOMBSTONE_GRACE if paired else 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{GRACE_ENV} must be a number of seconds >= 0, not {text!r}")
    return value


#: Seconds between two looks for tombstones to collect (when the last look found none
#: to drop, or fewer than a batch). Tombstones then live about this long after they
#: became collectable: a few thousand at 10,000 deletions a second.
COLLECT_INTERVAL: Final = 0.25


def horizon_to_text(stamp: Stamp) -> str:
    """The stored form of a horizon stamp."""
    return f"{stamp.hlc} {stamp.node}"


def horizon_from_text(text: str | None) -> Stamp:
    """Parse :func:`horizon_to_text`; a missing or damaged value is no horizon."""
    if not text:
        return ZERO_STAMP
    hlc, _, node = text.partition(" ")
    try:
        value = int(hlc)
    except ValueError:
        return ZERO_STAMP
    return Stamp(value, node) if value > 0 and node else ZERO_STAMP


class TombstoneCollector:
    """Drops collectable tombstones now and then, in batches, until cancelled.

    Memory first, then the rows (with the horizon, in one transaction): a node that
    stops in between finds the tombstones again at its next start, which is harmless
    (they are dropped again). A failed deletion (a full disk) is logged and left for
    the next start, for the same reason.
    """

    def __init__(
        self,
        namespace: Namespace,
        storage: Storage,
        *,
        safe_upto: Callable[[], int],
        interval: float = COLLECT_INTERVAL,
        grace: float = TOMBSTONE_GRACE,
    ) -> None:
        self.namespace = namespace
        self.storage = storage
        self.safe_upto = safe_upto
        self.interval = interval
        self.grace = grace

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Collect until cancelled."""
        task_status.started()
        last = -1
        dropped = 0
        while True:
            upto = self.safe_upto()
            # Nothing new can be collectable unless the position moved or the last
            # pass dropped something (a group whose children went is a leaf now).
            # With a grace period, tombstones become old enough as time passes.
            if upto != last or dropped or self.grace > 0:
                last = upto
                dropped = await self.collect_once(upto)
            else:
                dropped = 0
            # Straight on only after a full batch: a pass looks at every tombstone
            # held, and under churn with a grace period nearly every pass finds a few
            # that just came of age (looking again at once ran pass after pass over
            # the ~30,000 tombstones of a minute's churn, ~0.1 s each).
            if dropped >= COLLECT_BATCH:
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(self.interval)

    async def collect_once(self, upto: int) -> int:
        """One batch: how many tombstones it dropped."""
        older_than = None
        if self.grace > 0:
            clock = self.namespace.clock
            older_than = clock.physical() - (int(self.grace * 1000) << COUNTER_BITS)
        dropped = self.namespace.collect(upto, older_than=older_than)
        if not dropped:
            return 0
        try:
            await self.storage.collect(
                dropped, {KV_HORIZON: horizon_to_text(self.namespace.horizon)}
            )
        except StorageError as exc:
            log.warning(
                "cannot delete %d collected tombstones from storage (they come back at "
                "the next start, and go again): %s",
                len(dropped),
                exc,
            )
        return len(dropped)
