"""The chaos campaign: a real pair, client processes, scheduled faults, checkpoints.

:func:`run_campaign` starts two persistent ``pairns`` nodes forming a pair (their link
through fault proxies on loopback, or across two network namespaces), a few
:mod:`pairns.chaos.client` processes, and plays a :class:`~pairns.chaos.schedule.Schedule`
round by round: clients run, faults are injected at their offsets, then everything is
healed, the clients pause and the runner waits for both nodes to show the same digest
and records a :class:`~pairns.chaos.history.Checkpoint`. At the end it stops everything
(by pid), parses the nodes' logs for conflicts and hands the histories to the checker.

Output directory: ``ops-<client>.jsonl``, ``events.jsonl`` (faults and checkpoints),
``conflicts-<node>-<incarnation>.jsonl``, ``node<N>-<k>.log`` (each incarnation's log),
``schedule.json``, ``runner.log`` and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

import pairns
from pairns.chaos import faults as fx
from pairns.chaos.client import ClientProcess
from pairns.chaos.history import (
    Checkpoint,
    ConflictRecord,
    Fault,
    NodeState,
    Op,
    Pause,
    Status,
    read_jsonl,
    write_jsonl,
)
from pairns.chaos.schedule import KINDS, PlannedCopy, PlannedFault, PlannedRound, make_schedule
from pairns.errors import ConnectionClosedError, PairnsError
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming.failover import DEFAULT_FAILOVER_TIMEOUT
from pairns.naming.proxy import DEFAULT_TIMEOUT
from pairns.rpc.proxy import Proxy

__all__ = [
    "CampaignAborted",
    "CampaignOptions",
    "RunRecords",
    "Summary",
    "available_kinds",
    "check_run",
    "load_run",
    "run_campaign",
]

#: This checkout: the runner, the clients and the checker always run from it.
REPO: Final = Path(pairns.__file__).resolve().parents[1]

#: Seconds to wait for the pair to form and agree after the first start.
PAIR_TIMEOUT: Final = 30.0
#: Seconds the clients get to answer ``ready`` and ``paused``. A pause waits for the
#: operation in flight and its retries (3 attempts of at most the call timeout).
READY_TIMEOUT: Final = 20.0
PAUSE_TIMEOUT: Final = 20.0
#: How often the runner polls status while waiting for convergence or a fence.
POLL_INTERVAL: Final = 0.05
#: Timeout of the runner's own calls (status, dump).
CALL_TIMEOUT: Final = 2.0
DUMP_PAGE: Final = 10_000

#: The failover clients' call timeout: the failover proxy's default. A call fails
#: before it only when both nodes refused or dropped it in one round.
FAILOVER_CALL_TIMEOUT: Final = DEFAULT_TIMEOUT

#: Kinds that need root, and why.
ROOT_KINDS: Final = fx.ROOT_REASON
#: Kinds that need the fault proxies of the loopback topology.
PROXY_KINDS: Final = frozenset({"partition", "delay", "cut"})


class CampaignAborted(RuntimeError):
    """The campaign could not go on (a node refused to start, a client vanished...)."""


class _Skip(Exception):
    """A planned fault cannot be injected now; the message says why."""


@attrs.frozen
class CampaignOptions:
    """What :func:`run_campaign` does. Give *rounds* or *duration* (default: 10
    rounds). *faults* ``None`` means every kind possible here. *round_seconds* is the
    range round lengths are drawn from; *bound* the seconds the nodes get to converge
    after a heal. ``check=False`` skips the checker (``--no-check``). *time_limit*
    (seconds) aborts the campaign cleanly at the next round once it is exceeded.
    *failover_clients* client processes run besides the *clients*, each making its
    calls through a failover name server proxy (*failover_timeout*)."""

    seed: int = 1
    rounds: int | None = None
    duration: float | None = None
    faults: tuple[str, ...] | None = None
    clients: int = 4
    failover_clients: int = 2
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    round_seconds: tuple[float, float] = (3.0, 6.0)
    bound: float = 5.0
    clock_mode: str = "injected"
    topology: str = "loopback"
    pairns_path: Path | None = None
    out: Path | None = None
    keep: bool = False
    check: bool = True
    client_timeout: float = 2.0
    #: Operations a second per client (0: as fast as the nodes answer). A long
    #: campaign paces its clients so that its history stays a size the checker can
    #: hold (unpaced, ~1,900 operations a second in all).
    client_rate: float = 0.0
    fence_timeout: float = 10.0
    tmpfs_size: str = "64m"
    quiet: bool = False
    time_limit: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The options as JSON values."""
        data = attrs.asdict(self)
        for key in ("pairns_path", "out"):
            data[key] = None if data[key] is None else str(data[key])
        data["faults"] = None if self.faults is None else list(self.faults)
        data["round_seconds"] = list(self.round_seconds)
        return data


