"""Issue 11: persistent mode (``pairns -d DIR``) with real processes, restarts and crashes."""

from __future__ import annotations

import json
import random
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from _support import (
    HOST,
    PYTHON,
    REPO,
    SERVER_CMD,
    NodeProcess,
    clean_env,
    run_ctl,
    run_server_to_exit,
    wait_until,
)

import pairns
from pairns import URI, Proxy
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.storage import integrity_check, open_storage
from pairns.storage.sqlite import DB_NAME, RESTORE_HINT, SNAPSHOT_NAME

NS_NAME = ":Pyro.NameServer"


def _ns(node: NodeProcess) -> pairns.NameServerProxy:
    return pairns.NameServerLocator().getNS(HOST, node.port, timeout=15)


def _snapshot(node: NodeProcess) -> dict[str, Any]:
    """Everything a client can read, minus what depends on the node's port."""
    with _ns(node) as ns:
        flat = [(name, str(uri)) for name, uri in ns.flatlist() if name != NS_NAME]
        entries = [e for e in _listall(node) if e["name"] != NS_NAME]
        groups = [":"] + [e["name"] for e in entries if e["kind"] == "group"]
        return {
            "flatlist": flat,
            "resolve": {name: str(ns.resolve(name)) for name, _ in flat},
            "list": {group: ns.list(group) for group in groups},
            "meta": {e["name"]: ns.getMeta(e["name"]) for e in entries},
            "system": {
                e["name"]: ns.getSystemMeta(e["name"])
                for e in entries
                if not e["name"].startswith(":Pyro")
            },
        }


def _listall(node: NodeProcess) -> list[dict[str, Any]]:
    result = run_ctl(node.port, "listall", json_out=True)
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, Any]] = json.loads(result.stdout)
    return entries


def _populate(node: NodeProcess) -> None:
    with _ns(node) as ns:
        ns.createGroup(":Apps")
        ns.createGroup(":Apps.printing")
        ns.createGroup(":Apps.gone")
        ns.createGroup(":Empty")
        for i in range(20):
            ns.register(f":Apps.printing.p{i}", f"PYRO://printhost{i}:{7000 + i}/obj{i}")
        ns.register(":Apps.gone.x", "PYRO://gone:1/x")
        ns.register("relative", "PYROLOC://somehost:7766/Thing")
        ns.register(":Apps.loc", "PYRONAME://nshost:9090/:Apps.printing.p1")
        ns.setMeta(":Apps.printing.p3", {"floor": 3, "tags": ["color", "a3"], "ok": True})
        ns.setMeta(":Apps.printing", "group metadata")
        ns.setMeta(":Default", [1, 2, 3])
        ns.setMeta("relative", 1.5)
        ns.unregister(":Apps.printing.p7")  # tombstones must stay dead
        ns.deleteGroup(":Apps.gone")
        ns.unregister(":Apps.printing.p9")
        ns.register(":Apps.printing.p9", "PYRO://again:9/p9")  # re-registered after removal


def test_restart_answers_everything_as_before(start_node: Any, tmp_path: Path) -> None:
    db = tmp_path / "db"
    first = start_node("-d", str(db))
    assert f"namespace: persistent ({db})" in first.banner
    _populate(first)
    before = _snapshot(first)
    node_id = first.banner.split("node id ")[1].split()[0]
    assert len(before["flatlist"]) == 21
    assert first.terminate() == 0
    assert integrity_check(db) == []

    second = start_node("-d", str(db))
    assert f"node id {node_id}" in second.banner  # the node's own id lives on disk too
    assert _snapshot(second) == before
    with _ns(second) as ns:
        assert ns.resolve(NS_NAME) == URI.from_string(
            f"PYRO://{HOST}:{second.port}/Pyro.NameServer"
        )
        with pytest.raises(pairns.NamingError):
            ns.resolve(":Apps.printing.p7")
        with pytest.raises(pairns.NamingError):
            ns.list(":Apps.gone")
        status = ns.status()
        assert status["persistent"] is True
        assert status["storage"] == str(db / "pairns.sqlite3")
        assert status["storage_failed_transactions"] == 0
        assert status["storage_transactions"] >= 1  # the node's own registration
        ns.register(":Apps.after", "PYRO://after:1/a")  # writable after a restart
    after_write = _snapshot(second)
    # A crash (SIGKILL) right after an acknowledged write loses nothing either.
    second.proc.kill()
    second.proc.wait(10)
    third = start_node("-d", str(db))
    assert _snapshot(third) == after_write
    assert integrity_check(db) == []


