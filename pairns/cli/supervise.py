"""``pairns-supervise``: run a node and restart it when it dies abnormally (Pyro's ``rns``).

``pairns-supervise [OPTIONS] [--] [pairns arguments]`` runs ``pairns`` with the
arguments after its own options and decides after each exit what to do, by
:mod:`pairns.cli.restart_policy`: a clean exit ends the supervisor (0), a configuration
error is not restarted (2), anything else is restarted with backoff until the restart
budget is spent (then 1). SIGTERM and SIGINT are forwarded to the node, which is then
not restarted; a node that does not stop within ``--stop-timeout`` is killed.

The node is never left behind: it runs in its own process group (a Ctrl-C in the
terminal reaches it once, through the supervisor), it is killed if the supervisor
fails, and on Linux the kernel sends it SIGTERM if the supervisor dies (even by
SIGKILL). The supervisor logs in the node's format, to the node's log file (it reads
``-v``, ``--log-format``, ``--log-file`` and their settings the way the node does).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Final

from pairns import structured_log
from pairns.cli.restart_policy import (
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_WINDOW,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    ExitStatus,
    RestartPolicy,
    signal_name,
)
from pairns.config import ConfigError, Origin, integer, seconds

log = logging.getLogger("pairns.supervise")

#: How the node is run: this interpreter, so the supervisor and the node are one install.
NODE_CMD: Final = (sys.executable, "-m", "pairns.cli.server")

#: The signals forwarded to the node (and that stop the supervisor).
FORWARDED: Final = (signal.SIGTERM, signal.SIGINT)

#: Seconds the node has to stop after a forwarded signal before it is killed.
DEFAULT_STOP_TIMEOUT: Final = 10.0

#: The supervisor's own options: name -> (Config-style kind, default, help).
_OPTIONS: Final = {
    "--max-restarts": (
        integer(0, 1000),
        DEFAULT_MAX_RESTARTS,
        "restarts allowed within --window before giving up (default %(default)s; 0: never restart)",
    ),
    "--window": (
        seconds(),
        DEFAULT_WINDOW,
        "the window of the restart budget, in seconds (default %(default)g)",
    ),
    "--backoff-max": (
        seconds(),
        DEFAULT_BACKOFF_MAX,
        "longest pause before a restart, in seconds (default %(default)g; the pauses "
        "start at 0.5 s and double per restart within the window)",
    ),
    "--stop-timeout": (
        seconds(),
        DEFAULT_STOP_TIMEOUT,
        "seconds the node has to stop after SIGTERM/SIGINT before it is killed "
        "(default %(default)g)",
    ),
}

#: PR_SET_PDEATHSIG (linux/prctl.h): the signal a child gets when its parent dies.
_PR_SET_PDEATHSIG: Final = 1


def build_parser() -> argparse.ArgumentParser:
    """The parser of the supervisor's own options (for ``--help`` and checking them)."""
    p = argparse.ArgumentParser(
        prog="pairns-supervise",
        usage="pairns-supervise [OPTIONS] [--] [pairns arguments]",
        description="Run a pairns node; restart it when it dies abnormally (non-zero exit "
        "other than 2, or killed by a signal it was not sent by the supervisor), with "
        "backoff and a restart budget. SIGTERM/SIGINT are forwarded to the node. Exit "
        "codes: 0 the node stopped cleanly, 1 it failed and was not restarted (budget "
        "spent), 2 usage or configuration error (exit 2 of the node is not restarted).",
    )
    for name, (_, default, text) in _OPTIONS.items():
        p.add_argument(
            name, metavar="N" if name == "--max-restarts" else "SECONDS", default=default, help=text
        )
    return p


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(supervisor's arguments, the node's)``: the supervisor's options come first;
    ``--`` or the first argument that is not one of them starts the node's."""
    own: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return own, list(argv[i + 1 :])
        name = arg.split("=", 1)[0]
        if arg in ("-h", "--help"):
            own.append(arg)
        elif name in _OPTIONS:
            own.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                i += 1
                own.append(argv[i])
        else:
            break
        i += 1
    return own, list(argv[i:])


def policy_from_args(own: Sequence[str]) -> tuple[RestartPolicy, float]:
    """The restart policy and the stop timeout; :class:`ConfigError` naming the option."""
    args = build_parser().parse_args(own)
    values: dict[str, Any] = {}
    for name, (kind, default, _) in _OPTIONS.items():
        text = getattr(args, name[2:].replace("-", "_"))
        values[name] = default if text is default else kind.read(str(text), Origin.flag(name))
    policy = RestartPolicy(
        max_restarts=values["--max-restarts"],
        window=values["--window"],
        backoff_max=values["--backoff-max"],
        backoff_initial=min(0.5, values["--backoff-max"]),
    )
    return policy, values["--stop-timeout"]