@attrs.frozen
class Summary:
    """What a campaign found. ``ok`` is the checker's verdict (``None`` when it did not
    run); ``exit_code`` is what ``pairns-chaos`` exits with."""

    ok: bool | None
    seed: int
    options: dict[str, Any]
    out: Path
    faults: dict[str, int]
    skipped: tuple[dict[str, Any], ...]
    operations: int
    attempts: int
    acknowledged_writes: int
    lost: int | None
    double_applied: int | None
    phantom_reads: int | None
    checkpoints: int
    converged: int
    convergence_seconds: tuple[float, ...]
    seconds: float
    aborted: str | None = None
    checker_error: str | None = None
    notes: tuple[str, ...] = ()
    report: str | None = None
    pids: tuple[int, ...] = ()
    #: Rule 4's violations (None: not checked) and the failover clients' calls.
    failover_failures: int | None = None
    failover_calls: int = 0
    #: Per failover client and round, the longest time between two answers.
    longest_gaps: tuple[float, ...] = ()
    #: Tombstones the nodes collected (all incarnations, as seen at the checkpoints),
    #: the most either held at a checkpoint, and names a restored node still held
    #: whose collected deletion was sent to it again (status ``deletions_resent``).
    tombstones_collected: int = 0
    tombstones_max: int = 0
    deletions_resent: int = 0

    @property
    def convergence_p50(self) -> float | None:
        """Median convergence time of the checkpoints that converged."""
        values = self.convergence_seconds
        return statistics.median(values) if values else None

    @property
    def convergence_max(self) -> float | None:
        """Longest convergence time of the checkpoints that converged."""
        return max(self.convergence_seconds) if self.convergence_seconds else None

    @property
    def gap_p50(self) -> float | None:
        """Median of the failover clients' longest gaps (one per client and round)."""
        return statistics.median(self.longest_gaps) if self.longest_gaps else None

    @property
    def gap_max(self) -> float | None:
        """The longest gap of any failover client in any round."""
        return max(self.longest_gaps) if self.longest_gaps else None

    @property
    def exit_code(self) -> int:
        """0: the checker found nothing (or, unchecked, every checkpoint converged);
        1: violations, a checkpoint that did not converge unchecked, an abort, or a
        checker that failed."""
        if self.aborted is not None or self.checker_error is not None:
            return 1
        if self.ok is None:
            return 0 if self.converged == self.checkpoints else 1
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        """summary.json's content."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "seed": self.seed,
            "options": self.options,
            "out": str(self.out),
            "faults": self.faults,
            "skipped": list(self.skipped),
            "operations": self.operations,
            "attempts": self.attempts,
            "acknowledged_writes": self.acknowledged_writes,
            "lost": self.lost,
            "double_applied": self.double_applied,
            "phantom_reads": self.phantom_reads,
            "checkpoints": self.checkpoints,
            "checkpoints_converged": self.converged,
            "convergence_seconds": list(self.convergence_seconds),
            "convergence_p50": self.convergence_p50,
            "convergence_max": self.convergence_max,
            "failover_calls": self.failover_calls,
            "failover_failures": self.failover_failures,
            "longest_gaps": list(self.longest_gaps),
            "longest_gap_p50": self.gap_p50,
            "longest_gap_max": self.gap_max,
            "tombstones_collected": self.tombstones_collected,
            "tombstones_max": self.tombstones_max,
            "deletions_resent": self.deletions_resent,
            "seconds": round(self.seconds, 3),
            "aborted": self.aborted,
            "checker_error": self.checker_error,
            "notes": list(self.notes),
            "pids": list(self.pids),
        }

    def table(self) -> str:
        """The human summary ``pairns-chaos`` prints."""

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f} s"

        def num(value: int | None) -> str:
            return "not checked" if value is None else str(value)

        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        skipped: dict[str, int] = {}
        for item in self.skipped:
            skipped[item["kind"]] = skipped.get(item["kind"], 0) + 1
        verdict = {None: "NOT CHECKED", True: "OK", False: "VIOLATIONS"}[self.ok]
        if self.checker_error is not None:
            verdict = f"CHECKER FAILED ({self.checker_error.splitlines()[0]})"
        if self.aborted is not None:
            verdict = f"ABORTED ({self.aborted.splitlines()[0]})"
        rows = [
            ("seed", str(self.seed)),
            ("faults injected", injected),
            (
                "faults skipped",
                ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none",
            ),
            ("operations", f"{self.operations} ({self.attempts} attempts)"),
            ("acknowledged writes", str(self.acknowledged_writes)),
            ("lost", num(self.lost)),
            ("double applied", num(self.double_applied)),
            ("phantom reads", num(self.phantom_reads)),
            ("failover failures", f"{num(self.failover_failures)} ({self.failover_calls} calls)"),
            ("longest gap", f"p50 {fmt(self.gap_p50)}, max {fmt(self.gap_max)}"),
            (
                "tombstones",
                f"{self.tombstones_collected} collected, at most {self.tombstones_max} held "
                f"at a checkpoint, {self.deletions_resent} deletions resent",
            ),
            ("checkpoints converged", f"{self.converged}/{self.checkpoints}"),
            (
                "convergence",
                f"p50 {fmt(self.convergence_p50)}, max {fmt(self.convergence_max)}",
            ),
            ("duration", f"{self.seconds:.1f} s"),
            ("output", str(self.out)),
            ("verdict", verdict),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def available_kinds(
    requested: Iterable[str] | None,
    topology: str,
    *,
    root: bool,
    problems: dict[str, str] | None = None,
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The fault kinds a campaign can inject here, and why each dropped one is dropped.

    *requested* ``None`` asks for every kind. Proxy faults (partition, delay, cut)
    exist only in the loopback topology, ``netns`` only in the netns one; ``disk-full``
    and ``netns`` need root, and *problems* maps a kind to why this machine cannot
    inject it even so (see :func:`machine_problems`).
    """
    wanted = KINDS if requested is None else tuple(k for k in KINDS if k in set(requested))
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for kind in wanted:
        if kind in PROXY_KINDS and topology == "netns":
            dropped[kind] = "the netns topology has no fault proxies (its partition is 'netns')"
        elif kind == "netns" and topology != "netns":
            dropped[kind] = "needs --topology netns"
        elif kind in ROOT_KINDS and not root:
            dropped[kind] = ROOT_KINDS[kind]
        elif problems and kind in problems:
            dropped[kind] = problems[kind]
        else:
            kept.append(kind)
    return tuple(kept), dropped


def machine_problems() -> dict[str, str]:
    """Fault kinds this machine cannot inject although this process is root (a
    container without the right capabilities, no ``ip`` command), and why."""
    found = {"disk-full": fx.tmpfs_problem(), "netns": fx.netns_problem()}
    return {kind: why for kind, why in found.items() if why is not None}


def run_campaign(options: CampaignOptions) -> Summary:
    """Run one campaign and return its summary (also written to ``summary.json``).

    Raises ``ValueError`` for unusable options. Whatever happens (an exception, Ctrl-C),
    every process it started is stopped by pid and every mount and namespace it made
    is removed before this returns or raises.
    """
    return _Campaign(options).run()


# --------------------------------------------------------------------------- internals