_WRITER = textwrap.dedent(
    """
    import sys
    import pairns

    port, tag, writer = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    group = f":Crash.{tag}w{writer}"
    try:
        ns = pairns.NameServerLocator().getNS("127.0.0.1", port, timeout=10)
        ns.createGroup(group)
        print("G", group, flush=True)
        for i in range(100000):
            name = f"{group}.n{i}"
            ns.register(name, f"PYRO://w{writer}:{1000 + writer}/{tag}{i}")
            print("R", name, flush=True)
            ns.setMeta(name, {"i": i, "w": writer})
            print("M", name, flush=True)
    except pairns.PairnsError as exc:
        print("E", type(exc).__name__, flush=True)
    except OSError as exc:
        print("E", type(exc).__name__, flush=True)
    """
)


def test_a_retried_write_is_recognised_after_a_restart(start_node: Any, tmp_path: Path) -> None:
    """A write acknowledged just before the node stopped (or its reply lost in a crash)
    and retried by the client after the restart is answered as the first time, not
    with "name already exists"."""
    db = tmp_path / "db"
    first = start_node("-d", str(db))
    rid, other = uuid.uuid4().hex, uuid.uuid4().hex
    args = (":Default.once", "PYRO://127.0.0.1:1/once")
    with Proxy.for_address(HOST, first.port, NAMESERVER_OBJECT_ID, timeout=10) as proxy:
        assert proxy.call("register", *args, request_id=rid) is None
        assert proxy.call("createGroup", ":Default.g", request_id=other) is None
    first.proc.kill()  # SIGKILL: nothing but the disk survives
    first.proc.wait(10)

    second = start_node("-d", str(db))
    with Proxy.for_address(HOST, second.port, NAMESERVER_OBJECT_ID, timeout=10) as proxy:
        assert proxy.call("register", *args, request_id=rid) is None  # the retry
        assert proxy.call("createGroup", ":Default.g", request_id=other) is None
        with pytest.raises(pairns.NamingError, match="already exists"):
            proxy.call("register", *args, request_id=uuid.uuid4().hex)  # a new write
        assert proxy.call("status")["request_ids"] >= 2


def _read_acks(path: Path) -> tuple[set[str], list[str], set[str], bool]:
    """(acknowledged groups, acknowledged names in order, names with acknowledged meta,
    whether the writer saw the node go away)."""
    groups: set[str] = set()
    names: list[str] = []
    metas: set[str] = set()
    ended = False
    for line in path.read_text().splitlines():
        kind, _, value = line.partition(" ")
        if kind == "G":
            groups.add(value)
        elif kind == "R":
            names.append(value)
        elif kind == "M":
            metas.add(value)
        elif kind == "E":
            ended = True
    return groups, names, metas, ended