def configure_logging(node_args: Sequence[str]) -> None:
    """Log as the node will (its ``-v``, format and file); plain stderr if its
    arguments do not parse (the node then says why, and exits 2)."""
    from pairns.cli import server  # the node's own reading of its arguments

    level, log_format, log_file = logging.WARNING, "human", None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            config = server.config_from_args(list(node_args))
        level = logging.INFO if config.verbose else logging.WARNING
        log_format, log_file = config.log_format, config.log_file
    except (ConfigError, SystemExit):
        pass
    try:
        structured_log.configure(log_format=log_format, log_file=log_file, level=level)
    except OSError:
        structured_log.configure(log_format=log_format, level=level)


class Supervisor:
    """Runs the node again and again, as *policy* says; :meth:`run` returns the exit code."""

    def __init__(
        self,
        node_cmd: Sequence[str],
        policy: RestartPolicy,
        *,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_cmd = list(node_cmd)
        self.policy = policy
        self.stop_timeout = stop_timeout
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        #: Stop signals received (and forwarded to the node, if it ran).
        self.forwarded: set[int] = set()
        self._timer_armed = False
        self._killed_late = False
        self._wakeup_r = -1

    # -- signals (handlers only record and forward; the main flow logs) -------------

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.forwarded.add(signum)
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)  # does nothing once the node was reaped
        if not self._timer_armed:
            self._timer_armed = True
            signal.setitimer(signal.ITIMER_REAL, self.stop_timeout)

    def _on_stop_timeout(self, signum: int, frame: FrameType | None) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            self._killed_late = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until the node stops cleanly, must not be restarted, or the
        supervisor is told to stop; the supervisor's exit code."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self._wakeup_r = read_end
        previous = {s: signal.getsignal(s) for s in (*FORWARDED, signal.SIGALRM)}
        old_wakeup = signal.set_wakeup_fd(write_end)
        try:
            for s in FORWARDED:
                signal.signal(s, self._on_stop_signal)
            signal.signal(signal.SIGALRM, self._on_stop_timeout)
            return self._loop()
        finally:
            self._reap_for_good()
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            os.close(read_end)
            os.close(write_end)

    def _loop(self) -> int:
        while True:
            if self.forwarded:
                names = ", ".join(sorted(signal_name(s) for s in self.forwarded))
                log.warning("received %s while the node was not running: exiting", names)
                return EXIT_OK
            proc = self._start()
            returncode = proc.wait()
            signal.setitimer(signal.ITIMER_REAL, 0)
            status = ExitStatus.from_returncode(returncode)
            decision = self.policy.decide(
                status, now=self.clock(), forwarded=frozenset(self.forwarded)
            )
            message = decision.message
            if self._killed_late:
                message += f" (it did not stop within {self.stop_timeout:g} s: killed)"
            fields = structured_log.fields(
                pid=proc.pid,
                exit_code=status.code,
                signal=None if status.signal is None else signal_name(status.signal),
                outcome=decision.outcome.value,
                restart=decision.restart_number or None,
                delay=decision.delay if decision.restart else None,
            )
            if not decision.restart:
                level = logging.INFO if decision.exit_code == EXIT_OK else logging.ERROR
                log.log(level, "%s", message, extra=fields)
                return decision.exit_code
            log.warning("%s", message, extra=fields)
            self._pause(decision.delay)

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.node_cmd,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        self.proc = proc
        for signum in sorted(self.forwarded):  # a stop signal that came during the start
            self._forward(signum)
        log.info("started the node (pid %d)", proc.pid, extra=structured_log.fields(pid=proc.pid))
        return proc

    def _pause(self, delay: float) -> None:
        """Sleep *delay* seconds, or less if a stop signal arrives."""
        deadline = self.clock() + delay
        for _ in range(1000):  # each turn ends at the deadline or on a signal
            left = deadline - self.clock()
            if self.forwarded or left <= 0:
                return
            ready, _, _ = select.select([self._wakeup_r], [], [], left)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wakeup_r, 512)

    def _reap_for_good(self) -> None:
        """Never leave the node behind (the supervisor is failing or done)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the node when the supervisor dies
    (Linux only: elsewhere None, and a killed supervisor leaves the node running)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not after
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the call
            os._exit(EXIT_FAILED)

    return setup


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pairns-supervise``; returns the exit code."""
    own, node_args = split_args(sys.argv[1:] if argv is None else argv)
    try:
        policy, stop_timeout = policy_from_args(own)
    except ConfigError as exc:
        print(f"pairns-supervise: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(node_args)
    supervisor = Supervisor([*NODE_CMD, *node_args], policy, stop_timeout=stop_timeout)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
