"""Helpers for the integration tests: real ``pairns`` processes on loopback.

Everything here talks to 127.0.0.1 only, bounds every wait with a timeout, and ends
only the processes it started (by their ``Popen`` handle, never by name).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_ports(count: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> list[int]:
    """*count* distinct ports on :data:`HOST` that were free a moment ago (TCP, or UDP
    with ``kind=socket.SOCK_DGRAM``): all are bound at once, so none repeats."""
    socks = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()
PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]

#: The server and the control tool, run with this interpreter (works from a fresh clone
#: whose venv ``make`` created, and whether or not the console scripts are on PATH).
SERVER_CMD = [PYTHON, "-m", "pairns.cli.server"]
CTL_CMD = [PYTHON, "-m", "pairns.cli.ctl"]

LISTEN_RE = re.compile(r"^pairns name server listening on (\S+):(\d+)$", re.M)
#: The last line the server prints at start; once it is out, the banner is complete.
LAST_BANNER_LINE = "URI file: "

#: Seconds a node may take to print its banner (generous: 2-core CI machines).
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CTL_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment minus any ``PYRO_*`` setting, plus *extra*; the
    network guard (tests/netguard) is installed in the processes started with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRO_")}
    # tests/netguard: its sitecustomize keeps the process's datagrams on loopback.
    paths = (str(REPO / "tests" / "netguard"), str(REPO), os.environ.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class NodeProcess:
    """A running ``pairns`` process; stdout and stderr go to files in *workdir*."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        workdir: Path,
        storage: Path,
        env: dict[str, str] | None = None,
        name: str = "node",
        cmd: Sequence[str] | None = None,
    ) -> None:
        self.args = list(args)
        self.workdir = workdir
        self.storage = storage
        workdir.mkdir(parents=True, exist_ok=True)
        storage.mkdir(parents=True, exist_ok=True)
        stamp = f"{name}-{time.monotonic_ns()}"
        self.stdout_path = workdir / f"{stamp}.out"
        self.stderr_path = workdir / f"{stamp}.err"
        full_env = clean_env(PYRO_STORAGE=str(storage))
        if env:
            full_env.update(env)
        self.started_at = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*(cmd or SERVER_CMD), *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=workdir,
            )
        self.host = ""
        self.port = 0
        self.banner = ""
        self.startup_seconds = 0.0
        self.listening_seconds = 0.0

    # A node unpacks as (host, port, proc), the shape the fixtures promise.
    def __iter__(self) -> Iterator[Any]:
        return iter((self.host, self.port, self.proc))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_started(self, timeout: float = START_TIMEOUT) -> NodeProcess:
        """Wait for the whole start banner; raise with the node's output if it fails."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout()
            match = LISTEN_RE.search(text)
            if match and self.listening_seconds == 0.0:
                self.listening_seconds = time.monotonic() - self.started_at
            if match and LAST_BANNER_LINE in text and text.endswith("\n"):
                self.host, self.port = match.group(1), int(match.group(2))
                self.banner = text
                self.startup_seconds = time.monotonic() - self.started_at
                return self
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"pairns {self.args} exited with {self.proc.returncode} before it "
                    f"listened\nstdout:\n{text}\nstderr:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"pairns {self.args} did not start within {timeout} s\n"
                    f"stdout:\n{text}\nstderr:\n{self.stderr()}"
                )
            time.sleep(0.01)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to end by itself; its exit code."""
        return self.proc.wait(timeout=timeout)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait (SIGKILL if it does not stop in time); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel is stuck
            pass

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


def run_ctl(
    port: int | None,
    *args: str,
    ident: str | None = None,
    json_out: bool = False,
    host: str = HOST,
    timeout: float = CTL_TIMEOUT,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``pairns-ctl`` against host:port; the completed process (text). *env* adds
    variables to the clean environment."""
    cmd = [*CTL_CMD, "-h", host]
    if port is not None:
        cmd += ["-p", str(port)]
    if ident is not None:
        cmd += ["-i", ident]
    cmd += ["--timeout", "10"]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(**(env or {})), cwd=cwd
    )


def run_server_to_exit(
    args: Sequence[str],
    *,
    storage: Path,
    env: dict[str, str] | None = None,
    cmd: Sequence[str] | None = None,
    timeout: float = START_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a ``pairns`` that is expected to refuse to start; kill it if it does start."""
    full_env = clean_env(PYRO_STORAGE=str(storage))
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        [*(cmd or SERVER_CMD), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=storage,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
        raise AssertionError(f"pairns {args} did not exit (it should refuse to start)\n{out}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll *predicate* until it is true or *timeout* passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


def check_banner(node: NodeProcess, *, identification: bool = False) -> None:
    """The start banner names the URI, the address, identification and the URI file."""
    banner = node.banner
    uri = f"PYRO://{HOST}:{node.port}/Pyro.NameServer"
    assert node.host == HOST
    assert node.port > 0
    assert f"pairns name server listening on {HOST}:{node.port}\n" in banner
    assert f"URI: {uri}\n" in banner
    if identification:
        assert "identification: required\n" in banner
    else:
        assert "identification: NOT required" in banner
    uri_file = node.storage / "Pyro_NS_URI"
    assert f"URI file: {uri_file.resolve()}\n" in banner
    assert uri_file.read_text().strip() == uri
