"""``pairns --admin-ident/--allow/-s`` and ``pairns-ctl --admin-ident`` as processes
(issue 22), on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _support import CTL_CMD, HOST, NodeProcess, clean_env, run_ctl, run_server_to_exit


def ctl_env(tmp_path: Path, port: int, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [*CTL_CMD, "-h", HOST, "-p", str(port), "--timeout", "10", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=30, env=clean_env(**env), cwd=tmp_path
    )


def test_ctl_admin_calls_need_the_admin_identification(tmp_path: Path) -> None:
    node = NodeProcess(
        ["-n", HOST, "-p", "0", "-x"],
        workdir=tmp_path / "logs",
        storage=tmp_path / "n",
        env={"PYRO_NS_ADMIN_IDENTIFICATION": "s3cret"},
    ).wait_started()
    try:
        assert "admin calls (shutdown, resync, load): need the admin identification" in node.banner
        dump = tmp_path / "dump.jsonl"
        entry = {"name": ":G", "kind": "group", "uri": None, "meta": None}
        dump.write_text(json.dumps(entry) + "\n")
        refused = run_ctl(node.port, "load", str(dump))
        assert refused.returncode == 3, refused
        assert "admin identification required" in refused.stderr
        wrong = run_ctl(node.port, "--admin-ident", "nope", "shutdown")
        assert wrong.returncode == 3 and "incorrect admin identification" in wrong.stderr
        loaded = run_ctl(node.port, "--admin-ident", "s3cret", "--json", "load", str(dump))
        assert loaded.returncode == 0, loaded
        assert json.loads(loaded.stdout) == {"loaded": 1, "existed": []}
        status = json.loads(run_ctl(node.port, "--json", "status").stdout)
        assert status["admin_refusals"] == 2
        # The environment variable works as the flag does.
        stopped = ctl_env(tmp_path, node.port, "shutdown", PYRO_NS_ADMIN_IDENTIFICATION="s3cret")
        assert stopped.returncode == 0, stopped
        assert node.wait_exit() == 0
    finally:
        node.kill()


def test_bad_guard_settings_are_configuration_errors(tmp_path: Path) -> None:
    bad_allow = run_server_to_exit(["-p", "0", "-x", "--allow", "10.0.0.0/99"], storage=tmp_path)
    assert bad_allow.returncode == 2
    assert bad_allow.stderr.strip().splitlines() == [
        "pairns: configuration error: --allow must be a list of addresses or CIDR networks "
        "such as '10.0.0.0/8, 192.0.2.7', not '10.0.0.0/99' (from the command line)"
    ]
    bad_plugin = run_server_to_exit(["-p", "0", "-x", "-s", "no_such_plugin_mod"], storage=tmp_path)
    assert bad_plugin.returncode == 2
    lines = bad_plugin.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pairns: configuration error: -s: cannot import")
