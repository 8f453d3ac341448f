from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import Backend


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each contract test runs once per backend."""
    return Backend(request.param, tmp_path / "data")
