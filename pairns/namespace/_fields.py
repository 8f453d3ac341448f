"""Getters of :class:`~pairns.namespace.entry.Entry` and
:class:`~pairns.namespace.stamps.Stamp` fields, for column-wise passes over many entries
(``map(get_name, entries)`` runs in C: start-up, resync batches, the snapshot)."""

from __future__ import annotations

import operator

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
