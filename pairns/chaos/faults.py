"""Fault injectors for chaos campaigns: node processes, link proxies, clocks, tmpfs, netns.

Everything here acts on things the campaign itself started or made: processes are
signalled by their pid, proxies are :class:`~pairns.testing.faultproxy.FaultProxyProcess`
children on loopback, tmpfs mounts and network namespaces carry the runner's pid in
their names, and every wait is bounded. Linux only (signals, ``mount``, ``ip netns``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from pairns.testing.faultproxy import FaultProxyProcess

__all__ = [
    "BALLAST_NAME",
    "LoopbackLink",
    "NetnsPair",
    "Node",
    "NodeStartError",
    "clear_directory",
    "clean_env",
    "cleanup_leftover_mounts",
    "copy_directory",
    "fill_ballast",
    "find_faketime",
    "is_root",
    "mount_tmpfs",
    "pid_alive",
    "remove_ballast",
    "unmount",
]

T = TypeVar("T")

#: Seconds a node may take to print its banner (2-core machines under load).
START_TIMEOUT: Final = 20.0
#: Seconds a node may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 10.0
#: Seconds any helper command (``ip``, ``mount``, ``cp``) may take.
COMMAND_TIMEOUT: Final = 30.0

LISTEN_RE: Final = re.compile(r"^pairns name server listening on (\S+):(\d+)$", re.M)
#: The banner's last line: once it is out, the node is serving.
LAST_BANNER_LINE: Final = "URI file: "

#: The file that fills a node's tmpfs during a ``disk-full`` fault.
BALLAST_NAME: Final = "chaos-ballast"

#: Where Debian's ``faketime`` package puts the preload library.
FAKETIME_CANDIDATES: Final = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)

#: Environment variables a node must not inherit from the runner's environment.
_NODE_ENV_DROP: Final = ("LD_PRELOAD", "PAIRNS_CLOCK_OFFSET")


def is_root() -> bool:
    """Whether this process may mount file systems and make network namespaces."""
    return os.geteuid() == 0


@functools.cache
def tmpfs_problem() -> str | None:
    """Why this process cannot mount a tmpfs for ``disk-full`` faults (None: it can).

    Root is not always enough (a container without ``CAP_SYS_ADMIN``): a tiny tmpfs is
    mounted and unmounted once to find out.
    """
    if not is_root():
        return ROOT_REASON["disk-full"]
    with tempfile.TemporaryDirectory(prefix="pairns-chaos-probe-") as probe:
        result = run_command(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], check=False
        )
        if result.returncode != 0:
            return f"cannot mount a tmpfs here: {(result.stderr or result.stdout).strip()}"
        run_command(["umount", probe], check=False)
    return None


@functools.cache
def netns_problem() -> str | None:
    """Why this process cannot make network namespaces for the ``netns`` topology
    (None: it can): root, the ``ip`` command, and a namespace made and removed once."""
    if not is_root():
        return ROOT_REASON["netns"]
    if shutil.which("ip") is None:
        return "the ip command (Debian package iproute2) is not installed"
    name = f"pairns-chaos-probe-{os.getpid()}"
    result = run_command(["ip", "netns", "add", name], check=False)
    if result.returncode != 0:
        return f"cannot make a network namespace here: {(result.stderr or '').strip()}"
    run_command(["ip", "netns", "delete", name], check=False)
    return None


#: Why the root-only kinds are dropped for a process that is not root.
ROOT_REASON: Final = {
    "disk-full": "needs root to mount a tmpfs per node",
    "netns": "needs root to create network namespaces",
}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_env(pythonpath: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``PYRO_*``, faketime or clock settings, with
    ``PYTHONPATH`` set to *pythonpath* and unbuffered output, plus *extra*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYRO_", "FAKETIME")) and k not in _NODE_ENV_DROP
    }
    env["PYTHONPATH"] = pythonpath
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def find_faketime() -> Path | None:
    """The libfaketime preload library, if installed (Debian package ``faketime``)."""
    for candidate in FAKETIME_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def clock_env(mode: str, offset: float, faketime: Path | None) -> dict[str, str]:
    """The environment that gives a node a wall clock *offset* seconds off.

    ``injected``: ``PAIRNS_CLOCK_OFFSET`` (read by the server itself). ``faketime``:
    libfaketime preloaded, the monotonic clock left alone (Trio needs the real one).
    """
    if offset == 0.0:
        return {}
    if mode == "injected":
        return {"PAIRNS_CLOCK_OFFSET": repr(float(offset))}
    if faketime is None:
        raise RuntimeError("clock mode faketime needs libfaketime (apt-get install faketime)")
    return {
        "LD_PRELOAD": str(faketime),
        "FAKETIME": f"{offset:+.3f}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


def death_signal_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` when available and called from the main thread:
    a child then dies with the runner even if the runner is killed outright."""
    if threading.current_thread() is not threading.main_thread():
        return []  # the signal fires when the *thread* that forked exits
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def run_command(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a helper command (bounded); raise ``RuntimeError`` with its output if it fails
    and *check* is true."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


# --------------------------------------------------------------------------- nodes


class NodeStartError(RuntimeError):
    """A node process exited or stayed silent instead of printing its banner."""


class Node:
    """One ``pairns`` node of the pair, across its incarnations (restarts).

    Each incarnation's stdout goes to ``node<N>-<k>.out`` and its stderr (the log) to
    ``node<N>-<k>.log`` in *log_dir*. The node keeps its port, database directory and
    clock offset across restarts until they are changed.
    """

    def __init__(
        self,
        index: int,
        *,
        host: str,
        port: int,
        twin: str,
        node_dir: Path,
        db_dir: Path,
        log_dir: Path,
        pythonpath: str,
        prefix: Sequence[str] = (),
        clock_mode: str = "injected",
        faketime: Path | None = None,
        peer_timeout: float = 1.0,
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.twin = twin
        self.node_dir = node_dir
        self.db_dir = db_dir
        self.log_dir = log_dir
        self.pythonpath = pythonpath
        self.prefix = list(prefix)
        self.clock_mode = clock_mode
        self.faketime = faketime
        self.peer_timeout = peer_timeout
        self.clock_offset = 0.0
        self.incarnation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False
        self._stdout: Path | None = None

    @property
    def role(self) -> str:
        """``-1`` or ``-2``."""
        return f"-{self.index}"

    def argv(self) -> list[str]:
        """The server's command line (without the namespace prefix)."""
        return [
            sys.executable,
            "-m",
            "pairns.cli.server",
            "-n",
            self.host,
            "-p",
            str(self.port),
            self.role,
            self.twin,
            "-d",
            str(self.db_dir),
            # No discovery: its start-up check would add a broadcast round to every
            # restart, and the suite's clients know where the nodes are.
            "-x",
        ]

    def env(self) -> dict[str, str]:
        """The node process's environment for its current clock offset."""
        extra = {
            "PYRO_STORAGE": str(self.node_dir),
            "PYRO_NS_PEER_TIMEOUT": f"{self.peer_timeout:g}",
        }
        extra.update(clock_env(self.clock_mode, self.clock_offset, self.faketime))
        return clean_env(self.pythonpath, extra)

    def log_path(self, incarnation: int) -> Path:
        """The stderr log of *incarnation*."""
        return self.log_dir / f"node{self.index}-{incarnation}.log"

    def start(self) -> int:
        """Start the next incarnation; its pid (does not wait: see :meth:`wait_listening`)."""
        if self.alive:
            raise RuntimeError(f"node {self.index} is already running (pid {self.pid})")
        self.incarnation += 1
        self.node_dir.mkdir(parents=True, exist_ok=True)
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self._stdout = self.log_dir / f"node{self.index}-{self.incarnation}.out"
        with (
            open(self._stdout, "wb") as out,
            open(self.log_path(self.incarnation), "wb") as err,
        ):
            self.proc = subprocess.Popen(
                [*self.prefix, *death_signal_prefix(), *self.argv()],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env(),
                cwd=self.node_dir,
            )
        self.stopped = False
        return self.proc.pid

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for the whole start banner; raise :class:`NodeStartError` (with the tail
        of the log) if the process exits or stays silent for *timeout* seconds."""
        assert self.proc is not None and self._stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            text = self._stdout.read_text(errors="replace")
            if LISTEN_RE.search(text) and LAST_BANNER_LINE in text and text.endswith("\n"):
                return
            if self.proc.poll() is not None:
                raise NodeStartError(
                    f"node {self.index} (incarnation {self.incarnation}) exited with "
                    f"{self.proc.returncode} before it listened:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise NodeStartError(
                    f"node {self.index} (incarnation {self.incarnation}) did not start "
                    f"within {timeout:g} s:\n{self.log_tail()}"
                )
            time.sleep(0.01)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the current incarnation's log."""
        try:
            return self.log_path(self.incarnation).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        """The current incarnation's pid (None before the first start)."""
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether the current incarnation is running (stopped counts as running)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The current incarnation's exit status once it has ended."""
        return None if self.proc is None else self.proc.poll()

    def _signal(self, sig: signal.Signals) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> bool:
        """SIGSTOP (freeze); False if the node is not running."""
        if self._signal(signal.SIGSTOP):
            self.stopped = True
            return True
        return False

    def cont(self) -> bool:
        """SIGCONT; False if the node was not stopped."""
        was = self.stopped
        self.stopped = False
        return self._signal(signal.SIGCONT) and was

    def resume(self) -> None:
        """SIGCONT if stopped (a heal callback)."""
        self.cont()

    def kill(self) -> None:
        """SIGKILL (if running) and reap."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.stopped = False

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGCONT + SIGTERM, wait up to *timeout* s, then SIGKILL; the exit status."""
        if self.proc is None:
            return None
        self._signal(signal.SIGCONT)
        self.stopped = False
        self._signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.poll()


# --------------------------------------------------------------------------- directories


def copy_directory(source: Path, dest: Path) -> None:
    """``cp -a SOURCE/. DEST`` (the contents, so a mount point can be either end)."""
    dest.mkdir(parents=True, exist_ok=True)
    run_command(["cp", "-a", f"{source}/.", str(dest)])


def clear_directory(path: Path) -> None:
    """Delete what *path* holds, keeping *path* itself (it may be a mount point)."""
    if not path.exists():
        path.mkdir(parents=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink(missing_ok=True)


def fill_ballast(directory: Path, limit: int = 1 << 30) -> int:
    """Fill *directory*'s file system with a ballast file until ENOSPC; bytes written.

    Stops at *limit* bytes (the tmpfs is far smaller; this bounds a mistake).
    """
    path = directory / BALLAST_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    written = 0
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            block = b"\0" * size
            while written < limit:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
    finally:
        os.close(fd)
    return written


def remove_ballast(directory: Path) -> bool:
    """Delete the ballast file; whether there was one."""
    path = directory / BALLAST_NAME
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def mount_tmpfs(path: Path, size: str = "64m") -> None:
    """Mount a tmpfs of *size* on *path* (root only)."""
    path.mkdir(parents=True, exist_ok=True)
    run_command(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)])


def unmount(path: Path) -> None:
    """Unmount *path* (lazily if it is busy); quiet if it is not mounted."""
    if not _is_mount(path):
        return
    if run_command(["umount", str(path)], check=False).returncode != 0:
        run_command(["umount", "-l", str(path)], check=False)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of this mount namespace."""
    result = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                result.append((fields[1].replace("\\040", " "), fields[2]))
    return result


def _is_mount(path: Path) -> bool:
    where = str(path.resolve())
    return any(point == where for point, _ in _mounts())


#: The file a run writes at its top so that a later run can tell whether it is dead.
PID_FILE: Final = "runner.pid"


def cleanup_leftover_mounts() -> list[str]:
    """Unmount node tmpfs mounts (``.../node<N>/db``) whose run (``../../runner.pid``)
    is dead: what a run killed before its own cleanup left. The mount points done."""
    done = []
    for point, fstype in _mounts():
        path = Path(point)
        if (
            fstype != "tmpfs"
            or path.name != "db"
            or not re.fullmatch(r"node[12]", path.parent.name)
        ):
            continue
        pid_file = path.parent.parent / PID_FILE
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            unmount(path)
            done.append(point)
    return done


# --------------------------------------------------------------------------- loopback link


class LoopbackLink:
    """The pair's link through two fault proxies on loopback.

    ``to_node1`` is node 2's twin address (it forwards to node 1's port) and
    ``to_node2`` node 1's. Partitions and delays nest: the link heals when the last
    one ends.
    """

    def __init__(self, port1: int, port2: int) -> None:
        # The children die with the runner (setpriv --pdeathsig), so that not even a
        # runner killed with SIGKILL leaves them behind.
        prefix = death_signal_prefix()
        self.to_node1 = FaultProxyProcess(("127.0.0.1", port1), prefix=prefix)
        self.to_node2 = FaultProxyProcess(("127.0.0.1", port2), prefix=prefix)
        self._partitions = 0
        self._delays: list[float] = []

    @property
    def proxies(self) -> tuple[FaultProxyProcess, FaultProxyProcess]:
        """Both proxies."""
        return (self.to_node1, self.to_node2)

    def start(self) -> None:
        """Start both proxy processes (stopping what started if one fails)."""
        try:
            for proxy in self.proxies:
                proxy.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill both proxy processes by pid."""
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                proxy.stop()

    def partition(self) -> None:
        """Black-hole both directions (nested)."""
        self._partitions += 1
        for proxy in self.proxies:
            proxy.partition()

    def heal(self, *, all_of_them: bool = False) -> None:
        """End one partition (or every one); traffic flows when none is left."""
        self._partitions = 0 if all_of_them else max(0, self._partitions - 1)
        if self._partitions == 0:
            for proxy in self.proxies:
                proxy.heal()

    @property
    def partitioned(self) -> bool:
        """Whether a partition is in force."""
        return self._partitions > 0

    def cut(self, *, reset: bool) -> None:
        """Close every connection through both proxies (RST with *reset*)."""
        for proxy in self.proxies:
            proxy.cut(reset=reset)

    def add_delay(self, seconds: float) -> None:
        """Delay every chunk by *seconds* (the largest of the delays in force applies)."""
        self._delays.append(seconds)
        self._apply_delay()

    def remove_delay(self, seconds: float | None = None) -> None:
        """End one delay (*seconds*), or every delay with ``None``."""
        if seconds is None:
            self._delays.clear()
        elif seconds in self._delays:
            self._delays.remove(seconds)
        self._apply_delay()

    def _apply_delay(self) -> None:
        for proxy in self.proxies:
            proxy.set_delay(max(self._delays, default=0.0))