@attrs.define
class _Active:
    """A fault in force: recorded as a :class:`Fault` when it is healed."""

    kind: str
    node: int
    start: float
    detail: dict[str, Any]
    heal: Callable[[], None]
    #: False for a kill: the kill and the restart are recorded when they happen.
    recorded: bool = True


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _count(value: Any) -> int:
    """A report field as a number: its length if it is a collection."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return int(value)


#: A timed action of a round: (when, tie-breaker, what).
_Action = tuple[float, int, Callable[[], None]]


class _Campaign:
    """One run of :func:`run_campaign` (all its state; used once)."""

    def __init__(self, options: CampaignOptions) -> None:
        _validate(options)
        self.options = options
        self.root = fx.is_root()
        self.kinds, self.dropped = available_kinds(
            options.faults,
            options.topology,
            root=self.root,
            problems=machine_problems() if self.root else None,
        )
        rounds = options.rounds
        if rounds is None and options.duration is None:
            rounds = 10
        self.schedule = make_schedule(
            options.seed,
            self.kinds,
            rounds=rounds,
            duration=options.duration,
            round_seconds=options.round_seconds,
        )
        self.out = _output_dir(options)
        self.events = self.out / "events.jsonl"
        self.use_tmpfs = "disk-full" in self.kinds
        self.faketime = fx.find_faketime()
        self.nodes: dict[int, fx.Node] = {}
        self.clients: list[ClientProcess] = []
        self.link: fx.LoopbackLink | None = None
        self.netns: fx.NetnsPair | None = None
        #: The runner's own connections, one per node and call timeout.
        self.proxies: dict[tuple[int, float], Proxy] = {}
        self.active: dict[int, _Active] = {}
        self.next_active = 0
        self.down: dict[int, str] = {}
        self.copies: dict[int, tuple[Path, float]] = {}
        self.skipped: list[dict[str, Any]] = []
        self.notes: list[str] = []
        #: Every process the campaign started (all are stopped by the end).
        self.pids: list[int] = []
        self.injected: dict[str, int] = {}
        self.checkpoints: list[Checkpoint] = []
        self.log_offsets: dict[tuple[int, int], int] = {}
        self.parse_log: Callable[..., list[ConflictRecord]] | None = None
        self.started = time.monotonic()
        self.round = -1
        #: Since when, and why, the clients are paused (None: running or not started).
        self.paused: tuple[float, str] | None = None

    # -- the whole run ---------------------------------------------------------------

    def run(self) -> Summary:
        (self.out / fx.PID_FILE).write_text(f"{os.getpid()}\n")
        (self.out / "schedule.json").write_text(
            json.dumps(attrs.asdict(self.schedule), indent=1, default=str) + "\n"
        )
        self.say(
            f"pairns-chaos: seed {self.options.seed}, {len(self.schedule.rounds)} rounds "
            f"({self.schedule.seconds:.0f} s of traffic), {self.options.clients} clients "
            f"and {self.options.failover_clients} failover clients, "
            f"{self.options.topology}, faults: {', '.join(self.kinds) or 'none'}; out: {self.out}"
        )
        for kind, reason in self.dropped.items():
            self.say(f"fault kind {kind} skipped: {reason}")
        aborted: str | None = None
        try:
            with contextlib.ExitStack() as stack:
                try:
                    self.setup(stack)
                    for rnd in self.schedule.rounds:
                        self.check_time_limit()
                        self.play(rnd)
                except (CampaignAborted, fx.NodeStartError) as exc:
                    aborted = str(exc)
                    self.say(f"campaign aborted: {exc}")
                except Exception as exc:
                    # A runner bug or a broken tool: stop, but still check what was recorded.
                    aborted = f"{type(exc).__name__}: {exc}"
                    self.say(f"campaign aborted by an error:\n{traceback.format_exc()}")
                self.say("stopping clients, nodes and proxies")
        finally:
            with contextlib.suppress(Exception):
                for proxy in self.proxies.values():
                    proxy.close()
        self.collect_conflicts(final=True)
        summary = self.finish(aborted)
        (self.out / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
        if summary.exit_code == 0 and not self.options.keep:
            self.remove_bulk()
        return summary

    def check_time_limit(self) -> None:
        """Abort (cleanly) once the run has taken longer than ``time_limit``."""
        limit = self.options.time_limit
        if limit is not None and time.monotonic() - self.started > limit:
            raise CampaignAborted(f"time limit of {limit:g} s reached")

    def say(self, text: str) -> None:
        """Progress: printed (unless quiet) and appended to runner.log."""
        line = f"[{time.monotonic() - self.started:7.2f}s] {text}"
        if not self.options.quiet:
            print(line, flush=True)
        with open(self.out / "runner.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def started_process(self, name: str, pid: int) -> None:
        """Note a process the campaign started (``pids`` file: ``NAME PID`` lines)."""
        self.pids.append(pid)
        with open(self.out / "pids", "a", encoding="utf-8") as f:
            f.write(f"{name} {pid}\n")

    def record(self, record: Fault | Pause | Checkpoint) -> None:
        """Append one event to events.jsonl."""
        write_jsonl(self.events, [record])
        if isinstance(record, Fault) and record.kind != "restart":
            self.injected[record.kind] = self.injected.get(record.kind, 0) + 1

    # -- set-up ----------------------------------------------------------------------

    def setup(self, stack: contextlib.ExitStack) -> None:
        """Topology, storage, nodes, the first pairing, the chaos groups, the clients."""
        opts = self.options
        pythonpath = str(opts.pairns_path or REPO)
        if opts.topology == "netns":
            for name in fx.NetnsPair.cleanup_leftovers():
                self.say(f"removed a dead run's leftover {name}")
            self.netns = fx.NetnsPair()
            stack.callback(self.netns.delete)
            self.netns.create()
            names, addresses = ", ".join(self.netns.names), ", ".join(self.netns.addresses)
            self.say(f"network namespaces {names} ({addresses})")
        if self.root:
            for point in fx.cleanup_leftover_mounts():
                self.say(f"unmounted a dead run's leftover tmpfs {point}")
        for n in (1, 2):
            db = self.out / f"node{n}" / "db"
            db.mkdir(parents=True, exist_ok=True)
            if self.use_tmpfs:
                fx.mount_tmpfs(db, opts.tmpfs_size)
                stack.callback(self.unmount, n, db)
        if self.netns is not None:
            hosts = list(self.netns.addresses)
            ports = [9090, 9091]
            twins = [f"{hosts[1]}:{ports[1]}", f"{hosts[0]}:{ports[0]}"]
            prefixes = [self.netns.prefix(1), self.netns.prefix(2)]
        else:
            hosts = ["127.0.0.1", "127.0.0.1"]
            ports = _free_ports(2)
            self.link = fx.LoopbackLink(ports[0], ports[1])
            stack.callback(self.link.stop)
            self.link.start()
            for proxy, name in zip(self.link.proxies, ("proxy-to-1", "proxy-to-2"), strict=True):
                self.started_process(name, proxy.pid)
            twins = [
                f"127.0.0.1:{self.link.to_node2.address[1]}",
                f"127.0.0.1:{self.link.to_node1.address[1]}",
            ]
            prefixes = [[], []]
        for n in (1, 2):
            self.nodes[n] = fx.Node(
                n,
                host=hosts[n - 1],
                port=ports[n - 1],
                twin=twins[n - 1],
                node_dir=self.out / f"node{n}",
                db_dir=self.out / f"node{n}" / "db",
                log_dir=self.out,
                pythonpath=pythonpath,
                prefix=prefixes[n - 1],
                clock_mode=opts.clock_mode,
                faketime=self.faketime,
            )
        self.check_pairns_path(pythonpath)
        stack.callback(self.stop_nodes)
        for node in self.nodes.values():
            self.started_process(f"node{node.index}-{node.incarnation + 1}", node.start())
        for n, node in self.nodes.items():
            node.wait_listening()
            now = time.monotonic()
            detail = {"round": -1, "incarnation": 1, "after": "start", "clock_offset": 0.0}
            self.record(Fault("restart", n, now, now, detail))
        self.say(
            f"nodes listening: 1 on {hosts[0]}:{ports[0]} (pid {self.nodes[1].pid}), "
            f"2 on {hosts[1]}:{ports[1]} (pid {self.nodes[2].pid})"
        )
        self.wait_paired()
        self.create_groups()
        stack.callback(self.stop_clients)
        self.start_clients()

    def check_pairns_path(self, pythonpath: str) -> None:
        """Make sure the nodes will import pairns from *pythonpath*."""
        node = self.nodes[1]
        proc = subprocess.run(
            [sys.executable, "-c", "import pairns.cli.server, pairns; print(pairns.__file__)"],
            capture_output=True,
            text=True,
            env=fx.clean_env(pythonpath),
            cwd=node.node_dir,
            timeout=60,
        )
        where = proc.stdout.strip()
        expected = Path(pythonpath).resolve()
        if proc.returncode != 0 or expected not in Path(where).resolve().parents:
            raise CampaignAborted(
                f"the nodes would not run pairns from {pythonpath}: "
                f"{where or proc.stderr.strip()[-500:]}"
            )
        self.say(f"nodes run pairns from {Path(where).parent}")
        if "clock" in self.kinds and self.options.clock_mode == "injected":
            sources = Path(where).parent.rglob("*.py")
            if not any("PAIRNS_CLOCK_OFFSET" in p.read_text(errors="replace") for p in sources):
                self.say(
                    "warning: these nodes do not read PAIRNS_CLOCK_OFFSET, so clock faults "
                    "will not skew their clocks; use --clock-mode faketime"
                )

    def wait_paired(self) -> None:
        deadline = time.monotonic() + PAIR_TIMEOUT
        last: dict[int, Any] = {}
        while time.monotonic() < deadline:
            for n in (1, 2):
                last[n] = self.status(n)
            if all(s is not None and s.get("link") == "paired" for s in last.values()):
                return
            time.sleep(POLL_INTERVAL)
        raise CampaignAborted(
            f"the pair did not form within {PAIR_TIMEOUT:g} s (links: "
            f"{[None if s is None else s.get('link') for s in last.values()]})"
        )

    def create_groups(self) -> None:
        """As client ``setup``: ``:chaos`` and its groups on node 1, recorded as ops;
        then wait until node 2 shows the same digest."""
        from pairns.chaos.client import CHURN_GROUP, FRESH_GROUP, GROUPS

        path = self.out / "ops-setup.jsonl"
        for i, name in enumerate((":chaos", *GROUPS, FRESH_GROUP, CHURN_GROUP), start=1):
            rid = uuid.uuid4().hex
            status: Status = "unknown"
            error: dict[str, str] | None = None
            for attempt in range(1, 4):
                start = time.monotonic()
                try:
                    self.call(1, "createGroup", name, request_id=rid, timeout=5.0)
                    status, error = "ok", None
                except ConnectionClosedError as exc:
                    status, error = "unknown", {"type": type(exc).__name__, "message": str(exc)}
                except PairnsError as exc:
                    status, error = "error", {"type": type(exc).__name__, "message": str(exc)}
                op = Op(
                    client="setup",
                    op_id=f"setup-{i}",
                    attempt=attempt,
                    node=1,
                    op="createGroup",
                    args=(name,),
                    start=start,
                    end=time.monotonic(),
                    status=status,
                    rid=rid,
                    error=error,
                )
                write_jsonl(path, [op])
                if status != "unknown":
                    break
            if status != "ok":
                raise CampaignAborted(f"setup: createGroup {name} on node 1 failed: {error}")
        deadline = time.monotonic() + PAIR_TIMEOUT
        while time.monotonic() < deadline:
            s1, s2 = self.status(1), self.status(2)
            if s1 and s2 and s1["digest"] == s2["digest"]:
                return
            time.sleep(POLL_INTERVAL)
        raise CampaignAborted(f"setup: node 2 did not catch up within {PAIR_TIMEOUT:g} s")

    def start_clients(self) -> None:
        opts = self.options
        env = fx.clean_env(str(REPO))
        addresses = [(node.host, node.port) for node in self.nodes.values()]
        max_seconds = self.schedule.seconds * 3 + 600
        # Plain clients c0.. talk to both nodes; failover clients f0.. each prefer one
        # (in the netns topology a client lives with the node it prefers, or alternates).
        specs: list[tuple[str, int, dict[str, Any]]] = [
            (f"c{i}", 1 + i % 2, {"timeout": opts.client_timeout}) for i in range(opts.clients)
        ]
        specs += [
            (
                f"f{i}",
                1 + i % 2,
                {
                    "timeout": FAILOVER_CALL_TIMEOUT,
                    "failover": 1 + i % 2,
                    "failover_timeout": opts.failover_timeout,
                },
            )
            for i in range(opts.failover_clients)
        ]
        for name, side, extra in specs:
            client = ClientProcess(
                name,
                seed=opts.seed,
                nodes=addresses,
                out=self.out / f"ops-{name}.jsonl",
                log=self.out / f"client-{name}.log",
                env=env,
                prefix=self.netns.prefix(side) if self.netns is not None else [],
                max_seconds=max_seconds,
                rate=opts.client_rate,
                **extra,
            )
            self.clients.append(client)
            self.started_process(f"client-{name}", client.start())
        deadline = time.monotonic() + READY_TIMEOUT
        for client in self.clients:
            if not client.expect("ready", deadline):
                raise CampaignAborted(f"client {client.name} did not start: see {client.log}")

    # -- tear-down -------------------------------------------------------------------

    def stop_clients(self) -> None:
        for client in self.clients:
            client.send("exit")
        for client in self.clients:
            client.stop()

    def stop_nodes(self) -> None:
        for n, node in self.nodes.items():
            code = node.terminate()
            if code not in (None, 0) and n not in self.down:
                self.notes.append(
                    f"node {n} (incarnation {node.incarnation}) exited with {code} at SIGTERM"
                )

    def unmount(self, n: int, db: Path) -> None:
        if self.options.keep:
            with contextlib.suppress(Exception):
                fx.copy_directory(db, db.parent / "db-kept")
        fx.unmount(db)

    def remove_bulk(self) -> None:
        """After a passing run: the databases and old copies go, histories stay."""
        for n in (1, 2):
            for name in ("db", "db-kept"):
                path = self.out / f"node{n}" / name
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.out / "copies", ignore_errors=True)

    # -- calls to the nodes ----------------------------------------------------------

    def call(
        self,
        n: int,
        method: str,
        *args: Any,
        request_id: str | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> Any:
        """Call the name server of node *n* (from inside its namespace in netns mode)."""

        def do() -> Any:
            proxy = self.proxies.get((n, timeout))
            if proxy is None:
                node = self.nodes[n]
                proxy = Proxy.for_address(
                    node.host, node.port, NAMESERVER_OBJECT_ID, timeout=timeout
                )
                self.proxies[(n, timeout)] = proxy
            return proxy.call(method, *args, request_id=request_id)

        if self.netns is not None:
            return self.netns.run_in(n, do, timeout=timeout + 10)
        return do()

    def status(self, n: int, timeout: float = 1.0) -> dict[str, Any] | None:
        """Node *n*'s status, or None if it does not answer."""
        try:
            value = self.call(n, "status", timeout=timeout)
        except (PairnsError, OSError, TimeoutError):
            return None
        return value if isinstance(value, dict) else None

    def state(self, n: int) -> NodeState:
        """Node *n*'s visible namespace (paged dump) and status."""
        entries: dict[str, dict[str, Any]] = {}
        after: str | None = None
        try:
            for _ in range(1000):
                page = self.call(n, "dump", after, DUMP_PAGE, timeout=5.0)
                for entry in page["entries"]:
                    entries[entry["name"]] = {
                        "kind": entry["kind"],
                        "uri": entry.get("uri"),
                        "meta": entry.get("meta"),
                    }
                after = page.get("next")
                if after is None:
                    break
        except (PairnsError, OSError, TimeoutError) as exc:
            return NodeState(n, "", entries, {"error": f"{type(exc).__name__}: {exc}"})
        status = self.status(n, timeout=5.0) or {"error": "no status"}
        return NodeState(n, str(status.get("digest", "")), entries, status)

    # -- clients ---------------------------------------------------------------------

    def clients_run(self) -> None:
        """Let every client run (and record the pause this ends)."""
        if self.paused is not None:
            since, why = self.paused
            self.paused = None
            self.record(Pause(since, time.monotonic(), why))
        for client in self.clients:
            if not client.lost:
                client.send("run")

    def clients_pause(self, why: str) -> None:
        """Pause every client (for a ``checkpoint`` or a ``fence``) and wait until each
        has no call in flight."""
        if self.paused is None:
            self.paused = (time.monotonic(), why)
        live = [c for c in self.clients if not c.lost]
        for client in live:
            client.send("pause")
        deadline = time.monotonic() + PAUSE_TIMEOUT
        for client in live:
            if not client.expect("paused", deadline):
                client.kill()
                self.notes.append(
                    f"client {client.name} did not pause: killed in round {self.round}"
                )
                self.say(f"client {client.name} did not pause within {PAUSE_TIMEOUT:g} s: killed")
        if not any(not c.lost for c in self.clients):
            raise CampaignAborted("every client was lost")

    # -- one round -------------------------------------------------------------------

    def play(self, rnd: PlannedRound) -> None:
        """Run round *rnd*: copies, traffic and faults, heal, pause, converge, checkpoint."""
        self.round = rnd.index
        plan = ", ".join(
            f"{f.kind}{'' if f.node == 0 else f' node {f.node}'} @{f.offset:.1f}s"
            for f in rnd.faults
        )
        count = len(self.schedule.rounds)
        self.say(f"round {rnd.index + 1}/{count} ({rnd.length:.1f} s): {plan or 'no faults'}")
        for copy in rnd.copies:
            self.take_copy(copy)
        self.clients_run()
        t0 = time.monotonic()
        end = t0 + rnd.length
        queue: list[_Action] = []
        for seq, fault in enumerate(rnd.faults, start=1):
            queue.append((t0 + fault.offset, seq, functools.partial(self.inject, fault, queue)))
        heapq.heapify(queue)
        for _ in range(10_000):
            if not queue or queue[0][0] >= end:
                break
            when, _, action = heapq.heappop(queue)
            time.sleep(max(0.0, when - time.monotonic()))
            action()
        time.sleep(max(0.0, end - time.monotonic()))
        healed = self.heal_all()
        self.clients_pause("checkpoint")
        self.checkpoint(rnd.index, healed)

    def inject(self, fault: PlannedFault, queue: list[_Action]) -> None:
        """Inject *fault* now; schedule its heal (if it has one) on *queue*."""
        handler = getattr(self, "fault_" + fault.kind.replace("-", "_"))
        try:
            heal = handler(fault)
        except _Skip as exc:
            self.skipped.append(
                {"round": fault.round, "kind": fault.kind, "node": fault.node, "reason": str(exc)}
            )
            self.say(f"  skipped {fault.kind} node {fault.node}: {exc}")
            return
        if heal is not None:
            key, when = heal
            heapq.heappush(queue, (when, -key, lambda: self.end_active(key)))

    def begin(
        self,
        kind: str,
        node: int,
        detail: dict[str, Any],
        heal: Callable[[], None],
        duration: float,
        *,
        recorded: bool = True,
    ) -> tuple[int, float]:
        """Register a fault in force; its heal is due *duration* s from now."""
        self.next_active += 1
        start = time.monotonic()
        self.active[self.next_active] = _Active(kind, node, start, detail, heal, recorded)
        self.say(f"  {kind}{'' if node == 0 else f' node {node}'} {_brief(detail)}")
        return self.next_active, start + duration

    def end_active(self, key: int) -> None:
        """Heal one fault in force (if the round-end heal has not already)."""
        active = self.active.pop(key, None)
        if active is None:
            return
        active.heal()
        if active.recorded:
            self.record(
                Fault(active.kind, active.node, active.start, time.monotonic(), active.detail)
            )

    # -- fault kinds -----------------------------------------------------------------

    def _live(self, n: int) -> fx.Node:
        node = self.nodes[n]
        if n in self.down or not node.alive:
            raise _Skip(f"node {n} is down")
        return node

    def fault_kill(self, fault: PlannedFault) -> tuple[int, float]:
        node = self._live(fault.node)
        n, t = fault.node, time.monotonic()
        detail = {"round": fault.round, "incarnation": node.incarnation, "pid": node.pid}
        node.kill()
        self.down[n] = "kill"
        self.record(Fault("kill", n, t, t, detail))
        return self.begin(
            "kill",
            n,
            {**detail, "restart_in": fault.duration},
            lambda: self.restart_if_down(n),
            fault.duration,
            recorded=False,
        )

    def restart_if_down(self, n: int) -> None:
        """The end of a kill: restart the node unless something else already did."""
        if n in self.down:
            self.restart(n, after=self.down[n])

    def fault_stop(self, fault: PlannedFault) -> tuple[int, float]:
        node = self._live(fault.node)
        if node.stopped:
            raise _Skip(f"node {fault.node} is already stopped")
        node.stop()
        detail = {"round": fault.round, "planned": fault.duration}
        return self.begin("stop", fault.node, detail, node.resume, fault.duration)

    def fault_partition(self, fault: PlannedFault) -> tuple[int, float]:
        assert self.link is not None
        self.link.partition()
        return self.begin(
            "partition",
            0,
            {"round": fault.round, "planned": fault.duration},
            self.link.heal,
            fault.duration,
        )

    def fault_delay(self, fault: PlannedFault) -> tuple[int, float]:
        assert self.link is not None
        link, seconds = self.link, float(fault.detail["delay"])
        link.add_delay(seconds)
        return self.begin(
            "delay",
            0,
            {"round": fault.round, "delay": seconds},
            lambda: link.remove_delay(seconds),
            fault.duration,
        )

    def fault_cut(self, fault: PlannedFault) -> None:
        assert self.link is not None
        reset = bool(fault.detail["reset"])
        t = time.monotonic()
        self.link.cut(reset=reset)
        self.record(Fault("cut", 0, t, t, {"round": fault.round, "reset": reset}))
        self.say(f"  cut the link ({'RST' if reset else 'FIN'})")

    def fault_netns(self, fault: PlannedFault) -> tuple[int, float]:
        netns = self.netns
        assert netns is not None
        side = int(fault.detail["side"])
        netns.link_down(side)
        return self.begin(
            "netns-partition",
            0,
            {
                "round": fault.round,
                "side": side,
                "namespace": netns.name(side),
                "veth": netns.veths[side - 1],
            },
            lambda: netns.link_up(side),
            fault.duration,
        )

    def fault_disk_full(self, fault: PlannedFault) -> tuple[int, float]:
        db = self.nodes[fault.node].db_dir
        if not self.use_tmpfs:
            raise _Skip("the databases are not on tmpfs")
        if (db / fx.BALLAST_NAME).exists():
            raise _Skip(f"node {fault.node}'s disk is already full")
        fresh = bool(fault.detail.get("fresh"))
        if fresh and fault.node not in self.down and self.nodes[fault.node].alive:
            # SQLite reuses its write-ahead log: a node that has run a while needs no
            # new space and sails through a full disk. Right after a clean restart its
            # log must grow, so the full disk bites.
            down_since = time.monotonic()
            self.nodes[fault.node].terminate()
            self.restart(fault.node, after="disk-full", down_since=down_since)
        written = fx.fill_ballast(db)
        detail = {"round": fault.round, "ballast": written, "fresh": fresh}

        def heal() -> None:
            fx.remove_ballast(db)

        return self.begin("disk-full", fault.node, detail, heal, fault.duration)

    def fault_clock(self, fault: PlannedFault) -> None:
        n = fault.node
        node = self.nodes[n]
        previous, offset = node.clock_offset, float(fault.detail["offset"])
        detail = {
            "round": fault.round,
            "offset": offset,
            "previous": previous,
            "mode": self.options.clock_mode,
        }
        t = time.monotonic()
        if n in self.down:
            node.clock_offset = offset  # the pending restart applies it
            self.say(f"  clock node {n}: {previous:+g} s -> {offset:+g} s at its restart")
            self.record(Fault("clock", n, t, t, {**detail, "applied": "at the pending restart"}))
            return
        code = node.terminate()
        if code not in (0, None):
            self.notes.append(
                f"node {n} exited with {code} at SIGTERM (clock, round {fault.round})"
            )
        node.clock_offset = offset
        self.say(f"  clock node {n}: {previous:+g} s -> {offset:+g} s")
        self.restart(n, after="clock")
        self.record(Fault("clock", n, t, time.monotonic(), detail))

    def fault_old_copy(self, fault: PlannedFault) -> None:
        n = fault.node
        copy = self.copies.get(int(fault.detail["copy"]))
        if copy is None:
            raise _Skip(f"copy {fault.detail['copy']} of node {n} was not taken")
        path, taken = copy
        self.fenced(
            n,
            lambda: self.replace_db(n, path),
            "restore-old-copy",
            {
                "round": fault.round,
                "copy": fault.detail["copy"],
                "copy_round": fault.detail["copy_round"],
                "copied_at": taken,
            },
        )

    def fault_wipe(self, fault: PlannedFault) -> None:
        n = fault.node
        self.fenced(n, lambda: self.replace_db(n, None), "wipe", {"round": fault.round})

    def replace_db(self, n: int, source: Path | None) -> None:
        node = self.nodes[n]
        node.kill()
        fx.clear_directory(node.db_dir)
        if source is not None:
            fx.copy_directory(source, node.db_dir)

    def fenced(self, n: int, action: Callable[[], None], kind: str, detail: dict[str, Any]) -> None:
        """FENCE node *n* (its twin holds everything it acknowledged), then kill it, run
        *action* on its database and restart it; clients are paused meanwhile."""
        reason = self.fence(n)
        if reason is not None:
            raise _Skip(reason)
        try:
            t = time.monotonic()
            self.say(f"  {kind} node {n} (fenced)")
            action()
            self.restart(n, after=kind)
            self.record(
                Fault(
                    kind,
                    n,
                    t,
                    time.monotonic(),
                    {**detail, "incarnation": self.nodes[n].incarnation},
                )
            )
        finally:
            self.clients_run()

    def fence(self, n: int) -> str | None:
        """Pause the clients and wait until the pair has settled (equal digests, both
        paired, nothing unacknowledged either way): then the twin holds everything node
        *n* holds, also what node *n* got from the twin and the twin has since lost (a
        twin restored from an old copy gets it back from node *n*). None on success
        (clients stay paused), else why not (clients run again)."""
        if self.active or self.down:
            # The twin must be reachable and able to take everything: every fault in
            # force ends now (its record says it was cut short).
            self.say("  fence: healing the faults in force first")
            for key in sorted(self.active):
                self.active[key].detail["cut_short"] = "fence"
                self.end_active(key)
            for m in sorted(self.down):
                self.restart(m, after=self.down[m])
        for m, node in self.nodes.items():
            if not node.alive:
                return f"fence: node {m} is not running (exited with {node.returncode})"
        self.clients_pause("fence")
        deadline = time.monotonic() + self.options.fence_timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last, other = self.status(n), self.status(3 - n)
            if last and other and _settled(last, other):
                return None
            time.sleep(POLL_INTERVAL)
        self.clients_run()
        seen = (
            "no answer"
            if last is None
            else (f"link {last.get('link')!r}, unacked_changes {last.get('unacked_changes')}")
        )
        bound = self.options.fence_timeout
        return f"fence: the pair did not settle within {bound:g} s (node {n}: {seen})"

    def take_copy(self, copy: PlannedCopy) -> None:
        """Copy node *copy.node*'s database directory (the node frozen meanwhile)."""
        node = self.nodes[copy.node]
        if copy.node in self.down or not node.alive:
            self.say(f"  copy {copy.copy} of node {copy.node} not taken: the node is down")
            return
        dest = self.out / "copies" / f"copy{copy.copy}-node{copy.node}"
        t = time.monotonic()
        node.stop()
        try:
            fx.copy_directory(node.db_dir, dest)
            fx.remove_ballast(dest)
        except (OSError, RuntimeError) as exc:
            self.say(f"  copy {copy.copy} of node {copy.node} failed: {exc}")
            return
        finally:
            node.cont()
        self.copies[copy.copy] = (dest, t)
        self.say(f"  copied node {copy.node}'s database (copy {copy.copy})")

    def restart(self, n: int, *, after: str, down_since: float | None = None) -> None:
        """Start node *n*'s next incarnation and wait until it listens (one retry). The
        ``restart`` record spans from *down_since* (when the caller stopped the node for
        it) or now, until the node listens."""
        node = self.nodes[n]
        t = time.monotonic() if down_since is None else down_since
        for attempt in (1, 2):
            self.started_process(f"node{node.index}-{node.incarnation + 1}", node.start())
            try:
                node.wait_listening()
                break
            except fx.NodeStartError as exc:
                first = str(exc).splitlines()[0]
                if attempt == 2:
                    raise CampaignAborted(f"node {n} cannot be restarted: {exc}") from None
                if self.end_disk_full(n, "restart"):
                    # A node may refuse to start on a full disk: that is not a finding.
                    self.say(f"  node {n} did not start on a full disk; ballast removed")
                else:
                    self.notes.append(f"round {self.round}: {first}")
                    time.sleep(1.0)
        self.down.pop(n, None)
        self.record(
            Fault(
                "restart",
                n,
                t,
                time.monotonic(),
                {
                    "round": self.round,
                    "incarnation": node.incarnation,
                    "after": after,
                    "clock_offset": node.clock_offset,
                },
            )
        )

    def end_disk_full(self, n: int, why: str) -> bool:
        """End the disk-full faults of node *n* early; whether its disk was full."""
        full = (self.nodes[n].db_dir / fx.BALLAST_NAME).exists()
        for key in sorted(self.active):
            active = self.active[key]
            if active.kind == "disk-full" and active.node == n:
                active.detail["cut_short"] = why
                self.end_active(key)
        fx.remove_ballast(self.nodes[n].db_dir)
        return full

    # -- heal and checkpoint ---------------------------------------------------------

    def heal_all(self) -> float:
        """End every fault in force, restart every node that is down; the time after
        which every node is listening again."""
        for key in sorted(self.active):
            if self.active[key].kind == "stop":
                self.end_active(key)
        for key in sorted(self.active):
            self.end_active(key)
        if self.link is not None:
            self.link.heal(all_of_them=True)
            self.link.remove_delay(None)
        if self.netns is not None:
            self.netns.link_up(1, all_of_them=True)
            self.netns.link_up(2, all_of_them=True)
        for node in self.nodes.values():
            if self.use_tmpfs:
                fx.remove_ballast(node.db_dir)
            if node.stopped:
                node.cont()
        for n, node in self.nodes.items():
            if n in self.down:
                self.restart(n, after=self.down[n])
            elif not node.alive:
                note = (
                    f"node {n} (incarnation {node.incarnation}) exited by itself with "
                    f"{node.returncode} in round {self.round} (see "
                    f"{node.log_path(node.incarnation).name})"
                )
                self.notes.append(note)
                self.say("  " + note)
                self.restart(n, after="crash")
        return time.monotonic()

    def checkpoint(self, index: int, healed: float) -> None:
        """Wait until the pair settles (up to the bound), capture both states, record."""
        deadline = healed + self.options.bound
        converged_after: float | None = None
        while True:
            s1, s2 = self.status(1), self.status(2)
            now = time.monotonic()
            if s1 is not None and s2 is not None and _settled(s1, s2):
                converged_after = now - healed
                break
            if now >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        states = (self.state(1), self.state(2))
        point = Checkpoint(index, healed, converged_after is not None, converged_after, states)
        self.record(point)
        self.checkpoints.append(point)
        if converged_after is not None:
            self.say(
                f"  checkpoint {index}: converged {converged_after:.3f} s after the heal "
                f"({len(states[0].entries)} names)"
            )
        else:
            self.say(
                f"  checkpoint {index}: NOT converged within {self.options.bound:g} s "
                f"(links {states[0].status.get('link')!r} / {states[1].status.get('link')!r})"
            )
        self.collect_conflicts(final=False)

    # -- conflicts, checker, summary -------------------------------------------------

    def collect_conflicts(self, *, final: bool) -> None:
        """Parse what the node logs gained since the last call (whole lines only, unless
        *final*) and append the conflicts to ``conflicts-<node>-<incarnation>.jsonl``."""
        if self.parse_log is None:
            try:
                from pairns.chaos.conflicts import parse_log
            except ImportError as exc:
                if final:
                    self.notes.append(f"conflicts not parsed: {exc}")
                return
            self.parse_log = parse_log
        now = time.monotonic()
        for n, node in self.nodes.items():
            for k in range(1, node.incarnation + 1):
                path = node.log_path(k)
                offset = self.log_offsets.get((n, k), 0)
                try:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        data = f.read()
                except OSError:
                    continue
                if not final:
                    data = data[: data.rfind(b"\n") + 1]
                if not data:
                    continue
                self.log_offsets[(n, k)] = offset + len(data)
                found = self.parse_log(data.decode("utf-8", "replace"), node=n, incarnation=k)
                records = [attrs.evolve(r, time=now) if r.time is None else r for r in found]
                if records:
                    write_jsonl(self.out / f"conflicts-{n}-{k}.jsonl", records)

    def finish(self, aborted: str | None) -> Summary:
        records = load_run(self.out)
        ops = records.ops
        conv = tuple(
            c.convergence_seconds for c in self.checkpoints if c.convergence_seconds is not None
        )
        figures: dict[str, Any] = {
            "operations": len({(o.client, o.op_id) for o in ops}),
            "attempts": len(ops),
            "acknowledged_writes": len(
                {(o.client, o.op_id) for o in ops if o.is_write and o.status == "ok"}
            ),
            "lost": None,
            "double_applied": None,
            "phantom_reads": None,
            "failover_calls": len({(o.client, o.op_id) for o in ops if o.failover}),
        }
        ok: bool | None = None
        report_text: str | None = None
        checker_error: str | None = None
        if self.options.check:
            self.say(
                f"checking {len(ops)} attempts, {len(records.checkpoints)} checkpoints, "
                f"{len(records.conflicts)} conflicts"
            )
            try:
                report = check_run(records, seed=self.options.seed, bound=self.options.bound)
            except ImportError as exc:
                self.notes.append(f"checker not available: {exc}")
            except Exception as exc:
                checker_error = f"{type(exc).__name__}: {exc}"
                (self.out / "checker-error.txt").write_text(traceback.format_exc())
                self.say(f"the checker failed:\n{traceback.format_exc()}")
            else:
                ok = bool(report.ok)
                report_text = report.format()
                (self.out / "report.txt").write_text(report_text + "\n")
                for name in (
                    "operations",
                    "attempts",
                    "acknowledged_writes",
                    "lost",
                    "double_applied",
                    "phantom_reads",
                ):
                    figures[name] = _count(getattr(report, name))
                conv = tuple(report.convergence_seconds)
                figures["failover_failures"] = report.failover_failures
                figures["longest_gaps"] = tuple(report.longest_gaps)
        collected, held, resent = _tombstone_figures(self.checkpoints)
        return Summary(
            ok=ok,
            seed=self.options.seed,
            options=self.options.to_json(),
            out=self.out,
            faults=dict(self.injected),
            skipped=tuple(self.skipped),
            convergence_seconds=conv,
            checkpoints=len(self.checkpoints),
            converged=sum(1 for c in self.checkpoints if c.converged),
            seconds=time.monotonic() - self.started,
            aborted=aborted,
            checker_error=checker_error,
            notes=tuple(self.notes),
            report=report_text,
            pids=tuple(self.pids),
            **figures,
            tombstones_collected=collected,
            tombstones_max=held,
            deletions_resent=resent,
        )


