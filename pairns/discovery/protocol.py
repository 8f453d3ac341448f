"""The discovery protocol as pure logic: datagram in, verdict (and answer) out.

Pyro 3's protocol: a client sends the datagram ``location`` to a name server's broadcast
port and the server answers with its URI as text. Pyro 3 also shut the server down on
the datagram ``shutdown``; pairns answers nothing but ``location`` over UDP (stopping a
node needs the authenticated TCP path).

:class:`ResponderPolicy` decides what to do with each datagram: answer it, or ignore it
and count why (garbage, oversized, a shutdown request, over the rate limit). Answers are
rate-limited per source address (:class:`RateLimiter`, token buckets) and in total, so a
spoofed source cannot turn the responder into a traffic amplifier. Time comes from the
injected clock; the socket lives in :mod:`pairns.discovery.responder`.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

import attrs

from pairns.errors import URIError
from pairns.uri import MAX_URI_LENGTH, URI

log = logging.getLogger("pairns.discovery")

#: The request: "where is the name server?" (Pyro 3's ``NS_SYSCMD_LOCATION``).
LOCATION: Final = b"location"
#: Pyro 3's shutdown datagram: recognised only to be counted and ignored.
SHUTDOWN: Final = b"shutdown"

#: Longest datagram looked at. A request is 8 bytes; anything much longer is not one,
#: and reading at most this many bytes keeps a flood of large datagrams cheap.
MAX_REQUEST_SIZE: Final = 64
#: Bytes the responder reads per datagram: one more than :data:`MAX_REQUEST_SIZE`, so
#: a longer datagram shows as oversized (the kernel truncates it to this length).
RECEIVE_SIZE: Final = MAX_REQUEST_SIZE + 1
#: Longest answer a locator reads: a URI is at most :data:`~pairns.uri.MAX_URI_LENGTH`.
MAX_ANSWER_SIZE: Final = MAX_URI_LENGTH

#: Answers per second to one source address, and the burst it may use at once. A
#: locator sends one request per port and round (two per round, 1 + PYRO_BC_RETRIES
#: rounds), so a handful per second serves any honest client; an attacker spoofing a
#: victim's address gets at most this many answers (of ~40 bytes) sent to the victim.
PER_SOURCE_RATE: Final = 5.0
PER_SOURCE_BURST: Final = 10.0
#: Answers per second over all sources: bounds what a spoofer who cycles through many
#: source addresses gets out of the responder in total.
TOTAL_RATE: Final = 200.0
TOTAL_BURST: Final = 200.0
#: Source addresses whose buckets are remembered (least recently seen are forgotten
#: first): the table's memory stays bounded whatever the sources; the total rate covers
#: what forgetting a bucket gives back.
MAX_SOURCES: Final = 1024


class Verdict(enum.Enum):
    """What the responder does with one datagram."""

    #: A location request within the rate limits: send the answer.
    ANSWER = "answer"
    #: A location request over a rate limit: ignored.
    RATE_LIMITED = "rate_limited"
    #: Pyro 3's ``shutdown``: never obeyed, never answered.
    SHUTDOWN = "shutdown"
    #: Longer than :data:`MAX_REQUEST_SIZE`: ignored unread.
    OVERSIZED = "oversized"
    #: Anything else: ignored.
    GARBAGE = "garbage"
    #: A location request the broadcast guard (``--allow``, ``-s``) refused: ignored.
    REFUSED = "refused"


def classify(datagram: bytes) -> Verdict:
    """What *datagram* asks for, before any rate limit (:data:`Verdict.ANSWER` for a
    location request)."""
    if len(datagram) > MAX_REQUEST_SIZE:
        return Verdict.OVERSIZED
    if datagram == LOCATION:
        return Verdict.ANSWER
    if datagram == SHUTDOWN:
        return Verdict.SHUTDOWN
    return Verdict.GARBAGE


@attrs.define
class TokenBucket:
    """*rate* tokens a second, at most *burst* held; starts full."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        """A bucket holding *burst* tokens at time *now*."""
        return cls(rate, burst, burst, now)

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill (a clock going back adds none)."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def has_token(self, now: float) -> bool:
        """Whether a token is there at *now* (none is taken)."""
        self.refill(now)
        return self.tokens >= 1.0

    def take(self) -> None:
        """Take one token (call after :meth:`has_token` said yes)."""
        self.tokens -= 1.0


@attrs.define
class RateLimiter:
    """A token bucket per source, bounded in number, plus one for all sources."""

    clock: Callable[[], float]
    per_source_rate: float = PER_SOURCE_RATE
    per_source_burst: float = PER_SOURCE_BURST
    total_rate: float = TOTAL_RATE
    total_burst: float = TOTAL_BURST
    max_sources: int = MAX_SOURCES
    _sources: OrderedDict[Hashable, TokenBucket] = attrs.field(init=False, factory=OrderedDict)
    _total: TokenBucket | None = attrs.field(init=False, default=None)

    def allow(self, source: Hashable) -> bool:
        """Whether one more answer to *source* is allowed now; if so it is counted."""
        now = self.clock()
        if self._total is None:
            self._total = TokenBucket.full(self.total_rate, self.total_burst, now)
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = TokenBucket.full(self.per_source_rate, self.per_source_burst, now)
            self._sources[source] = bucket
            if len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        if not (bucket.has_token(now) and self._total.has_token(now)):
            return False
        bucket.take()
        self._total.take()
        return True

    @property
    def sources(self) -> int:
        """How many sources have a bucket now."""
        return len(self._sources)


@attrs.define
class ResponderStatistics:
    """What a responder did with the datagrams it received, by :class:`Verdict`."""

    answered: int = 0
    rate_limited: int = 0
    shutdown: int = 0
    oversized: int = 0
    garbage: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for ``status()``)."""
        return attrs.asdict(self)


