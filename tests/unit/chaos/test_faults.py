"""Fault injector helpers: environments, directories, tmpfs ballast, leftovers of dead runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pairns.chaos import faults as fx

needs_root = pytest.mark.skipif(not fx.is_root(), reason="needs root (mount, ip netns)")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_clock_env() -> None:
    assert fx.clock_env("injected", 0.0, None) == {}
    assert fx.clock_env("injected", -12.5, None) == {"PAIRNS_CLOCK_OFFSET": "-12.5"}
    env = fx.clock_env("faketime", 30.0, Path("/lib/libfaketime.so.1"))
    assert env["LD_PRELOAD"] == "/lib/libfaketime.so.1"
    assert env["FAKETIME"] == "+30.000s"
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    with pytest.raises(RuntimeError, match="faketime"):
        fx.clock_env("faketime", 3.0, None)


def test_clean_env_drops_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYRO_NS_PORT", "1")
    monkeypatch.setenv("LD_PRELOAD", "x.so")
    monkeypatch.setenv("FAKETIME", "+1s")
    monkeypatch.setenv("PAIRNS_CLOCK_OFFSET", "3")
    env = fx.clean_env("/src", {"PYRO_STORAGE": "/s"})
    assert env["PYTHONPATH"] == "/src" and env["PYRO_STORAGE"] == "/s"
    assert not {"PYRO_NS_PORT", "LD_PRELOAD", "FAKETIME", "PAIRNS_CLOCK_OFFSET"} & set(env)


def test_a_node_carries_its_clock_offset_in_its_environment(tmp_path: Path) -> None:
    node = fx.Node(
        1,
        host="127.0.0.1",
        port=9,
        twin="127.0.0.1:10",
        node_dir=tmp_path / "n1",
        db_dir=tmp_path / "n1" / "db",
        log_dir=tmp_path,
        pythonpath="/src",
    )
    assert node.argv()[-7:] == [
        "-p",
        "9",
        "-1",
        "127.0.0.1:10",
        "-d",
        str(tmp_path / "n1" / "db"),
        "-x",
    ]
    assert "PAIRNS_CLOCK_OFFSET" not in node.env()
    node.clock_offset = 7.5
    assert node.env()["PAIRNS_CLOCK_OFFSET"] == "7.5"
    assert node.env()["PYRO_NS_PEER_TIMEOUT"] == "1"
    assert node.log_path(3) == tmp_path / "node1-3.log"


def test_a_node_that_cannot_start_says_why(tmp_path: Path) -> None:
    node = fx.Node(
        1,
        host="127.0.0.1",
        port=0,
        twin="127.0.0.1:notaport",
        node_dir=tmp_path / "n1",
        db_dir=tmp_path / "n1" / "db",
        log_dir=tmp_path,
        pythonpath=str(Path(__file__).resolve().parents[3]),
    )
    node.start()
    try:
        with pytest.raises(fx.NodeStartError, match="exited with"):
            node.wait_listening(timeout=20)
    finally:
        node.kill()
    assert not node.alive and node.incarnation == 1


def test_copy_and_clear_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("1")
    (src / "sub" / "b").write_text("2")
    dest = tmp_path / "dest"
    fx.copy_directory(src, dest)
    assert (dest / "a").read_text() == "1" and (dest / "sub" / "b").read_text() == "2"
    fx.clear_directory(dest)
    assert dest.is_dir() and list(dest.iterdir()) == []
    fx.clear_directory(tmp_path / "new")
    assert (tmp_path / "new").is_dir()


def test_ballast_removal_is_idempotent(tmp_path: Path) -> None:
    assert fx.remove_ballast(tmp_path) is False
    (tmp_path / fx.BALLAST_NAME).write_bytes(b"x")
    assert fx.remove_ballast(tmp_path) is True
    assert not (tmp_path / fx.BALLAST_NAME).exists()


@needs_root
def test_ballast_fills_a_tmpfs_until_it_is_full(tmp_path: Path) -> None:
    db = tmp_path / "node1" / "db"
    fx.mount_tmpfs(db, "4m")
    try:
        written = fx.fill_ballast(db)
        assert 3 * 2**20 < written <= 4 * 2**20
        with pytest.raises(OSError):
            (db / "more").write_bytes(b"x" * 8192)
        assert fx.remove_ballast(db)
        (db / "more").write_bytes(b"x" * 8192)
    finally:
        fx.unmount(db)
    assert not os.path.ismount(db)


@needs_root
def test_leftover_mounts_of_dead_runs_are_unmounted(tmp_path: Path) -> None:
    dead, alive = tmp_path / "dead", tmp_path / "alive"
    for run, pid in ((dead, dead_pid()), (alive, os.getpid())):
        (run / "node1" / "db").mkdir(parents=True)
        (run / fx.PID_FILE).write_text(f"{pid}\n")
        fx.mount_tmpfs(run / "node1" / "db", "1m")
    try:
        done = fx.cleanup_leftover_mounts()
        assert str((dead / "node1" / "db").resolve()) in done
        assert not os.path.ismount(dead / "node1" / "db")
        assert os.path.ismount(alive / "node1" / "db")
    finally:
        fx.unmount(alive / "node1" / "db")
        fx.unmount(dead / "node1" / "db")


def test_netns_names_carry_the_runner_pid() -> None:
    pair = fx.NetnsPair(tag=4194303)
    assert pair.names == ("pairns-chaos-4194303-a", "pairns-chaos-4194303-b")
    assert all(len(veth) <= 15 for veth in pair.veths)
    assert pair.addresses[0].startswith("10.231.") and pair.addresses[0].endswith(".1")
    assert pair.prefix(2) == ["ip", "netns", "exec", "pairns-chaos-4194303-b"]


@needs_root
def test_netns_pair_lifecycle_and_leftovers(tmp_path: Path) -> None:
    pair = fx.NetnsPair(tag=dead_pid())
    pair.create()
    try:
        assert set(pair.names) <= set(fx._netns_names())
        assert pair.run_in(1, os.getpid) == os.getpid()
        pair.link_down(2)
        assert pair.partitioned
        pair.link_up(2)
        assert not pair.partitioned
        removed = fx.NetnsPair.cleanup_leftovers()  # its pid is dead: a leftover
        assert set(pair.names) <= set(removed)
        assert not set(pair.names) & set(fx._netns_names())
    finally:
        pair.delete()
    assert not set(pair.names) & set(fx._netns_names())
