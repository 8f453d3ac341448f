"""Getters of :class:`~pairns.namespace.entry.Entry` and
:class:`~pairns.namespace.stamps.Stamp` fields, for column-wise passes over many entries
(``map(get_name, entries)`` runs in C: start-up, resync batches, the snapshot).

Public because the storage and the peer protocol make such passes too: they take the
getters from here rather than each building its own.
"""

from __future__ import annotations

import operator

__all__ = [
    "get_created",
    "get_deleted",
    "get_hlc",
    "get_kind",
    "get_meta",
    "get_modified",
    "get_name",
    "get_node",
    "get_owner",
    "get_stamp",
    "get_uri",
]

get_name = operator.attrgetter("name")
get_kind = operator.attrgetter("kind")
get_uri = operator.attrgetter("uri")
get_meta = operator.attrgetter("meta")
get_created = operator.attrgetter("created")
get_modified = operator.attrgetter("modified")
get_owner = operator.attrgetter("owner")
get_stamp = operator.attrgetter("stamp")
get_deleted = operator.attrgetter("deleted")
#: Of a :class:`~pairns.namespace.stamps.Stamp`.
get_hlc = operator.attrgetter("hlc")
#: Of a :class:`~pairns.namespace.stamps.Stamp`.
get_node = operator.attrgetter("node")
