"""Helpers for the chaos campaigns: run one, explain a failure, check nothing is left.

Each campaign is bounded by its own ``time_limit`` (it aborts cleanly at a round's
start), every wait inside it is bounded, and its output goes to the test's tmp_path. A
campaign that did not pass is also copied to ``$PAIRNS_CHAOS_KEEP`` (default
``<tmp>/pairns-chaos-failures``), since pytest keeps only its last three base
directories: a rare failure in a long ``make test`` is still there to read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pairns.chaos import faults as fx
from pairns.chaos.runner import CampaignOptions, Summary, run_campaign

#: Seconds after which a campaign gives up (at the start of its next round).
TIME_LIMIT = 150.0
#: Failed campaigns kept at most (the oldest go first): each holds ~20-40 MB of history.
KEEP_AT_MOST = 5

RunCampaign = Callable[..., Summary]

#: Run directory -> where its copy was kept (for :func:`explain`).
_KEPT: dict[Path, Path] = {}


def explain(summary: Summary) -> str:
    """What a failing test prints: the checker's report, the summary, the runner log."""
    parts = [summary.report or "(no checker report)", summary.table()]
    kept = _KEPT.get(summary.out)
    if kept is not None:
        parts.append(f"the whole run is kept in {kept}")
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
        if not summary.ok or summary.converged != summary.checkpoints:
            kept = keep(summary.out, f"seed{options.get('seed', 'x')}")
            if kept is not None:
                _KEPT[summary.out] = kept
        return summary

    return run


def keep(out: Path, label: str) -> Path | None:
    """Copy the run in *out* to the keep directory (at most :data:`KEEP_AT_MOST` runs
    there); where it went, or None when it could not be copied."""
    root = Path(os.environ.get("PAIRNS_CHAOS_KEEP") or tempfile.gettempdir())
    root = root / "pairns-chaos-failures"
    target = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(out, target)
        runs = sorted(p for p in root.iterdir() if p.is_dir())
        for old in runs[: max(0, len(runs) - KEEP_AT_MOST)]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return None
    return target
