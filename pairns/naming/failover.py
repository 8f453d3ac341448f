"""Where a name server call goes in a pair, and when it moves to the twin (no IO here).

Both name server proxies (:mod:`pairns.naming.proxy`) follow one :class:`Failover`
policy and only do the IO it asks for:

- A proxy knows its *preferred* node (the one it was made for) and, once that node
  told it (``twin()``), the twin. Reads and writes go to the *current* node, the
  preferred one until it fails.
- Each attempt of a call is bounded by the failover timeout (``PYRO_NS_FAILOVER_TIMEOUT``,
  default 1 s). When an attempt fails with a refused, reset or closed connection, or
  exceeds that timeout, the call moves to the other node (:meth:`CallPlan.next`):
  reads are retried, writes are sent again with the same request id (the pair then
  answers a write that was applied already with its first result, without applying it
  twice). The call fails only when both nodes failed in one round without either
  being slow (both refused, say), or when the overall call timeout has passed; its
  error names both addresses and what each did (:meth:`CallPlan.error`). After a round
  in which a node was only slow, the attempts get twice as long (a call that really
  takes longer than the failover timeout, such as a large ``dump`` or an ``--ack twin``
  write whose twin is away, still completes).
- A call the twin answered (with its result, or with an error such as ``name not
  found``: either way it serves) makes it the current node. Between calls (never
  in the middle of one), a proxy that failed over asks its preferred node whether it is
  healthy again (:meth:`Failover.probe_due`: a ``status()`` that says ``paired``, so the
  node has caught up with what was written on the twin meanwhile) and goes back to it;
  the probes back off while it is not.
- Calls about a node (``Kind.NODE``: ``status``, ``twin``, ``shutdown``, ``ping``...)
  go to the preferred node only and never move.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import attrs

from pairns.errors import CallTimeoutError, ConnectionClosedError

__all__ = [
    "DEFAULT_FAILOVER_TIMEOUT",
    "PROBE_BACKOFF_MAX",
    "PROBE_BACKOFF_START",
    "Address",
    "Attempt",
    "CallPlan",
    "Failover",
    "healthy_status",
]

#: Seconds an attempt may take on one node before the call moves to the twin.
DEFAULT_FAILOVER_TIMEOUT: Final = 1.0

#: Seconds after a failover before the preferred node is first asked whether it is
#: healthy again, doubling while it is not, up to :data:`PROBE_BACKOFF_MAX`.
PROBE_BACKOFF_START: Final = 0.5
PROBE_BACKOFF_MAX: Final = 5.0


class Address(NamedTuple):
    """A node's ``(host, port)``."""

    host: str
    port: int

    @property
    def where(self) -> str:
        """``host:port`` for messages (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Attempt(NamedTuple):
    """One try of a call: on node *node* (0: preferred, 1: twin), within *timeout*
    seconds (None: no bound)."""

    node: int
    timeout: float | None


@attrs.define(eq=False)
class CallPlan:
    """The attempts of one call, decided one at a time from what the earlier did."""

    failover: Failover
    method: str
    deadline: float
    #: The node of the next attempt.
    _index: int
    #: The bound of an attempt (doubles after a round in which a node was only slow).
    _attempt_timeout: float
    #: What each node did last in this call, by index.
    _failures: dict[int, tuple[str, bool]] = attrs.field(factory=dict)
    #: Nodes that failed in the current round, and whether one of them was slow.
    _round: set[int] = attrs.field(factory=set)
    _round_slow: bool = False
    _tried: int = 0

    def next(self, now: float) -> Attempt | None:
        """The next attempt, or None: give up (:meth:`error` says why)."""
        remaining = self.deadline - now
        if remaining <= 0:
            return None
        if self._tried and len(self._round) == len(self.failover.nodes):
            if not self._round_slow:
                return None  # every node refused or dropped the call: unreachable
            self._round = set()
            self._round_slow = False
            self._attempt_timeout *= 2
        self._tried += 1
        timeout = min(self._attempt_timeout, remaining)
        return Attempt(self._index, None if math.isinf(timeout) else timeout)

    def failed(self, attempt: Attempt, reason: str, *, slow: bool) -> None:
        """*attempt* failed: its connection was refused, reset or closed (*slow* False)
        or it exceeded its timeout (*slow* True). The next attempt goes to the other
        node."""
        self._failures[attempt.node] = (reason, slow)
        self._round.add(attempt.node)
        self._round_slow = self._round_slow or slow
        self._index = (attempt.node + 1) % len(self.failover.nodes)

    def error(self) -> ConnectionClosedError:
        """The error of a call that gave up: both addresses, and what each did last.

        A :class:`~pairns.errors.CallTimeoutError` when every node was only slow.
        """
        nodes = self.failover.nodes
        parts = []
        for index, node in enumerate(nodes):
            reason, _slow = self._failures.get(index, ("not tried (the call timed out)", True))
            parts.append(f"{node.where}: {reason}")
        if len(nodes) > 1:
            message = f"{self.method}(): no node of the pair answered ({'; '.join(parts)})"
        else:
            message = f"{self.method}(): {parts[0]}"
        if all(self._failures.get(i, ("", True))[1] for i in range(len(nodes))):
            return CallTimeoutError(message)
        return ConnectionClosedError(message)


@attrs.define(eq=False)
class Failover:
    """The failover state of one name server proxy: its nodes, the current one, and
    when to ask the preferred node whether it is back.

    *call_timeout* bounds a whole call (None: unbounded), *failover_timeout* one
    attempt on one node. Times are whatever clock the caller passes as *now*
    (``time.monotonic()``, ``trio.current_time()``).
    """

    preferred: Address
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    call_timeout: float | None = None
    #: The twin, once known (from the preferred node's ``twin()``, or given).
    twin: Address | None = None
    #: True once the twin was asked for (or given): it is not asked again.
    twin_known: bool = False
    #: 0: the preferred node serves reads and writes; 1: the twin does.
    current: int = 0
    #: The bound of a call's first attempt: the failover timeout, or the call timeout
    #: if that is less (worked out once: it is read on every call).
    first_timeout: float = attrs.field(init=False)
    _next_probe: float = 0.0
    _probe_backoff: float = PROBE_BACKOFF_START
    _probing: bool = False

    @first_timeout.default
    def _first_timeout_default(self) -> float:
        if self.call_timeout is None:
            return self.failover_timeout
        return min(self.failover_timeout, self.call_timeout)

    @property
    def nodes(self) -> tuple[Address, ...]:
        """The preferred node, then the twin when known."""
        return (self.preferred,) if self.twin is None else (self.preferred, self.twin)

    def learnt_twin(self, twin: Address | None) -> None:
        """The preferred node said where its twin is (None: it has none)."""
        self.twin = twin
        self.twin_known = True
        if twin is None:
            self.current = 0

    def plan(self, method: str, now: float, first: int | None = None) -> CallPlan:
        """The plan of a read or write call starting *now* on node *first* (default:
        the current node)."""
        total = math.inf if self.call_timeout is None else self.call_timeout
        if self.twin is None:
            # One node: one attempt, bounded by the call timeout alone (as before).
            return CallPlan(self, method, now + total, 0, total)
        node = self.current if first is None else first
        return CallPlan(self, method, now + total, node, self.failover_timeout)

    def succeeded(self, index: int, now: float) -> None:
        """A call was answered by node *index* (a result or an error reply): it serves
        the next calls too."""
        if index == self.current:
            return
        self.current = index
        if index != 0:
            self._probe_backoff = PROBE_BACKOFF_START
            self._next_probe = now + self._probe_backoff

    def probe_due(self, now: float) -> bool:
        """True when the caller should ask the preferred node whether it is healthy
        (before its call; it then reports :meth:`probed`). One probe at a time."""
        if self.current == 0 or self._probing or now < self._next_probe:
            return False
        self._probing = True
        return True

    def probed(self, healthy: bool, now: float) -> None:
        """The preferred node's answer to a probe: back to it if *healthy*, else ask
        again later (backing off)."""
        self._probing = False
        if healthy:
            self.current = 0
            self._probe_backoff = PROBE_BACKOFF_START
            return
        self._probe_backoff = min(self._probe_backoff * 2, PROBE_BACKOFF_MAX)
        self._next_probe = now + self._probe_backoff

    @property
    def probe_timeout(self) -> float:
        """How long a probe may take: a quarter of the failover timeout (a healthy node
        answers a ``status()`` in about a millisecond on a LAN; a frozen one must not
        stall the caller's next call for long)."""
        return self.failover_timeout / 4


def healthy_status(status: object) -> bool:
    """Does a node's ``status()`` say it may serve again: paired with its twin (so it
    has caught up with what was written there)?"""
    return isinstance(status, dict) and status.get("link_state") == "paired"
