"""When ``pairns-supervise`` restarts the node, and when it gives up (no processes here).

* An exit is *clean* when the node exited 0 (it was stopped: SIGTERM, Ctrl-C, a
  client's ``shutdown``), or ended by a signal the supervisor forwarded to it. Then the
  supervisor ends too, with 0.
* Exit code 2 is a usage or configuration error: the node refused to start and will
  refuse again, so it is not restarted; the supervisor exits 2.
* Anything else (another exit code, death by a signal nobody forwarded: SIGKILL, the
  OOM killer, SIGSEGV) is *abnormal*: the node is restarted after a backoff, unless it
  was restarted ``max_restarts`` times within the last ``window`` seconds already; then
  the supervisor gives up and exits 1.
* The backoff is ``backoff_initial`` doubled per restart within the window (0.5, 1, 2,
  4, ... s), at most ``backoff_max``: a node that keeps failing is restarted ever more
  slowly, and one that ran quietly for a whole window starts over at the shortest pause.
* Once the supervisor forwarded a stop signal, nothing is restarted: a node that then
  ends abnormally (say it was killed because it did not stop in time) makes the
  supervisor exit 1.
"""

from __future__ import annotations

import collections
import enum
import signal
from typing import Final

import attrs

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "Decision",
    "ExitStatus",
    "Outcome",
    "RestartPolicy",
    "classify",
]

#: The supervisor's exit codes: the node ended cleanly (or was stopped on request) ...
EXIT_OK: Final = 0
#: ... it failed and was not restarted (budget spent, or failed while stopping) ...
EXIT_FAILED: Final = 1
#: ... a usage or configuration error (the supervisor's options, or the node's exit 2).
EXIT_CONFIG: Final = 2

#: Restart budget and backoff defaults (``--max-restarts``, ``--window``,
#: ``--backoff-max``); the first pause is fixed.
DEFAULT_MAX_RESTARTS: Final = 5
DEFAULT_WINDOW: Final = 60.0
DEFAULT_BACKOFF_INITIAL: Final = 0.5
DEFAULT_BACKOFF_MAX: Final = 30.0


@attrs.frozen
class ExitStatus:
    """How a process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """``subprocess``'s convention: a negative return code is ``-signal``."""
        if returncode < 0:
            return cls(signal=-returncode)
        return cls(code=returncode)

    def describe(self) -> str:
        """``exited with 1``, ``was killed by SIGKILL``."""
        if self.signal is not None:
            return f"was killed by {signal_name(self.signal)}"
        return f"exited with {self.code}"


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15 (the number itself if it names no signal)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Outcome(enum.Enum):
    """What an exit means to the supervisor."""

    CLEAN = "clean"  # exited 0
    STOPPED = "stopped"  # ended by a signal the supervisor forwarded
    CONFIG_ERROR = "config_error"  # exit code 2: it will refuse to start again
    ABNORMAL = "abnormal"  # anything else


def classify(status: ExitStatus, forwarded: frozenset[int] = frozenset()) -> Outcome:
    """What *status* means, the supervisor having forwarded the signals *forwarded*."""
    if status.code == 0:
        return Outcome.CLEAN
    if status.signal is not None and status.signal in forwarded:
        return Outcome.STOPPED
    if status.code == EXIT_CONFIG:
        return Outcome.CONFIG_ERROR
    return Outcome.ABNORMAL


@attrs.frozen
class Decision:
    """What to do after an exit: restart after *delay*, or exit with *exit_code*."""

    outcome: Outcome
    restart: bool
    message: str
    delay: float = 0.0
    exit_code: int = EXIT_OK
    #: Which restart this is within the window (1-based; 0 when not restarting).
    restart_number: int = 0


@attrs.define(eq=False)
class RestartPolicy:
    """The restart budget (*max_restarts* within *window* seconds) and the backoff.

    Time is whatever monotonic clock the caller passes as ``now``.
    """

    max_restarts: int = DEFAULT_MAX_RESTARTS
    window: float = DEFAULT_WINDOW
    backoff_max: float = DEFAULT_BACKOFF_MAX
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    _restarts: collections.deque[float] = attrs.field(init=False, factory=collections.deque)

    def __attrs_post_init__(self) -> None:
        if self.max_restarts < 0 or not self.window > 0 or not self.backoff_max > 0:
            raise ValueError("max_restarts >= 0, window > 0 and backoff_max > 0 are needed")
        if not self.backoff_initial > 0:
            raise ValueError("backoff_initial must be > 0")

    def recent(self, now: float) -> int:
        """How many restarts happened within the window that ends at *now*."""
        while self._restarts and self._restarts[0] <= now - self.window:
            self._restarts.popleft()
        return len(self._restarts)

    def delay(self, restarts: int) -> float:
        """The pause before a restart when *restarts* happened within the window."""
        return min(self.backoff_max, self.backoff_initial * 2.0 ** min(restarts, 64))

    def decide(
        self, status: ExitStatus, *, now: float, forwarded: frozenset[int] = frozenset()
    ) -> Decision:
        """What to do now that the node ended with *status* (a restart is counted)."""
        outcome = classify(status, forwarded)
        what = status.describe()
        if outcome is Outcome.CLEAN:
            return Decision(outcome, False, f"the node {what}: it stopped cleanly")
        if outcome is Outcome.STOPPED:
            return Decision(outcome, False, f"the node stopped ({what}, as asked)")
        if forwarded:
            sent = ", ".join(sorted(signal_name(s) for s in forwarded))
            return Decision(
                outcome,
                False,
                f"the node {what} after {sent} was forwarded to it: not restarting it",
                exit_code=EXIT_FAILED,
            )
        if outcome is Outcome.CONFIG_ERROR:
            return Decision(
                outcome,
                False,
                f"the node {what}: a usage or configuration error (its message is above); "
                "not restarting it, it would refuse again",
                exit_code=EXIT_CONFIG,
            )
        count = self.recent(now)
        if count >= self.max_restarts:
            return Decision(
                outcome,
                False,
                f"giving up: the node {what}, and it was restarted {count} times within "
                f"the last {self.window:g} s (--max-restarts {self.max_restarts}, "
                f"--window {self.window:g})",
                exit_code=EXIT_FAILED,
            )
        self._restarts.append(now)
        delay = self.delay(count)
        return Decision(
            outcome,
            True,
            f"the node {what}; restarting it in {delay:g} s (restart {count + 1} of at "
            f"most {self.max_restarts} within {self.window:g} s)",
            delay=delay,
            restart_number=count + 1,
        )