_COUNTER: Final = {
    Verdict.ANSWER: "answered",
    Verdict.RATE_LIMITED: "rate_limited",
    Verdict.SHUTDOWN: "shutdown",
    Verdict.OVERSIZED: "oversized",
    Verdict.GARBAGE: "garbage",
    Verdict.REFUSED: "refused",
}


@attrs.define
class ResponderPolicy:
    """Decides, for each datagram, whether to answer; counts what it ignores.

    ``receive(datagram, source_address)`` returns the :class:`Verdict`; the caller sends
    the answer only for :data:`Verdict.ANSWER`. The rate limit is keyed on the source
    address alone (not the port): that is the host an answer would be aimed at.
    """

    limiter: RateLimiter
    statistics: ResponderStatistics = attrs.field(factory=ResponderStatistics)
    #: The broadcast guard: may a request from ``(host, port)`` be answered? (asked
    #: after the rate limits, so a flood never reaches it; None: always)
    guard: Callable[[tuple[str, int]], bool] | None = None

    @classmethod
    def with_clock(cls, clock: Callable[[], float]) -> ResponderPolicy:
        """A policy with the default limits, reading *clock* (seconds, monotonic)."""
        return cls(RateLimiter(clock))

    def receive(
        self, datagram: bytes, source_address: Hashable, *, port: int = 0
    ) -> Verdict:
        """The verdict on *datagram* from *source_address* (and *port*; counted)."""
        verdict = classify(datagram)
        if verdict is Verdict.ANSWER and not self.limiter.allow(source_address):
            verdict = Verdict.RATE_LIMITED
        guard = self.guard
        if verdict is Verdict.ANSWER and guard is not None:
            verdict = Verdict.ANSWER if guard((str(source_address), port)) else Verdict.REFUSED
        counter = _COUNTER[verdict]
        setattr(self.statistics, counter, getattr(self.statistics, counter) + 1)
        if verdict is not Verdict.ANSWER:
            log.debug(
                "discovery: ignored a %d-byte datagram from %s (%s)",
                len(datagram),
                source_address,
                verdict.value,
            )
        return verdict


def encode_answer(uri: URI) -> bytes:
    """The answer datagram for a node at *uri* (its URI as ASCII text)."""
    return str(uri).encode("ascii")


def parse_answer(datagram: bytes) -> URI | None:
    """The name server URI an answer names, or None if *datagram* is not an answer.

    An answer is a ``PYRO``/``PYROSSL`` URI in ASCII; anything else (garbage, another
    service's reply, a URI of another kind) is not one.
    """
    if len(datagram) > MAX_ANSWER_SIZE:
        return None
    try:
        uri = URI.from_string(datagram.decode("ascii"))
    except (UnicodeDecodeError, URIError):
        return None
    if uri.protocol not in ("PYRO", "PYROSSL") or uri.host is None:
        return None
    return uri
