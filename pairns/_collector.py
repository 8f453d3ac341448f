"""Pausing Python's cyclic garbage collector around bulk work.

Start-up, a resync batch and a bulk merge each make tens of thousands of long-lived
objects at once. The collector would rescan them, and everything alive with them,
several times over and find nothing to free: a third of a load's time. Garbage made
meanwhile is freed by reference counting as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Disable the cyclic collector (process-wide) for the ``with`` block, then put it
    back as it was: nested pauses, and a collector the caller had already disabled,
    stay as they are."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