@pytest.mark.slow
def test_crash_under_8_writers_loses_no_acknowledged_change(
    start_node: Any, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"crash test seed {seed}")
    node = start_node("-d", str(db))
    with _ns(node) as ns:
        ns.createGroup(":Crash")
    expected: dict[str, str] = {}  # every acknowledged name -> its URI
    expected_meta: dict[str, Any] = {}
    for round_no in range(3):
        tag = f"r{round_no}"
        logs = [tmp_path / f"writer-{tag}-{w}.out" for w in range(8)]
        writers = []
        for w, log in enumerate(logs):
            with open(log, "wb") as out:
                writers.append(
                    subprocess.Popen(
                        [PYTHON, "-c", _WRITER, str(node.port), tag, str(w)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=clean_env(),
                        cwd=tmp_path,
                    )
                )
        try:
            # Kill at a random moment once every writer is writing.
            assert wait_until(lambda logs=logs: all("R " in log.read_text() for log in logs), 30), [
                log.read_text() for log in logs
            ]
            delay = rng.uniform(0.3, 1.5)
            time.sleep(delay)
            node.proc.kill()
            assert node.proc.wait(10) == -9
            for writer in writers:
                writer.wait(30)
        finally:
            for writer in writers:
                if writer.poll() is None:
                    writer.kill()
                    writer.wait(10)
        acked_total = 0
        per_writer: list[tuple[str, list[str], set[str]]] = []
        for w, log in enumerate(logs):
            groups, names, metas, ended = _read_acks(log)
            assert ended, f"writer {w} did not notice the crash: {log.read_text()[-500:]}"
            group = f":Crash.{tag}w{w}"
            assert groups == {group}
            per_writer.append((group, names, metas))
            acked_total += len(names)
            for name in names:
                i = int(name.rsplit(".n", 1)[1])
                expected[name] = str(URI.from_string(f"PYRO://w{w}:{1000 + w}/{tag}{i}"))
                if name in metas:
                    expected_meta[name] = {"i": i, "w": w}

        node = start_node("-d", str(db))
        print(f"round {round_no}: killed after {delay:.2f} s, {acked_total} acknowledged")
        assert acked_total > 0
        with _ns(node) as ns:
            flat = {name: str(uri) for name, uri in ns.flatlist() if name != NS_NAME}
            # Every acknowledged name (of this and earlier rounds) is there, with the
            # URI its writer used, and every acknowledged metadata value too.
            missing = sorted(set(expected) - set(flat))
            assert missing == [], f"acknowledged but lost: {missing[:10]}"
            for name, uri in expected.items():
                assert flat[name] == uri, name
            for name, meta in expected_meta.items():
                assert ns.getMeta(name) == meta, name
            # Nothing unacknowledged is half-applied: per writer, the names present are
            # 0..k-1 where k is the acknowledged count, or one more (the call in
            # flight at the kill), and that one is whole (its own URI).
            in_flight: set[str] = set()
            for group, names, _metas in per_writer:
                w = int(group.rsplit("w", 1)[1])
                present = sorted(
                    int(n.rsplit(".n", 1)[1]) for n in flat if n.startswith(group + ".")
                )
                acked = len(names)
                assert present == list(range(len(present))), f"{group}: holes {present[-5:]}"
                assert acked <= len(present) <= acked + 1, (group, acked, len(present))
                for i in present:
                    name = f"{group}.n{i}"
                    own = str(URI.from_string(f"PYRO://w{w}:{1000 + w}/{tag}{i}"))
                    assert flat[name] == own, name
                    meta = ns.getMeta(name)
                    assert meta in (None, {"i": i, "w": w}), (name, meta)
                    if name not in expected:
                        in_flight.add(name)
                    if meta is not None:
                        expected_meta[name] = meta  # durable now: must stay
            assert not any(n.startswith(":Crash.") for n in set(flat) - set(expected) - in_flight)
            for name in in_flight:
                expected[name] = flat[name]  # the in-flight call made it: keep it
        assert integrity_check(db) == []
    assert node.terminate() == 0
    assert integrity_check(db) == []


# ----------------------------------------------------------------------- refusals

# Runs ``pairns`` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped when root, so
# permission bits apply as they do to an ordinary user (as tests/unit/storage does).
_UNPRIVILEGED_SERVER = (REPO / "tests" / "drop_dac_capabilities.py").read_text() + textwrap.dedent(
    """
    from pairns.cli.server import main
    sys.argv[0] = "pairns"
    sys.exit(main(sys.argv[1:]))
    """
)
UNPRIVILEGED_CMD = [PYTHON, "-c", _UNPRIVILEGED_SERVER]


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "listening" not in result.stdout
    return result.stderr


def test_read_only_directory_refused_with_real_permissions(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o555)
    fresh.chmod(0o555)
    existing = tmp_path / "existing"
    args = ["-n", HOST, "-p", "0", "-d"]

    async def make_store() -> None:
        async with open_storage(existing) as store:
            await store.open()

    trio.run(make_store)
    (existing / DB_NAME).chmod(0o444)
    existing.chmod(0o555)
    try:
        result = run_server_to_exit([*args, str(fresh)], storage=storage, cmd=UNPRIVILEGED_CMD)
        if result.returncode == 77:
            pytest.skip("cannot drop CAP_DAC_OVERRIDE here")
        err = _refused(result)
        assert f"pairns: cannot use storage directory (permission denied): {fresh}" in err

        result = run_server_to_exit(
            [*args, str(fresh / "sub")], storage=storage, cmd=UNPRIVILEGED_CMD
        )
        err = _refused(result)
        assert f"cannot create storage directory (permission denied): {fresh / 'sub'}" in err

        result = run_server_to_exit([*args, str(existing)], storage=storage, cmd=UNPRIVILEGED_CMD)
        err = _refused(result)
        assert "pairns: " in err
        assert "permission denied" in err or "read-only" in err, err
        assert str(existing) in err
    finally:
        fresh.chmod(0o755)
        existing.chmod(0o755)


def test_database_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    result = run_server_to_exit(
        ["-n", HOST, "-p", "0", "-d", str(blocker / "db")], storage=tmp_path
    )
    err = _refused(result)
    assert f"cannot create storage directory (not a directory): {blocker / 'db'}" in err
    result = run_server_to_exit(["-n", HOST, "-p", "0", "-d", str(blocker)], storage=tmp_path)
    assert f"storage path is not a directory: {blocker}" in _refused(result)


@pytest.mark.parametrize("damage", ["random-bytes", "smashed-header", "truncated"])
def test_corrupt_database_is_refused_with_path_and_restore_hint(
    start_node: Any, tmp_path: Path, damage: str
) -> None:
    db = tmp_path / "db"
    node = start_node("-d", str(db))
    _populate(node)
    if damage == "truncated":

        async def fill() -> None:
            ns = await pairns.NameServerLocator().async_getNS(HOST, node.port, timeout=30)
            async with ns:
                await ns.createGroup(":Fill")
                with trio.fail_after(60):
                    async with trio.open_nursery() as nursery:
                        for i in range(3000):
                            nursery.start_soon(ns.register, f":Fill.n{i}", f"PYRO://f:1/{i}")

        trio.run(fill)
    assert node.terminate() == 0
    path = db / DB_NAME
    size = path.stat().st_size
    if damage == "random-bytes":
        path.write_bytes(random.Random(5).randbytes(size))
    elif damage == "smashed-header":
        with open(path, "r+b") as f:
            f.write(b"\xff" * 100)
    else:
        assert size > 100_000, size
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    result = run_server_to_exit(["-n", HOST, "-p", "0", "-d", str(db)], storage=tmp_path)
    err = _refused(result)
    assert "corrupt" in err
    assert str(path) in err
    assert RESTORE_HINT in err
    assert integrity_check(db) != []


def test_database_in_use_by_another_node_is_refused(start_node: Any, tmp_path: Path) -> None:
    db = tmp_path / "db"
    holder = start_node("-d", str(db))
    result = run_server_to_exit(["-n", HOST, "-p", "0", "-d", str(db)], storage=tmp_path)
    err = _refused(result)
    assert f"database in use by pid {holder.pid}: {db}" in err
    assert holder.running
    with _ns(holder) as ns:
        assert ns.ping()


# ---------------------------------------------------------------- dump and load


def _without_ns(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["name"] != NS_NAME]


@pytest.mark.slow
def test_dump_then_load_into_a_fresh_node_round_trips(start_node: Any, tmp_path: Path) -> None:
    source = start_node("-d", str(tmp_path / "source"))
    _populate(source)
    with _ns(source) as ns:
        ns.setMeta(":Pyro", {"builtin": "group meta"})
        ns.createGroup(":Deep")
        ns.createGroup(":Deep.er")
        ns.createGroup(":Deep.er.est")
        ns.register(":Deep.er.est.leaf", "PYROSSL://secure:7767/leaf")
        ns.setMeta(":Deep.er", None)
        ns.setMeta(":Deep.er.est", {"unicode": "grüße ✓", "n": [None, 0, -1e-9]})
    backup = tmp_path / "backup.jsonl"
    dumped = run_ctl(source.port, "dump", str(backup))
    assert dumped.returncode == 0, dumped.stderr
    original = _without_ns(_listall(source))
    assert len(original) == len(backup.read_text().splitlines()) - 1

    target = start_node("-d", str(tmp_path / "target"))
    loaded = run_ctl(target.port, "load", str(backup), json_out=True)
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout)
    builtin = {":Pyro", ":Default", NS_NAME}
    assert report == {
        "loaded": len([e for e in original if e["name"] not in builtin]),
        "existed": [],
    }
    assert _without_ns(_listall(target)) == original
    assert _snapshot(target)["flatlist"] == _snapshot(source)["flatlist"]

    # Loading again reports everything as already there and changes nothing.
    again = run_ctl(target.port, "load", str(backup))
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == f"loaded 0 entries from {backup}"
    non_builtin = sorted(e["name"] for e in original if e["name"] not in builtin)
    assert lines[1] == f"{len(non_builtin)} already existed and were left as they are:"
    assert lines[2:] == [f"  {name}" for name in non_builtin]
    assert _without_ns(_listall(target)) == original

    # What a load already found is left as it is, and reported; the rest is added.
    partial = start_node("-d", str(tmp_path / "partial"))
    with _ns(partial) as ns:
        ns.createGroup(":Apps")
        ns.register(":Default.relative", "PYRO://different:1/x")
    report = json.loads(run_ctl(partial.port, "load", str(backup), json_out=True).stdout)
    assert report["existed"] == [":Apps", ":Default.relative"]
    with _ns(partial) as ns:
        assert ns.resolve("relative") == URI.from_string("PYRO://different:1/x")
        assert ns.resolve(":Deep.er.est.leaf") == URI.from_string("PYROSSL://secure:7767/leaf")

    # The loaded namespace survives a restart of the target, too.
    assert target.terminate() == 0
    restarted = start_node("-d", str(tmp_path / "target"))
    assert _without_ns(_listall(restarted)) == original


