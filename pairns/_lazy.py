"""Module-level ``__getattr__`` for packages whose public names are imported on first use.

``import pairns`` then costs only what is used: a blocking client or ``pairns-ctl``
never imports Trio, the server, the storage or the replication code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(
    namespace: dict[str, Any], homes: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package: *homes* maps each public name to the
    module that defines it; a name is imported, and cached in *namespace*, when first
    asked for."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
