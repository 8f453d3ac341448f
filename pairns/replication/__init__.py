"""pairns.replication: the peer link that keeps the two nodes of a pair mirrored.

- :mod:`~pairns.replication.messages` — the peer protocol's messages (hello, batch).
- :mod:`~pairns.replication.state` — the link state machine, positions, backoff.
- :mod:`~pairns.replication.requests` — recent client request ids and their results.
- :mod:`~pairns.replication.link` — :class:`Replicator`, the Trio adapter.
"""

from pairns.replication.link import PEER_OBJECT_ID, LinkFailed, PeerEndpoint, Replicator
from pairns.replication.messages import Batch, Hello, Item, RequestRecord
from pairns.replication.requests import RequestTable
from pairns.replication.state import Backoff, LinkEvent, LinkMachine, LinkState, Positions

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
    "RequestTable",
]