def _tombstone_figures(checkpoints: Sequence[Checkpoint]) -> tuple[int, int, int]:
    """The summary's tombstone figures from the statuses the checkpoints captured:
    each node incarnation's counters (they start at 0 with every run of a node) at the
    last checkpoint it reached."""
    last: dict[tuple[int, str], dict[str, Any]] = {}
    held = 0
    for point in checkpoints:
        for state in point.states:
            status = state.status
            if status:
                last[(state.node, str(status.get("incarnation")))] = status
                held = max(held, int(status.get("tombstones") or 0))
    collected = sum(int(s.get("collected_tombstones") or 0) for s in last.values())
    resent = sum(int(s.get("deletions_resent") or 0) for s in last.values())
    return collected, held, resent


@attrs.frozen
class RunRecords:
    """Everything a run recorded, as the checker takes it."""

    ops: list[Op]
    checkpoints: list[Checkpoint]
    conflicts: list[ConflictRecord]
    faults: list[Fault]
    pauses: list[Pause] = attrs.field(factory=list)


def load_run(out: Path) -> RunRecords:
    """Read a run's ``ops-*.jsonl``, ``events.jsonl`` and ``conflicts-*.jsonl``."""
    ops = [r for p in sorted(out.glob("ops-*.jsonl")) for r in read_jsonl(p) if isinstance(r, Op)]
    events_path = out / "events.jsonl"
    events = list(read_jsonl(events_path)) if events_path.exists() else []
    conflicts = [
        r
        for p in sorted(out.glob("conflicts-*.jsonl"))
        for r in read_jsonl(p)
        if isinstance(r, ConflictRecord)
    ]
    return RunRecords(
        ops=ops,
        checkpoints=[r for r in events if isinstance(r, Checkpoint)],
        conflicts=conflicts,
        faults=[r for r in events if isinstance(r, Fault)],
        pauses=[r for r in events if isinstance(r, Pause)],
    )


