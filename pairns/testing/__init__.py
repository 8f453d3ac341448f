"""Test tools for pairns: a fault-injecting loopback TCP proxy (see ``faultproxy``).

Names are imported lazily so that ``python -m pairns.testing.faultproxy`` does not find
the module already imported by its package (runpy warns about that, and it would run a
second copy of the module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pairns.testing.faultproxy import (
        FaultProxy,
        FaultProxyProcess,
        FaultProxyStatistics,
        open_fault_proxy,
    )

__all__ = ["FaultProxy", "FaultProxyProcess", "FaultProxyStatistics", "open_fault_proxy"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pairns.testing import faultproxy

        return getattr(faultproxy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