# ---------------------------------------------------------------- startup time


async def _fill_directly(directory: Path, count: int) -> None:
    """Write *count* names into a database the way a node would, without a node."""
    from pairns.namespace import HybridClock, Namespace

    async with open_storage(directory) as storage:
        loaded = await storage.open()
        namespace = Namespace(loaded.node_id, HybridClock(loaded.node_id), default_group=":Default")
        namespace.load(loaded.rows, loaded.last_seq)
        boot = namespace.bootstrap()
        if boot.rows:
            await storage.commit(boot.rows)
        rows: list[Any] = []
        for g in range(100):
            rows.extend(namespace.create_group(f":Big{g}").rows)
        for i in range(count - 100):
            rows.extend(
                namespace.register(f":Big{i % 100}.n{i}", f"PYRO://h{i % 50}:7766/o{i}").rows
            )
            if len(rows) >= 20_000:
                await storage.commit(rows)
                rows = []
        if rows:
            await storage.commit(rows)


@pytest.mark.parametrize("collected", [False, True], ids=["tombstones-kept", "collected"])
def test_a_crash_after_a_snapshot_loses_nothing(tmp_path: Path, collected: bool) -> None:
    """Start from a start-up snapshot, change names, SIGKILL: the restart reads the old
    snapshot plus the rows written after it, and every acknowledged change is there.

    Once the tombstones that replaced two of the snapshot's rows are collected (a single
    node collects at once by default), the database no longer says those names were
    deleted: the snapshot's rows for them would bring them back, so the restart ignores
    the snapshot and reads every row from the database (slower, nothing lost)."""
    db = tmp_path / "db"
    trio.run(_fill_directly, db, 6_000)  # its clean close writes the snapshot
    assert (db / SNAPSHOT_NAME).exists()
    grace = {"PAIRNS_TOMBSTONE_GRACE": "0" if collected else "3600"}

    def start(name: str) -> NodeProcess:
        node = NodeProcess(
            ["-n", HOST, "-p", "0", "-d", str(db), "-v"],
            workdir=tmp_path / "logs",
            storage=tmp_path,
            name=name,
            cmd=SERVER_CMD,
            env=grace,
        )
        return node.wait_started(timeout=60)

    first = start("first")
    try:
        assert "(6003 from the start-up snapshot, 0 from the database)" in first.stderr()
        with _ns(first) as ns:
            for i in range(200):
                ns.register(f":Big{i % 7}.after{i}", f"PYRO://late:7766/o{i}")
            ns.unregister(":Big3.n103")  # rows in the snapshot: replaced by tombstones
            ns.unregister(":Big4.n104")
            ns.unregister(":Big5.n105")
            ns.register(":Big5.n105", "PYRO://moved:7766/o105")  # replaced by a new row
            ns.createGroup(":Later")
            before = [(name, uri) for name, uri in ns.flatlist() if name != NS_NAME]
            deadline = time.monotonic() + 30
            while collected and ns.status()["tombstones"]:
                assert time.monotonic() < deadline, "the tombstones were never collected"
                time.sleep(0.05)
            assert ns.status()["tombstones"] == (0 if collected else 2)
    finally:
        first.kill()  # SIGKILL: no clean close, no new snapshot
    second = start("second")
    try:
        log = second.stderr()
        if collected:
            assert "ignoring the start-up snapshot" in log, log
            assert "loaded 6202 rows (0 from the start-up snapshot, 6202 from the" in log, log
        else:
            # 3 of the snapshot's rows were replaced; the database holds 204 newer rows:
            # 200 names, 3 changed ones and :Later (the node's own :Pyro.NameServer
            # entry is not stored).
            assert "loaded 6204 rows (6000 from the start-up snapshot, 204 from the" in log
            assert "ignoring" not in log
        with _ns(second) as ns:
            assert [(name, uri) for name, uri in ns.flatlist() if name != NS_NAME] == before
            assert len(before) == 6_000 - 100 + 200 - 2
            assert ns.resolve(":Big5.n105") == URI.from_string("PYRO://moved:7766/o105")
            assert ns.resolve(":Big6.after195") == URI.from_string("PYRO://late:7766/o195")
            for gone in (":Big3.n103", ":Big4.n104"):
                with pytest.raises(pairns.NamingError):
                    ns.resolve(gone)
            assert ("Later", 0) in ns.list(":")
    finally:
        second.kill()
    assert integrity_check(db) == []