def check_run(records: RunRecords, *, seed: int | None, bound: float) -> Any:
    """Run the checker (:func:`pairns.chaos.checker.check`) over *records*; its report.
    The checker is imported here, so the runner works (``--no-check``) without it."""
    from pairns.chaos.checker import check

    return check(
        records.ops,
        records.checkpoints,
        records.conflicts,
        records.faults,
        pauses=records.pauses,
        seed=seed,
        bound=bound,
    )


def _settled(s1: dict[str, Any], s2: dict[str, Any]) -> bool:
    """Both nodes hold the same entries and will not change by themselves: equal
    digests, both links paired, nothing unacknowledged either way. (Equal digests alone
    can be a moment in the middle of a resync.)"""
    return (
        s1.get("digest") == s2.get("digest")
        and s1.get("link") == s2.get("link") == "paired"
        and s1.get("unacked_changes") == s2.get("unacked_changes") == 0
    )


def _brief(detail: dict[str, Any]) -> str:
    shown = {k: v for k, v in detail.items() if k not in ("round",)}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _validate(options: CampaignOptions) -> None:
    if options.rounds is not None and options.duration is not None:
        raise ValueError("give rounds or duration, not both")
    if not 1 <= options.clients <= 64:
        raise ValueError(f"clients must be within 1..64, got {options.clients}")
    if not 0 <= options.failover_clients <= 64:
        raise ValueError(f"failover clients must be within 0..64, got {options.failover_clients}")
    if not 0 < options.failover_timeout <= 60:
        raise ValueError(f"failover timeout must be within 0..60 s, got {options.failover_timeout}")
    if options.clock_mode not in ("injected", "faketime"):
        raise ValueError(f"clock mode must be injected or faketime, got {options.clock_mode!r}")
    if options.clock_mode == "faketime" and fx.find_faketime() is None:
        raise ValueError("clock mode faketime needs libfaketime (apt-get install faketime)")
    if options.topology not in ("loopback", "netns"):
        raise ValueError(f"topology must be loopback or netns, got {options.topology!r}")
    if options.topology == "netns" and (problem := fx.netns_problem()) is not None:
        raise ValueError(f"the netns topology is not possible here: {problem}")
    if not 0 < options.bound <= 600:
        raise ValueError(f"bound must be within 0..600 s, got {options.bound}")
    if not 0 < options.client_timeout <= 60:
        raise ValueError(f"client timeout must be within 0..60 s, got {options.client_timeout}")
    if not 0 <= options.client_rate <= 100_000:
        raise ValueError(f"client rate must be within 0..100000 a second: {options.client_rate}")
    if (
        options.pairns_path is not None
        and not (options.pairns_path / "pairns" / "cli" / "server.py").is_file()
    ):
        raise ValueError(f"--pairns-path {options.pairns_path} holds no pairns/cli/server.py")


def _output_dir(options: CampaignOptions) -> Path:
    if options.out is not None:
        out = options.out
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"output directory {out} is not empty")
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = Path("/tmp/pairns-chaos") / f"{stamp}-seed{options.seed}"
        if out.exists():
            out = out.with_name(f"{out.name}-{os.getpid()}")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()
