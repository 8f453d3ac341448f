"""Issue 21: ``pairns-supervise`` with real processes on 127.0.0.1.

A node killed by SIGKILL is restarted on its data; SIGTERM/SIGINT stop the node and
then the supervisor (0); a node that keeps failing spends the budget (1); a
configuration error is not restarted (2); a node that does not stop in time is killed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from _support import (
    HOST,
    LAST_BANNER_LINE,
    PYTHON,
    START_TIMEOUT,
    NodeProcess,
    clean_env,
    free_ports,
    run_ctl,
    wait_until,
)

SUPERVISE_CMD = [PYTHON, "-m", "pairns.cli.supervise"]
STARTED_RE = re.compile(r"started the node \(pid (\d+)\)")


def node_pids(supervisor: NodeProcess) -> list[int]:
    """The node pids the supervisor started, in order (it logs them with -v)."""
    return [int(pid) for pid in STARTED_RE.findall(supervisor.stderr())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def supervise(tmp_path: Path, *args: str, name: str = "supervised") -> NodeProcess:
    return NodeProcess(
        list(args),
        workdir=tmp_path / "logs",
        storage=tmp_path / "storage",
        cmd=SUPERVISE_CMD,
        name=name,
    )


def run_supervisor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a supervisor that is expected to end by itself."""
    (tmp_path / "storage").mkdir(exist_ok=True)
    return subprocess.run(
        [*SUPERVISE_CMD, *args],
        capture_output=True,
        text=True,
        timeout=4 * START_TIMEOUT,
        env=clean_env(PYRO_STORAGE=str(tmp_path / "storage")),
        cwd=tmp_path / "storage",
        stdin=subprocess.DEVNULL,
    )


def test_a_killed_node_is_restarted_on_its_data_and_sigterm_stops_both(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    db = tmp_path / "db"
    sup = supervise(
        tmp_path, "--backoff-max", "0.5", "-n", HOST, "-p", str(port), "-d", str(db), "-v"
    )
    try:
        sup.wait_started()
        registered = run_ctl(port, "register", ":Default.kept", "PYRO://127.0.0.1:1/kept")
        assert registered.returncode == 0, registered.stderr
        (first,) = node_pids(sup)
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            return len(node_pids(sup)) == 2 and sup.stdout().count(LAST_BANNER_LINE) == 2

        assert wait_until(restarted, START_TIMEOUT), sup.stderr()
        second = node_pids(sup)[1]
        assert second != first and alive(second)
        assert "the node was killed by SIGKILL; restarting it in 0.5 s" in sup.stderr()
        resolved = run_ctl(port, "resolve", ":Default.kept")
        assert resolved.returncode == 0, resolved.stderr
        assert "PYRO://127.0.0.1:1/kept" in resolved.stdout
        assert sup.terminate() == 0
        assert not alive(second)
        # The node stopped cleanly (SIGTERM forwarded), and was not restarted.
        assert sup.stdout().count("pairns name server stopped") == 1
        assert "received SIGTERM, shutting down" in sup.stderr()
        assert len(node_pids(sup)) == 2
    finally:
        sup.kill()


def test_sigint_is_forwarded_and_a_node_that_does_not_stop_is_killed(tmp_path: Path) -> None:
    sup = supervise(tmp_path, "--stop-timeout", "1", "-n", HOST, "-p", "0", "-v")
    try:
        sup.wait_started()
        (pid,) = node_pids(sup)
        os.kill(pid, signal.SIGSTOP)  # a node that hangs: it cannot handle the signal
        sup.proc.send_signal(signal.SIGINT)
        assert sup.wait_exit() == 1
        assert not alive(pid)
        err = sup.stderr()
        assert "the node was killed by SIGKILL after SIGINT was forwarded to it" in err
        assert "(it did not stop within 1 s: killed)" in err
    finally:
        sup.kill()


def test_a_node_that_keeps_failing_spends_the_budget(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind((HOST, 0))
    taken.listen()
    port = taken.getsockname()[1]
    log_file = tmp_path / "ns.log"
    try:
        done = run_supervisor(
            tmp_path,
            "--max-restarts", "2", "--backoff-max", "0.2",
            "--", "-n", HOST, "-p", str(port), "-v",
            "--log-format", "json", "--log-file", str(log_file),
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("pairns: cannot start") == 3
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    mine = [line for line in lines if line["logger"] == "pairns.supervise"]
    assert [line["message"].split(" (pid")[0] for line in mine if "pid" in line][:1] == [
        "started the node"
    ]
    restarts = [line for line in mine if line.get("outcome") == "abnormal"]
    assert [line.get("restart") for line in restarts] == [1, 2, None]
    assert restarts[0]["exit_code"] == 1 and restarts[0]["delay"] == 0.2
    assert restarts[-1]["level"] == "ERROR"
    assert restarts[-1]["message"].startswith(
        "giving up: the node exited with 1, and it was restarted 2 times"
    )


def test_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    done = run_supervisor(tmp_path, "-n", HOST, "-p", "70000")
    assert done.returncode == 2
    assert done.stderr.count("pairns: configuration error: -p must be an integer") == 1
    assert "a usage or configuration error (its message is above); not restarting" in done.stderr


def test_a_clean_exit_of_the_node_ends_the_supervisor(tmp_path: Path) -> None:
    sup = supervise(tmp_path, "-n", HOST, "-p", "0", "-v")
    try:
        sup.wait_started()
        assert run_ctl(sup.port, "shutdown").returncode == 0  # the node exits 0 by itself
        assert sup.wait_exit() == 0
        assert "the node exited with 0: it stopped cleanly" in sup.stderr()
        assert len(node_pids(sup)) == 1
    finally:
        sup.kill()
