"""pairns.replication: the peer link that keeps the two nodes of a pair mirrored.

- :mod:`~pairns.replication.messages` — the peer protocol's messages (hello, batch).
- :mod:`~pairns.replication.state` — the link state machine, positions, backoff.
- :mod:`~pairns.replication.link` — :class:`Replicator`, the Trio adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pairns._lazy import exports

if TYPE_CHECKING:
    from pairns.replication.link import PEER_OBJECT_ID, LinkFailed, PeerEndpoint, Replicator
    from pairns.replication.messages import Batch, Hello, Item, RequestRecord
    from pairns.replication.state import Backoff, LinkEvent, LinkMachine, LinkState, Positions

#: Public name -> the module that defines it. Imported on first use: a single node
#: needs none of the link and its protocol (~40 ms of start-up).
_HOMES = {
    "PEER_OBJECT_ID": "pairns.replication.link",
    "LinkFailed": "pairns.replication.link",
    "PeerEndpoint": "pairns.replication.link",
    "Replicator": "pairns.replication.link",
    "Batch": "pairns.replication.messages",
    "Hello": "pairns.replication.messages",
    "Item": "pairns.replication.messages",
    "RequestRecord": "pairns.replication.messages",
    "Backoff": "pairns.replication.state",
    "LinkEvent": "pairns.replication.state",
    "LinkMachine": "pairns.replication.state",
    "LinkState": "pairns.replication.state",
    "Positions": "pairns.replication.state",
}

__all__ = [
    "PEER_OBJECT_ID",
    "Backoff",
    "Batch",
    "Hello",
    "Item",
    "LinkEvent",
    "LinkFailed",
    "LinkMachine",
    "LinkState",
    "PeerEndpoint",
    "Positions",
    "Replicator",
    "RequestRecord",
]


__getattr__, __dir__ = exports(globals(), _HOMES)
