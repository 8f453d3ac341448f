"""The rule for requested full resyncs: coalesced while one runs, paced afterwards."""

from __future__ import annotations

from pairns.replication.resync import MIN_GAP, PACE_FACTOR, Decision, ResyncPacer


def test_a_request_while_one_runs_joins_it() -> None:
    pacer = ResyncPacer()
    assert pacer.request(0.0, running=False) is Decision.START
    for t in (0.5, 1.0, 1.5):
        assert pacer.request(t, running=False) is Decision.JOIN
    assert (pacer.requests, pacer.joined) == (4, 3)


def test_a_resync_the_twin_started_is_joined_too() -> None:
    pacer = ResyncPacer()
    assert pacer.request(0.0, running=True) is Decision.JOIN
    assert pacer.began is None  # nothing of ours runs: the next one may start at once
    assert pacer.request(0.1, running=False) is Decision.START


def test_the_next_one_waits_for_a_gap_proportional_to_the_last() -> None:
    pacer = ResyncPacer()
    pacer.request(10.0, running=False)
    pacer.finished(12.0)  # took 2 s: the gap is 8 s
    assert pacer.request(13.0, running=False) is Decision.SCHEDULE
    assert pacer.due == 12.0 + PACE_FACTOR * 2.0
    assert pacer.request(14.0, running=False) is Decision.JOIN  # joins the scheduled one
    assert not pacer.start_due(19.9)
    assert pacer.start_due(20.0)
    assert pacer.request(20.5, running=False) is Decision.JOIN  # it runs now
    pacer.finished(21.0)
    assert pacer.request(21.0 + MIN_GAP * 5, running=False) is Decision.START


def test_a_short_resync_still_leaves_the_minimum_gap() -> None:
    pacer = ResyncPacer()
    pacer.request(0.0, running=False)
    pacer.finished(0.01)
    assert pacer.request(0.5, running=False) is Decision.SCHEDULE
    assert pacer.due == 0.01 + MIN_GAP


def test_requests_once_a_second_use_a_bounded_share_of_the_time() -> None:
    """A client asking every second while each resync takes 2 s: resyncs run at most
    1 / (1 + PACE_FACTOR) of the time, and each one ends (the pair is paired between)."""
    pacer = ResyncPacer()
    duration = 2.0
    busy = 0.0
    running_until: float | None = None
    for second in range(600):
        now = float(second)
        if running_until is not None and now >= running_until:
            pacer.finished(running_until)
            busy += duration
            running_until = None
        if pacer.start_due(now):
            running_until = now + duration
        if pacer.request(now, running=False) is Decision.START:
            running_until = now + duration
    assert busy / 600 <= 1 / (1 + PACE_FACTOR) + 0.01


def test_a_resync_the_twin_asked_for_sets_the_gap_here_too() -> None:
    """Two clients asking the two nodes in turn: the twin's resync counts as the
    running one here (requests join it) and its end sets this node's gap."""
    pacer = ResyncPacer()
    pacer.began_anyway(0.0)  # the twin asked; the link started a full resync
    assert pacer.request(0.5, running=False) is Decision.JOIN
    pacer.finished(2.0)  # took 2 s: the gap is 8 s
    assert pacer.request(3.0, running=False) is Decision.SCHEDULE
    assert pacer.due == 2.0 + PACE_FACTOR * 2.0
    pacer.began_anyway(3.5)  # the twin's next one serves the scheduled request
    assert (pacer.began, pacer.due) == (3.5, None)
    assert not pacer.start_due(10.0)
    pacer.began_anyway(4.0)  # the same resync, seen again: it began at 3.5
    assert pacer.began == 3.5