@pytest.mark.slow
def test_startup_with_100000_names(tmp_path: Path) -> None:
    db = tmp_path / "db"
    started = time.monotonic()
    trio.run(_fill_directly, db, 100_000)
    print(f"filled 100,000 names directly in {time.monotonic() - started:.2f} s")
    timings: list[float] = []
    # One start is measured; a second only if the first was over the bound (a loaded
    # CI machine), so the bound is on the better of at most two.
    for attempt in range(2):
        node = NodeProcess(
            ["-n", HOST, "-p", "0", "-d", str(db)],
            workdir=tmp_path / "logs",
            storage=tmp_path,
            name=f"big{attempt}",
            cmd=SERVER_CMD,
        )
        try:
            node.wait_started(timeout=60)
            timings.append(node.listening_seconds)
            with _ns(node) as ns:
                assert ns.status()["entries"] == 100_000 + 3
                assert ns.resolve(":Big7.n99807") == URI.from_string("PYRO://h7:7766/o99807")
                assert len(ns.list(":Big3")) == (100_000 - 100) // 100
        finally:
            node.kill()
        if timings[-1] < 10.0:
            break
    print(
        "process start until listening, 100,000 names: " + ", ".join(f"{t:.2f} s" for t in timings)
    )
    assert min(timings) < 10.0, timings
