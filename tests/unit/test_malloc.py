"""glibc's mmap threshold, fixed by the ``pairns`` command (see ``pairns._malloc``)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from pairns._malloc import fix_mmap_threshold

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_threshold_is_fixed_on_glibc() -> None:
    # In a child process: the setting is process-wide.
    code = "from pairns._malloc import fix_mmap_threshold; print(fix_mmap_threshold())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"


def test_glibc_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
