"""Pausing Python's cyclic garbage collector around bulk work, and freezing what lives on.

Start-up, a resync batch and a bulk merge each make tens of thousands of long-lived
objects at once. The collector would rescan them, and everything alive with them,
several times over and find nothing to free: a third of a load's time. Garbage made
meanwhile is freed by reference counting as usual.

This module holds the mechanisms; the policy (when the collector is paused for a
whole start-up and when what is alive is frozen) belongs to the node, see
:func:`pairns.node.open_node`. Both forms of a pause leave a collector that was
already off (someone else's pause, or a host program that turned it off) as it is.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["Pause", "paused"]


class Pause:
    """Disable the cyclic collector (process-wide) from now until :meth:`end`: for a
    pause that spans ``await`` points or ends somewhere else than it began.

    If the collector is already off, the pause is inactive and :meth:`end` leaves the
    collector off.
    """

    __slots__ = ("_active",)

    def __init__(self) -> None:
        self._active = gc.isenabled()
        if self._active:
            gc.disable()

    @property
    def active(self) -> bool:
        """True until :meth:`end` if this pause turned the collector off."""
        return self._active

    def end(self, *, freeze: bool = False) -> None:
        """Turn the collector back on, if this pause turned it off (once; later calls
        do nothing).

        With *freeze*, first move everything alive into the permanent generation
        (:func:`gc.freeze`): what the paused work made stays alive, and without this
        the collector's first young collection, then every full one, walks it all
        (about 0.2 s, on the event loop, for 100,000 names). Cycles that were already
        garbage then are kept for good: a few hundred objects, measured.
        """
        if self._active:
            self._active = False
            if freeze:
                gc.freeze()
            gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """A :class:`Pause` for the ``with`` block: nested pauses, and a collector the
    caller had already disabled, stay as they are."""
    pause = Pause()
    try:
        yield
    finally:
        pause.end()
