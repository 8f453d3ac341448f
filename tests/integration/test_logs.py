"""Issue 21: a pair logging JSON to files: every line parses, the link's changes are
there on both sides, and a killed twin shows as ``paired -> down``."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from _support import HOST, NodeProcess, free_ports, run_ctl, wait_until

PEER_TIMEOUT = "1"


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log file, parsed (a torn last line fails the test)."""
    if not path.exists():
        return []
    parsed = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def changes(path: Path) -> list[tuple[str, str]]:
    return [(p["previous_state"], p["link_state"]) for p in lines(path) if "link_state" in p]


def test_a_pair_logging_json_to_files(tmp_path: Path) -> None:
    p1, p2 = free_ports(2)
    logs = {1: tmp_path / "ns1.log", 2: tmp_path / "ns2.log"}
    nodes: list[NodeProcess] = []
    try:
        for role, port, twin in ((1, p1, p2), (2, p2, p1)):
            nodes.append(
                NodeProcess(
                    [
                        "-n",
                        HOST,
                        "-p",
                        str(port),
                        f"-{role}",
                        f"{HOST}:{twin}",
                        "-v",
                        "--log-format",
                        "json",
                        "--log-file",
                        str(logs[role]),
                    ],
                    workdir=tmp_path / "out",
                    storage=tmp_path / f"storage{role}",
                    env={"PYRO_NS_PEER_TIMEOUT": PEER_TIMEOUT},
                    name=f"n{role}",
                )
            )
            nodes[-1].wait_started()
        n1, n2 = nodes
        both = (logs[1], logs[2])
        assert wait_until(lambda: all(("syncing", "paired") in changes(p) for p in both), 20)
        # The banner is unchanged on stdout; the log went to the file, not to stderr.
        assert "pairns name server listening on" in n1.stdout()
        assert n1.stderr() == "" and n2.stderr() == ""
        for role, path in logs.items():
            seen = changes(path)
            assert seen[-3:] == [
                ("connecting", "handshaking"),
                ("handshaking", "syncing"),
                ("syncing", "paired"),
            ], (role, seen)
            for line in lines(path):
                assert {"time", "level", "logger", "message"} <= set(line)
                assert line["time"].endswith("Z") and "T" in line["time"]
            link = [p for p in lines(path) if "link_state" in p]
            twin = f"{HOST}:{p2 if role == 1 else p1}"
            assert all(p["twin"] == twin for p in link)
            assert all(p["message"].startswith("twin link: ") for p in link)
            synced = next(p for p in link if p["link_state"] == "syncing")
            assert synced["resync"] == "full" and synced["twin_node"]
            assert link[-1]["level"] == "WARNING" and link[-1]["node"]
        assert run_ctl(p1, "register", ":Default.x", "PYRO://127.0.0.1:1/x").returncode == 0
        n2.proc.send_signal(signal.SIGKILL)
        n2.proc.wait(timeout=10)

        def dropped() -> bool:
            return ("paired", "down") in changes(logs[1])

        assert wait_until(dropped, 10), changes(logs[1])
        down = [p for p in lines(logs[1]) if p.get("link_state") == "down"][-1]
        assert down["previous_state"] == "paired" and down["reason"]
        assert down["level"] == "WARNING"
    finally:
        for node in nodes:
            node.kill()
