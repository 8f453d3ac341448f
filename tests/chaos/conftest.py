"""Helpers for the chaos campaigns: run one, explain a failure, check nothing is left.

Each campaign is bounded by its own ``time_limit`` (it aborts cleanly at a round's
start), every wait inside it is bounded, and its output goes to the test's tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pairns.chaos import faults as fx
from pairns.chaos.runner import CampaignOptions, Summary, run_campaign

#: Seconds after which a campaign gives up (at the start of its next round).
TIME_LIMIT = 150.0

RunCampaign = Callable[..., Summary]


def explain(summary: Summary) -> str:
    """What a failing test prints: the checker's report, the summary, the runner log."""
    parts = [summary.report or "(no checker report)", summary.table()]
    log = summary.out / "runner.log"
    if log.exists():
        parts.append(log.read_text()[-6000:])
    return "\n\n".join(parts)


def assert_nothing_left(summary: Summary) -> None:
    """Every process the campaign started is gone; no mount or namespace of it is left."""
    alive = [pid for pid in summary.pids if _running(pid)]
    assert not alive, f"processes left running: {alive}"
    with open("/proc/self/mounts", encoding="utf-8") as f:
        mounts = [line.split()[1] for line in f]
    assert not [m for m in mounts if m.startswith(str(summary.out))]
    tag = f"pairns-chaos-{os.getpid()}-"
    if fx.is_root():
        assert not [n for n in fx._netns_names() if n.startswith(tag)]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def campaign(tmp_path: Path) -> RunCampaign:
    """``campaign(**options)``: run a quiet campaign into tmp_path; its summary."""

    def run(**options: Any) -> Summary:
        options.setdefault("time_limit", TIME_LIMIT)
        options.setdefault("quiet", True)
        summary = run_campaign(CampaignOptions(out=tmp_path / "run", **options))
        assert_nothing_left(summary)
        return summary

    return run
