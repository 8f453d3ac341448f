"""The runner's pure parts and the ``pairns-chaos`` command line (no campaign runs here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pairns.chaos import cli
from pairns.chaos.runner import CampaignOptions, Summary, available_kinds
from pairns.chaos.schedule import KINDS


def test_loopback_kinds_as_root_and_not() -> None:
    kinds, dropped = available_kinds(None, "loopback", root=True)
    assert kinds == tuple(k for k in KINDS if k != "netns")
    assert set(dropped) == {"netns"}
    kinds, dropped = available_kinds(None, "loopback", root=False)
    assert "disk-full" not in kinds and "root" in dropped["disk-full"]


def test_netns_kinds_have_no_proxy_faults() -> None:
    kinds, dropped = available_kinds(None, "netns", root=True)
    assert "netns" in kinds
    assert {"partition", "delay", "cut"} == set(dropped)


def test_requested_kinds_are_filtered() -> None:
    kinds, dropped = available_kinds(("kill", "netns"), "loopback", root=True)
    assert kinds == ("kill",) and set(dropped) == {"netns"}


def summary(**changes: Any) -> Summary:
    values: dict[str, Any] = {
        "ok": True,
        "seed": 3,
        "options": CampaignOptions(seed=3, rounds=2).to_json(),
        "out": Path("/tmp/x"),
        "faults": {"kill": 2, "wipe": 1},
        "skipped": ({"round": 0, "kind": "wipe", "node": 1, "reason": "fence: ..."},),
        "operations": 10,
        "attempts": 12,
        "acknowledged_writes": 4,
        "lost": 0,
        "double_applied": 0,
        "phantom_reads": 0,
        "checkpoints": 2,
        "converged": 2,
        "convergence_seconds": (0.1, 0.3),
        "seconds": 12.5,
        "failover_failures": 0,
        "failover_calls": 5,
        "longest_gaps": (0.2, 1.0, 0.4),
    }
    values.update(changes)
    return Summary(**values)


def test_summary_figures_and_exit_codes() -> None:
    s = summary()
    assert s.exit_code == 0
    assert s.convergence_p50 == pytest.approx(0.2) and s.convergence_max == 0.3
    assert summary(ok=False).exit_code == 1
    assert summary(ok=None).exit_code == 0
    assert summary(ok=None, converged=1).exit_code == 1
    assert summary(aborted="node 1 cannot be restarted").exit_code == 1
    assert summary(checker_error="KeyError: x").exit_code == 1
    data = json.loads(json.dumps(s.to_json()))
    assert data["seed"] == 3 and data["ok"] is True and data["checkpoints_converged"] == 2
    assert data["options"]["rounds"] == 2
    assert s.gap_p50 == pytest.approx(0.4) and s.gap_max == 1.0
    assert data["longest_gap_p50"] == pytest.approx(0.4) and data["longest_gap_max"] == 1.0
    assert data["failover_failures"] == 0 and data["failover_calls"] == 5
    assert summary(longest_gaps=()).gap_p50 is None


def test_summary_table_names_every_figure() -> None:
    table = summary().table()
    for label in (
        "faults injected",
        "kill 2, wipe 1",
        "faults skipped",
        "wipe 1",
        "operations",
        "10 (12 attempts)",
        "acknowledged writes",
        "lost",
        "double applied",
        "phantom reads",
        "checkpoints converged  2/2",
        "p50 0.200 s, max 0.300 s",
        "failover failures      0 (5 calls)",
        "longest gap            p50 0.400 s, max 1.000 s",
        "verdict                OK",
    ):
        assert label in table
    assert "NOT CHECKED" in summary(ok=None, lost=None).table()
    assert "ABORTED (boom)" in summary(aborted="boom\nmore").table()


def test_cli_flags_become_options(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        [
            *("--seed", "9", "--duration", "30", "--faults", "stop,kill", "--clients", "2"),
            *("--round-seconds", "3-4", "--bound", "2", "--clock-mode", "faketime"),
            *("--out", str(tmp_path), "--keep", "--no-check", "--time-limit", "100"),
            *("--failover-clients", "3", "--failover-timeout", "0.5"),
        ]
    )
    options = cli.options_from_args(args)
    assert options.seed == 9 and options.duration == 30.0 and options.rounds is None
    assert options.faults == ("kill", "stop")
    assert options.round_seconds == (3.0, 4.0) and options.bound == 2.0
    assert options.clock_mode == "faketime" and options.keep and not options.check
    assert options.time_limit == 100.0
    assert options.failover_clients == 3 and options.failover_timeout == 0.5
    assert cli.options_from_args(cli.build_parser().parse_args([])).failover_clients == 2
    assert cli.build_parser().parse_args(["--round-seconds", "4"]).round_seconds == (4.0, 4.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--faults", "kill,bogus"],
        ["--rounds", "3", "--duration", "10"],
        ["--round-seconds", "6-3"],
        ["--bound", "0"],
        ["--rounds", "0"],
        ["--topology", "mesh"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_a_non_empty_output_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "something").write_text("x")
    assert cli.main(["--rounds", "1", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_pairns_path_must_hold_pairns(tmp_path: Path) -> None:
    assert cli.main(["--rounds", "1", "--pairns-path", str(tmp_path)]) == 2


def test_recheck_needs_a_run_directory(tmp_path: Path) -> None:
    assert cli.main(["--recheck", str(tmp_path)]) == 2