# --------------------------------------------------------------------------- network namespaces

_CLONE_NEWNET: Final = 0x40000000
_NETNS_RE: Final = re.compile(r"^pairns-chaos-(\d+)-[ab]$")
_VETH_RE: Final = re.compile(r"^pnsc(\d+)[ab]$")


def _enter_netns(name: str) -> None:
    """Move the calling thread into network namespace *name* (``/run/netns/NAME``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsPair:
    """Two network namespaces joined by a veth pair, for real partitions.

    Namespace ``pairns-chaos-<pid>-a`` holds ``10.231.<x>.1/24`` on veth
    ``pnsc<pid>a``, ``...-b`` holds ``.2`` on ``pnsc<pid>b``; nothing else is routed
    (no default route, no link to the host's namespace). Calls into a namespace run on a
    thread that entered it (``setns`` is per thread). :meth:`delete` removes both
    namespaces (and so the veth pair).
    """

    def __init__(self, tag: int | None = None) -> None:
        self.tag = os.getpid() if tag is None else tag
        self.names = (f"pairns-chaos-{self.tag}-a", f"pairns-chaos-{self.tag}-b")
        self.veths = (f"pnsc{self.tag}a", f"pnsc{self.tag}b")
        subnet = self.tag % 250 + 1
        self.addresses = (f"10.231.{subnet}.1", f"10.231.{subnet}.2")
        self._executors: dict[int, ThreadPoolExecutor] = {}
        self._down: dict[int, int] = {1: 0, 2: 0}

    def name(self, side: int) -> str:
        """The namespace of *side* (1 = node 1's, 2 = node 2's)."""
        return self.names[side - 1]

    def address(self, side: int) -> str:
        """The private address in *side*'s namespace."""
        return self.addresses[side - 1]

    def prefix(self, side: int) -> list[str]:
        """The command prefix that runs a program inside *side*'s namespace."""
        return ["ip", "netns", "exec", self.name(side)]

    def create(self) -> None:
        """Make both namespaces, the veth pair, the addresses; bring everything up.
        Anything half made is deleted if a step fails."""
        try:
            for name in self.names:
                run_command(["ip", "netns", "add", name])
            a, b = self.veths
            run_command(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            for side in (1, 2):
                veth, ns = self.veths[side - 1], self.name(side)
                run_command(["ip", "link", "set", veth, "netns", ns])
                run_command(
                    ["ip", "-n", ns, "addr", "add", f"{self.address(side)}/24", "dev", veth]
                )
                run_command(["ip", "-n", ns, "link", "set", "lo", "up"])
                run_command(["ip", "-n", ns, "link", "set", veth, "up"])
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Delete both namespaces and the veth pair, whatever is left of them."""
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()
        existing = _netns_names()
        for name in self.names:
            if name in existing:
                run_command(["ip", "netns", "del", name], check=False)
        for veth in self.veths:
            if _link_exists(veth):
                run_command(["ip", "link", "del", veth], check=False)

    def link_down(self, side: int) -> None:
        """Take *side*'s veth down: the twin's traffic is black-holed (nested)."""
        self._down[side] += 1
        run_command(["ip", "-n", self.name(side), "link", "set", self.veths[side - 1], "down"])

    def link_up(self, side: int, *, all_of_them: bool = False) -> None:
        """End one partition of *side* (or all); the veth comes up when none is left."""
        self._down[side] = 0 if all_of_them else max(0, self._down[side] - 1)
        if self._down[side] == 0:
            run_command(["ip", "-n", self.name(side), "link", "set", self.veths[side - 1], "up"])

    @property
    def partitioned(self) -> bool:
        """Whether either veth is down."""
        return any(self._down.values())

    def run_in(self, side: int, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run ``fn(*args)`` on a thread inside *side*'s namespace; its result."""
        executor = self._executors.get(side)
        if executor is None:
            executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{side}",
                initializer=_enter_netns,
                initargs=(self.name(side),),
            )
            self._executors[side] = executor
        return executor.submit(fn, *args).result(timeout=timeout)

    @staticmethod
    def cleanup_leftovers() -> list[str]:
        """Delete namespaces and veths of this naming scheme whose runner pid is dead."""
        done = []
        for name in _netns_names():
            match = _NETNS_RE.match(name)
            if match and not pid_alive(int(match.group(1))):
                run_command(["ip", "netns", "del", name], check=False)
                done.append(name)
        proc = run_command(["ip", "-o", "link", "show"], check=False)
        for line in proc.stdout.splitlines():
            fields = line.split(":")
            if len(fields) < 2:
                continue
            veth = fields[1].strip().split("@")[0]
            match = _VETH_RE.match(veth)
            if match and not pid_alive(int(match.group(1))):
                run_command(["ip", "link", "del", veth], check=False)
                done.append(veth)
        return done


def _netns_names() -> list[str]:
    proc = run_command(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _link_exists(name: str) -> bool:
    return run_command(["ip", "link", "show", name], check=False).returncode == 0
