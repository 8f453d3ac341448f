"""The chaos schedule is a pure function of its seed and options."""

from __future__ import annotations

import pytest

from pairns.chaos.schedule import (
    KINDS,
    LINK_KINDS,
    MAX_CLOCK_OFFSET,
    Schedule,
    make_schedule,
    parse_kinds,
)

LOOPBACK = tuple(k for k in KINDS if k != "netns")


def test_same_seed_and_options_give_the_same_schedule() -> None:
    a = make_schedule(7, LOOPBACK, rounds=12)
    b = make_schedule(7, LOOPBACK, rounds=12)
    assert a == b
    assert list(a.faults()) == list(b.faults())


def test_different_seeds_give_different_schedules() -> None:
    schedules = [make_schedule(seed, LOOPBACK, rounds=8) for seed in range(10)]
    for i, a in enumerate(schedules):
        assert all(a.rounds != b.rounds for b in schedules[i + 1 :])


def test_options_change_the_schedule() -> None:
    base = make_schedule(1, LOOPBACK, rounds=8)
    assert make_schedule(1, ("kill", "stop"), rounds=8) != base
    assert make_schedule(1, LOOPBACK, rounds=8, round_seconds=(4.0, 4.0)) != base


def test_only_the_chosen_kinds_are_planned() -> None:
    schedule = make_schedule(3, ("kill", "partition"), rounds=30)
    assert {f.kind for f in schedule.faults()} == {"kill", "partition"}
    assert schedule.kinds == ("kill", "partition")


def test_no_kinds_means_rounds_without_faults() -> None:
    schedule = make_schedule(3, (), rounds=5)
    assert len(schedule.rounds) == 5
    assert list(schedule.faults()) == []


def test_every_kind_comes_up_in_a_short_campaign() -> None:
    # Kinds come from a shuffled bag: each appears before any appears twice.
    for seed in range(20):
        schedule = make_schedule(seed, KINDS, rounds=8)
        counts = schedule.counts()
        if sum(counts.values()) >= len(KINDS):
            assert set(counts) == set(KINDS)
        assert max(counts.values()) - min(counts.get(k, 0) for k in KINDS) <= 1


def test_round_and_fault_bounds() -> None:
    for seed in range(30):
        schedule = make_schedule(seed, KINDS, rounds=10, round_seconds=(3.0, 6.0))
        for rnd in schedule.rounds:
            assert 3.0 <= rnd.length <= 6.0
            assert 1 <= len(rnd.faults) <= 4
            offsets = [f.offset for f in rnd.faults]
            assert offsets == sorted(offsets)
            for fault in rnd.faults:
                assert fault.round == rnd.index
                assert 0.0 <= fault.offset <= 0.8 * rnd.length
                if fault.kind in LINK_KINDS:
                    assert fault.node == 0
                else:
                    assert fault.node in (1, 2)
                _check_parameters(fault.kind, fault.duration, dict(fault.detail))


def _check_parameters(kind: str, duration: float, detail: dict[str, object]) -> None:
    if kind == "kill":
        assert 0.0 <= duration <= 1.0
    elif kind in ("stop", "partition", "netns", "delay"):
        assert 0.5 <= duration <= 3.0
    elif kind == "disk-full":
        assert 1.0 <= duration <= 3.0
    else:
        assert duration == 0.0
    if kind == "delay":
        assert 0.05 <= float(detail["delay"]) <= 0.3  # type: ignore[arg-type]
    if kind == "cut":
        assert isinstance(detail["reset"], bool)
    if kind == "netns":
        assert detail["side"] in (1, 2)
    if kind == "disk-full":
        assert isinstance(detail["fresh"], bool)


def test_clock_offsets_are_skewed_then_set_right() -> None:
    seen_set_right = False
    for seed in range(40):
        schedule = make_schedule(seed, ("clock",), rounds=6)
        current = {1: 0.0, 2: 0.0}
        for fault in schedule.faults():
            offset = float(fault.detail["offset"])
            assert fault.detail["previous"] == current[fault.node]
            if offset == 0.0:
                assert current[fault.node] != 0.0  # only a skewed clock is set right
                seen_set_right = True
            else:
                assert 1.0 <= abs(offset) <= MAX_CLOCK_OFFSET
            current[fault.node] = offset
    assert seen_set_right


def test_old_copies_are_taken_before_they_are_restored() -> None:
    for seed in range(30):
        schedule = make_schedule(seed, ("old-copy", "kill"), rounds=8)
        copies = {c.copy: c for rnd in schedule.rounds for c in rnd.copies}
        ids = [c.copy for rnd in schedule.rounds for c in rnd.copies]
        assert len(ids) == len(set(ids))
        for fault in schedule.faults():
            if fault.kind != "old-copy":
                continue
            copy = copies[int(fault.detail["copy"])]
            assert copy.node == fault.node
            assert copy.round == fault.detail["copy_round"]
            assert fault.round - 3 <= copy.round <= fault.round


def test_duration_fills_rounds_until_it_is_reached() -> None:
    schedule = make_schedule(5, LOOPBACK, duration=30.0)
    assert schedule.seconds >= 30.0
    assert schedule.seconds - schedule.rounds[-1].length < 30.0
    assert schedule == make_schedule(5, LOOPBACK, duration=30.0)


def test_fixed_round_length() -> None:
    schedule = make_schedule(5, LOOPBACK, rounds=4, round_seconds=(4.0, 4.0))
    assert [r.length for r in schedule.rounds] == [4.0] * 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rounds": 3, "duration": 10.0},
        {"rounds": 0},
        {"rounds": 10_001},
        {"duration": -1.0},
        {"rounds": 3, "round_seconds": (6.0, 3.0)},
        {"rounds": 3, "round_seconds": (0.1, 1.0)},
        {"rounds": 3, "faults_per_round": (3, 1)},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_schedule(1, LOOPBACK, **kwargs)  # type: ignore[arg-type]


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        make_schedule(1, ("kill", "bogus"), rounds=2)


def test_parse_kinds() -> None:
    assert parse_kinds("stop,kill") == ("kill", "stop")
    assert parse_kinds(" kill , wipe ") == ("kill", "wipe")
    assert parse_kinds("all") == KINDS
    assert parse_kinds("none") == ()
    assert parse_kinds("") == ()
    with pytest.raises(ValueError, match="bogus"):
        parse_kinds("kill,bogus")


def test_schedule_helpers() -> None:
    schedule = make_schedule(2, LOOPBACK, rounds=5)
    assert isinstance(schedule, Schedule)
    assert sum(schedule.counts().values()) == len(list(schedule.faults()))
    assert schedule.seconds == pytest.approx(sum(r.length for r in schedule.rounds))
