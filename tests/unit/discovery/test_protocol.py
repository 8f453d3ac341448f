"""The discovery protocol without sockets: verdicts, counters, rate limits, answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pairns.discovery.protocol import (
    LOCATION,
    MAX_REQUEST_SIZE,
    PER_SOURCE_BURST,
    PER_SOURCE_RATE,
    RECEIVE_SIZE,
    SHUTDOWN,
    RateLimiter,
    ResponderPolicy,
    TokenBucket,
    Verdict,
    classify,
    encode_answer,
    parse_answer,
)
from pairns.uri import URI


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_location_is_answered() -> None:
    assert classify(LOCATION) is Verdict.ANSWER
    assert classify(SHUTDOWN) is Verdict.SHUTDOWN
    for near_miss in (b"location\n", b"LOCATION", b" location", b"locatio", b"", b"\x00"):
        assert classify(near_miss) is Verdict.GARBAGE, near_miss
    assert classify(b"x" * MAX_REQUEST_SIZE) is Verdict.GARBAGE
    assert classify(b"x" * (MAX_REQUEST_SIZE + 1)) is Verdict.OVERSIZED
    # What the responder reads of a longer datagram is still seen as oversized.
    assert classify((LOCATION + b"x" * 100)[:RECEIVE_SIZE]) is Verdict.OVERSIZED


@given(st.binary(max_size=200))
def test_garbage_is_never_answered_and_always_counted(datagram: bytes) -> None:
    policy = ResponderPolicy.with_clock(FakeClock())
    verdict = policy.receive(datagram, "10.0.0.1")
    stats = policy.statistics.as_dict()
    assert sum(stats.values()) == 1
    assert (verdict is Verdict.ANSWER) == (datagram == LOCATION)
    if datagram == SHUTDOWN:
        assert stats["shutdown"] == 1
    elif len(datagram) > MAX_REQUEST_SIZE:
        assert stats["oversized"] == 1
    elif datagram != LOCATION:
        assert stats["garbage"] == 1


@given(st.lists(st.binary(max_size=80), max_size=50))
def test_the_counters_add_up_to_the_datagrams(datagrams: list[bytes]) -> None:
    policy = ResponderPolicy.with_clock(FakeClock())
    verdicts = [policy.receive(d, "10.0.0.1") for d in datagrams]
    stats = policy.statistics
    assert sum(stats.as_dict().values()) == len(datagrams)
    assert stats.answered == verdicts.count(Verdict.ANSWER)
    assert stats.answered + stats.rate_limited == datagrams.count(LOCATION)


def test_one_source_gets_its_burst_then_the_rate() -> None:
    clock = FakeClock()
    policy = ResponderPolicy.with_clock(clock)
    verdicts = [policy.receive(LOCATION, "10.0.0.1") for _ in range(100)]
    assert verdicts.count(Verdict.ANSWER) == PER_SOURCE_BURST
    assert policy.statistics.rate_limited == 100 - PER_SOURCE_BURST
    # Another source is not held back by the first one's flood.
    assert policy.receive(LOCATION, "10.0.0.2") is Verdict.ANSWER
    clock.now += 1.0
    answered = [policy.receive(LOCATION, "10.0.0.1") for _ in range(100)]
    assert answered.count(Verdict.ANSWER) == int(PER_SOURCE_RATE)


def test_a_clock_that_goes_back_gives_no_tokens() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=2.0, now=10.0)
    bucket.take()
    bucket.take()
    assert not bucket.has_token(5.0)
    assert not bucket.has_token(10.5)
    assert bucket.has_token(11.0)


def test_many_sources_are_bounded_in_memory_and_in_total() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_sources=50, total_rate=10.0, total_burst=30.0)
    allowed = sum(limiter.allow(f"10.0.{i // 256}.{i % 256}") for i in range(1000))
    assert limiter.sources == 50
    assert allowed == 30  # the total bucket, however many sources are spoofed
    clock.now += 1.0
    assert sum(limiter.allow(f"10.1.0.{i}") for i in range(100)) == 10


@given(
    st.sampled_from(["127.0.0.1", "node-a.example", "::1", "10.1.2.3"]),
    st.integers(1, 65535),
)
def test_an_answer_reads_back_as_the_uri(host: str, port: int) -> None:
    uri = URI.pyro(host, port, "Pyro.NameServer")
    assert parse_answer(encode_answer(uri)) == uri


@given(st.binary(max_size=3000))
def test_a_garbage_answer_is_not_an_answer(datagram: bytes) -> None:
    uri = parse_answer(datagram)
    assert uri is None or uri.protocol in ("PYRO", "PYROSSL")


def test_only_daemon_uris_are_answers() -> None:
    assert parse_answer(b"PYRONAME://:Default.x") is None
    assert parse_answer(b"PYROLOC://host:1/name") is None
    assert parse_answer(b"PYRO://host:1/id\xff") is None
    assert parse_answer(b"Shutdown request denied") is None
    assert parse_answer(b"PYRO://" + b"a" * 3000 + b":1/x") is None
    assert parse_answer(b"PYRO://h:1/Pyro.NameServer") == URI.pyro("h", 1, "Pyro.NameServer")
