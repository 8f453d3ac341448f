"""Pure namespace state: entries, stamps, the hybrid clock, operations, merge, digest.

Nothing here does IO or reads a clock of its own; time comes from the injected
:class:`HybridClock`. See :mod:`pairns.namespace.state` for the model.
"""

from pairns.namespace.changes import ChangeSet, Conflict
from pairns.namespace.digest import entry_hash
from pairns.namespace.entry import Entry, Kind
from pairns.namespace.stamps import ZERO_STAMP, HybridClock, Stamp
from pairns.namespace.state import MAX_META_BYTES, Namespace

__all__ = [
    "MAX_META_BYTES",
    "ZERO_STAMP",
    "ChangeSet",
    "Conflict",
    "Entry",
    "HybridClock",
    "Kind",
    "Namespace",
    "Stamp",
    "entry_hash",
]
