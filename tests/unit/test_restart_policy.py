"""Issue 21: ``pairns-supervise``'s restart policy, without processes."""

from __future__ import annotations

import signal

import pytest

from pairns.cli import supervise
from pairns.cli.restart_policy import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    ExitStatus,
    Outcome,
    RestartPolicy,
    classify,
)

KILLED = ExitStatus(signal=signal.SIGKILL)
CRASHED = ExitStatus(code=1)
TERM = frozenset({signal.SIGTERM})


def test_exit_status_from_subprocess_return_codes() -> None:
    assert ExitStatus.from_returncode(-9) == KILLED
    assert ExitStatus.from_returncode(3) == ExitStatus(code=3)
    assert KILLED.describe() == "was killed by SIGKILL"
    assert CRASHED.describe() == "exited with 1"
    assert ExitStatus(signal=200).describe() == "was killed by signal 200"


@pytest.mark.parametrize(
    ("status", "forwarded", "outcome"),
    [
        (ExitStatus(code=0), frozenset(), Outcome.CLEAN),
        (ExitStatus(code=0), TERM, Outcome.CLEAN),
        (ExitStatus(signal=signal.SIGTERM), TERM, Outcome.STOPPED),
        (ExitStatus(signal=signal.SIGTERM), frozenset(), Outcome.ABNORMAL),  # not ours
        (KILLED, TERM, Outcome.ABNORMAL),  # a signal other than the one forwarded
        (ExitStatus(code=2), frozenset(), Outcome.CONFIG_ERROR),
        (CRASHED, frozenset(), Outcome.ABNORMAL),
        (ExitStatus(code=137), frozenset(), Outcome.ABNORMAL),
    ],
)
def test_classify(status: ExitStatus, forwarded: frozenset[int], outcome: Outcome) -> None:
    assert classify(status, forwarded) is outcome


def test_backoff_doubles_per_restart_within_the_window_up_to_the_maximum() -> None:
    policy = RestartPolicy(max_restarts=10, window=1000, backoff_max=5)
    delays = [policy.decide(KILLED, now=float(t)).delay for t in range(8)]
    assert delays == [0.5, 1, 2, 4, 5, 5, 5, 5]
    assert policy.delay(10_000) == 5


def test_the_budget_is_a_sliding_window() -> None:
    policy = RestartPolicy(max_restarts=3, window=60)
    decisions = [policy.decide(CRASHED, now=t) for t in (0.0, 1.0, 2.0)]
    assert all(d.restart for d in decisions)
    assert [d.restart_number for d in decisions] == [1, 2, 3]
    spent = policy.decide(CRASHED, now=3.0)
    assert not spent.restart and spent.exit_code == EXIT_FAILED
    assert spent.message.startswith("giving up: the node exited with 1, and it was restarted 3")
    assert "--max-restarts 3" in spent.message
    # The restart at t=0 leaves the window at t=60: one more is allowed, at a shorter
    # pause than the fourth would have had.
    again = policy.decide(CRASHED, now=60.0)
    assert again.restart and again.delay == 2 and again.restart_number == 3
    # A node that then ran quietly for a whole window starts over at the first pause.
    fresh = policy.decide(CRASHED, now=200.0)
    assert fresh.restart and fresh.delay == 0.5 and fresh.restart_number == 1


def test_zero_restarts_means_never() -> None:
    decision = RestartPolicy(max_restarts=0).decide(KILLED, now=0)
    assert not decision.restart and decision.exit_code == EXIT_FAILED


def test_a_configuration_error_is_not_restarted() -> None:
    decision = RestartPolicy().decide(ExitStatus(code=2), now=0)
    assert not decision.restart and decision.exit_code == EXIT_CONFIG
    assert "configuration error" in decision.message and "not restarting" in decision.message


def test_after_a_forwarded_signal_nothing_is_restarted() -> None:
    policy = RestartPolicy()
    stopped = policy.decide(ExitStatus(signal=signal.SIGTERM), now=0, forwarded=TERM)
    assert not stopped.restart and stopped.exit_code == EXIT_OK
    clean = policy.decide(ExitStatus(code=0), now=0, forwarded=TERM)
    assert not clean.restart and clean.exit_code == EXIT_OK
    late = policy.decide(KILLED, now=0, forwarded=TERM)
    assert not late.restart and late.exit_code == EXIT_FAILED
    assert "after SIGTERM was forwarded" in late.message
    assert policy.recent(0) == 0  # none of these counted as a restart


def test_a_clean_exit_ends_supervision() -> None:
    decision = RestartPolicy().decide(ExitStatus(code=0), now=0)
    assert not decision.restart and decision.exit_code == EXIT_OK


@pytest.mark.parametrize(
    "kwargs", [{"max_restarts": -1}, {"window": 0}, {"backoff_max": 0}, {"backoff_initial": 0}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "own", "node"),
    [
        ([], [], []),
        (["-n", "h", "-p", "1"], [], ["-n", "h", "-p", "1"]),
        (["--max-restarts", "3", "-1"], ["--max-restarts", "3"], ["-1"]),
        (["--window=9", "--", "--window", "1"], ["--window=9"], ["--window", "1"]),
        (
            ["--stop-timeout", "2", "-v", "--max-restarts", "1"],
            ["--stop-timeout", "2"],
            ["-v", "--max-restarts", "1"],
        ),
        (["-h"], ["-h"], []),
    ],
)
def test_the_supervisor_options_come_first(
    argv: list[str], own: list[str], node: list[str]
) -> None:
    assert supervise.split_args(argv) == (own, node)


def test_options_are_read_into_the_policy() -> None:
    policy, stop = supervise.policy_from_args(
        ["--max-restarts", "2", "--window", "5", "--backoff-max", "0.2", "--stop-timeout", "3"]
    )
    assert (policy.max_restarts, policy.window, policy.backoff_max, stop) == (2, 5.0, 0.2, 3.0)
    assert policy.delay(0) == 0.2  # the first pause never exceeds the longest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-restarts", "-1"], "--max-restarts must be an integer in 0..1000, not -1"),
        (["--window", "0"], "--window must be a finite number of seconds > 0, not 0"),
        (["--backoff-max", "nan"], "--backoff-max must be a finite number of seconds > 0"),
        (["--stop-timeout", "soon"], "--stop-timeout must be a finite number of seconds > 0"),
    ],
)
def test_bad_options_are_one_line_and_exit_2_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert supervise.main([*argv, "-n", "127.0.0.1"]) == EXIT_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"pairns-supervise: configuration error: {message}")
    assert err[0].endswith("(from the command line)")
