"""Keeping glibc's malloc from hoarding memory that large blocks left behind.

glibc serves a request of 128 KiB or more with its own ``mmap`` and gives the pages
back when it is freed, but it then raises that threshold to the size of the freed
block (up to 32 MiB), so that later blocks of that size come from the heap instead.
A node has a few such blocks that are freed and made again at intervals: the tables
of the request-id table (``pairns.naming.requests``; about 12 MB once it holds its
100,000 ids) are rebuilt every ~125,000 churned names. Once they live in the heap,
each rebuild leaves a hole that small allocations split, and the next one extends
the heap: a node's RSS crept by ~2 MiB per 100,000 churned names (``benchmarks/
churn.py``, its Python heap flat under ``tracemalloc``, SQLite's memory flat).

:func:`fix_mmap_threshold` sets the threshold to its default once, which also stops
glibc from moving it: large blocks always come from ``mmap`` and go back to the
system when freed. The ``pairns`` command calls it; a program that embeds a node
keeps its own malloc settings. Nothing happens on another C library, or when the
environment sets ``MALLOC_MMAP_THRESHOLD_`` (glibc's own knob, which wins).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold"]

#: glibc's default threshold (bytes), kept fixed.
MMAP_THRESHOLD: Final = 128 * 1024

#: ``mallopt`` parameter number of the threshold (``<malloc.h>``).
_M_MMAP_THRESHOLD: Final = -3


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at *threshold* bytes; True if it was set."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
