"""Issue 21: the files in deploy/ are valid: the example configurations load and pair
with each other, and ``systemd-analyze verify`` accepts the unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pairns.config import Config, load_config, resolve_pairing

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "systemd" / "pairns@.service"
EXEC_START = "ExecStart=/opt/pairns/bin/pairns --config /etc/pairns/%i.toml"


def _load(name: str) -> Config:
    return resolve_pairing(load_config(DEPLOY / name, env={}))


def test_the_example_configurations_pair_with_each_other() -> None:
    ns1, ns2 = _load("pairns-ns1.toml"), _load("pairns-ns2.toml")
    assert (ns1.role, ns2.role) == (1, 2)
    assert ns1.twin_address == (ns2.host, ns2.port)
    assert ns2.twin_address == (ns1.host, ns1.port)
    assert ns1.persistent and ns2.persistent
    assert (ns1.ack, ns1.peer_timeout) == (ns2.ack, ns2.peer_timeout)
    assert ns1.bc_port != ns2.bc_port or ns1.host != ns2.host
    # Secrets belong in the environment file, not in a file the service user can read.
    assert ns1.identification is None and ns1.pair_secret is None
    assert ns2.identification is None and ns2.pair_secret is None


def test_the_unit_runs_one_role_per_instance_from_its_toml_file() -> None:
    text = UNIT.read_text()
    assert EXEC_START in text.splitlines()
    for line in [
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "DynamicUser=yes",
        "StateDirectory=pairns/%i",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "EnvironmentFile=-/etc/pairns/%i.env",
    ]:
        assert line in text.splitlines(), line


def _verify(unit_dir: Path, template: str, instance: str) -> subprocess.CompletedProcess[str]:
    (unit_dir / "pairns@.service").write_text(template)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_dir / f"pairns@{instance}.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: point it at this install's pairns.
    pairns = Path(sys.executable).parent / "pairns"
    if not pairns.exists():
        pytest.skip(f"no pairns script next to {sys.executable} to point ExecStart at")
    template = UNIT.read_text().replace(
        EXEC_START, f"ExecStart={pairns} --config /etc/pairns/%i.toml"
    )
    done = _verify(tmp_path, template, "ns1")
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "pairns@" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
    # The check is real: a misspelt option and a bad value are reported.
    broken = template.replace("ProtectHome=yes", "ProtectHom=yes").replace(
        "Restart=on-failure", "Restart=sometimes"
    )
    bad = _verify(tmp_path, broken, "ns1")
    assert "Unknown key 'ProtectHom'" in bad.stderr and "sometimes" in bad.stderr
