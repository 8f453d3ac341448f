"""Issue 10: the ``pairns`` and ``pairns-ctl`` commands as real processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trio
from _support import (
    CTL_CMD,
    CTL_TIMEOUT,
    HOST,
    NodeProcess,
    check_banner,
    clean_env,
    run_ctl,
    run_server_to_exit,
)

import pairns
from pairns import URI

OBJ = "PYRO://objhost:7766/abcdef"


def _ok(result: Any) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return str(result.stdout)


def _json(result: Any) -> Any:
    return json.loads(_ok(result))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _many(port: int, *commands: tuple[str, ...]) -> list[Any]:
    """Run independent ``pairns-ctl`` commands at once; "--json" first means JSON output."""

    def one(command: tuple[str, ...]) -> Any:
        if command and command[0] == "--json":
            return run_ctl(port, *command[1:], json_out=True)
        return run_ctl(port, *command)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, commands))


@pytest.mark.slow
def test_ctl_every_command_human_and_json(node: NodeProcess, tmp_path: Path) -> None:
    port = node.port
    canonical = str(URI.from_string(OBJ))

    ping, ping_json = _many(port, ("ping",), ("--json", "ping"))
    assert "is alive" in _ok(ping)
    assert _json(ping_json) == {"alive": True}

    assert _ok(run_ctl(port, "creategroup", ":T")).strip() == "created group :T"
    sub, reg, reg_json = _many(
        port,
        ("--json", "creategroup", ":T.sub"),
        ("register", ":T.a", OBJ),
        ("--json", "register", "rel", "PYRO://h:1/r"),
    )
    assert _json(sub) == {"created": ":T.sub"}
    assert _ok(reg).strip() == "registered :T.a"
    assert _json(reg_json) == {"registered": ":Default.rel"}

    resolved, resolved_json, listed, listed_json, listed_default, listall, listall_json = _many(
        port,
        ("resolve", ":T.a"),
        ("--json", "resolve", "rel"),
        ("list", ":T"),
        ("--json", "list", ":T"),
        ("--json", "list"),
        ("listall",),
        ("--json", "listall"),
    )
    assert _ok(resolved).strip() == canonical
    assert _json(resolved_json) == {
        "name": ":Default.rel",
        "uri": str(URI.from_string("PYRO://h:1/r")),
    }
    assert _ok(listed).splitlines() == ["--- :T ---", "a (object)", "sub (group)"]
    assert _json(listed_json) == [
        {"name": "a", "kind": "object"},
        {"name": "sub", "kind": "group"},
    ]
    assert _json(listed_default) == [{"name": "rel", "kind": "object"}]
    lines = _ok(listall).splitlines()
    assert f":T.a --> {canonical}" in lines
    assert ":T (group)" in lines
    assert ":T.sub (group)" in lines
    assert f":Pyro.NameServer --> PYRO://{HOST}:{port}/Pyro.NameServer" in lines
    entries = _json(listall_json)
    assert [e["name"] for e in entries] == [
        ":Default",
        ":Default.rel",
        ":Pyro",
        ":Pyro.NameServer",
        ":T",
        ":T.a",
        ":T.sub",
    ]
    assert {"name": ":T.a", "kind": "object", "uri": canonical, "meta": None} in entries

    setmeta, setmeta_json = _many(
        port, ("setmeta", ":T.a", '{"floor": 2}'), ("--json", "setmeta", ":T.sub", "just text")
    )
    assert _ok(setmeta).strip() == "metadata of :T.a set"
    assert _json(setmeta_json) == {"name": ":T.sub", "meta": "just text"}

    backup = tmp_path / "backup.jsonl"
    showmeta, showmeta_json, status, status_json, dump, listall_json, dump_file = _many(
        port,
        ("showmeta", ":T.a"),
        ("--json", "showmeta", ":T.sub"),
        ("status",),
        ("--json", "status"),
        ("dump",),
        ("--json", "listall"),
        ("dump", str(backup)),
    )
    human = _ok(showmeta).splitlines()
    assert human[0] == ":T.a"
    assert '  meta: {"floor": 2}' in human
    assert any(line.startswith("  owner: ") for line in human)
    shown = _json(showmeta_json)
    assert shown["name"] == ":T.sub" and shown["meta"] == "just text"
    assert {"created", "modified", "owner"} <= set(shown["system"])
    status_lines = _ok(status).splitlines()
    assert "role: single" in status_lines
    assert "persistent: False" in status_lines
    status_data = _json(status_json)
    assert status_data["entries"] == 7
    assert status_data["uri"] == f"PYRO://{HOST}:{port}/Pyro.NameServer"
    assert status_data["persistent"] is False
    dumped = [json.loads(line) for line in _ok(dump).splitlines()]
    assert dumped == _json(listall_json)
    assert [e["name"] for e in dumped] == [e["name"] for e in entries]
    assert {"name": ":T.a", "kind": "object", "uri": canonical, "meta": {"floor": 2}} in dumped
    assert _ok(dump_file).strip() == f"dumped 7 entries to {backup}"
    assert [json.loads(line) for line in backup.read_text().splitlines()] == dumped

    # Loading into the node that holds it all: everything already exists.
    loaded, loaded_json = _many(port, ("load", str(backup)), ("--json", "load", str(backup)))
    loaded_lines = _ok(loaded).splitlines()
    assert loaded_lines[0] == f"loaded 0 entries from {backup}"
    assert "4 already existed and were left as they are:" in loaded_lines
    assert _json(loaded_json) == {
        "loaded": 0,
        "existed": [":Default.rel", ":T", ":T.a", ":T.sub"],
    }

    removed, removed_json, created_json = _many(
        port, ("remove", ":T.a"), ("--json", "remove", "rel"), ("--json", "creategroup", ":U")
    )
    assert _ok(removed).strip() == "removed :T.a"
    assert _json(removed_json) == {"removed": ":Default.rel"}
    assert _json(created_json) == {"created": ":U"}
    deleted, deleted_json = _many(port, ("deletegroup", ":T"), ("--json", "deletegroup", ":U"))
    assert _ok(deleted).strip() == "deleted group :T"
    assert _json(deleted_json) == {"deleted": ":U"}
    assert [e["name"] for e in _json(run_ctl(port, "listall", json_out=True))] == [
        ":Default",
        ":Pyro",
        ":Pyro.NameServer",
    ]


@pytest.mark.slow
def test_ctl_exit_codes(node: NodeProcess, tmp_path: Path) -> None:
    port = node.port
    not_a_dump = tmp_path / "not-a-dump.jsonl"
    not_a_dump.write_text("this is not json\n")
    results = _many(
        port,
        # 1: naming errors, with the name, on stderr (and as JSON with --json).
        ("resolve", ":Nope"),
        ("--json", "remove", ":Pyro"),
        ("creategroup", ":Pyro"),
        ("deletegroup", ":Nope"),
        ("showmeta", ":Nope"),
        ("register", ":x", "not-a-uri"),
        # 2: usage errors.
        ("resolve",),
        ("resolve", "a", "b"),
        ("nosuchcommand",),
        ("--bogus", "ping"),
        ("load", str(tmp_path / "no-such-dump.jsonl")),
        ("load", str(not_a_dump)),
    )
    codes = [r.returncode for r in results]
    assert codes == [1] * 6 + [2] * 6, [(r.args[3:], r.returncode, r.stderr) for r in results]
    for result in results:
        assert "Traceback" not in result.stderr
    missing, as_json, *_, bad_uri = results[:6]
    assert "name not found: :Nope" in missing.stderr
    assert missing.stdout == ""
    assert json.loads(as_json.stdout) == {
        "error": "NamingError",
        "message": "is a group, not an object: :Pyro",
    }
    assert "invalid URI" in bad_uri.stderr
    assert "cannot read" in results[10].stderr
    # 3: nothing listening.
    nothing = run_ctl(_free_port(), "ping")
    assert nothing.returncode == 3
    assert "cannot connect" in nothing.stderr
    # The node took all that in its stride.
    assert run_ctl(port, "ping").returncode == 0


def test_identification_required(start_node: Any) -> None:
    node = start_node("-i", "secret")
    check_banner(node, identification=True)
    port = node.port

    with pytest.raises(pairns.ConnectionDeniedError) as none:
        pairns.NameServerLocator().getNS(HOST, port, timeout=10)
    assert "identification required" in str(none.value)
    assert f"{HOST}:{port}" in str(none.value)
    with pytest.raises(pairns.ConnectionDeniedError) as wrong:
        pairns.NameServerLocator(identification="guess").getNS(HOST, port, timeout=10)
    assert "incorrect identification" in str(wrong.value)
    with pytest.raises(pairns.ConnectionDeniedError):
        pairns.resolve_uri(f"PYRONAME://{HOST}:{port}/:Pyro.NameServer")

    with pairns.NameServerLocator(identification="secret").getNS(HOST, port, timeout=10) as ns:
        ns.register("allowed", OBJ)
        assert ns.resolve("allowed") == URI.from_string(OBJ)
    assert pairns.resolve_uri(
        f"PYRONAME://{HOST}:{port}/allowed", identification="secret"
    ) == URI.from_string(OBJ)

    assert run_ctl(port, "resolve", "allowed", ident="secret").stdout.strip() == str(
        URI.from_string(OBJ)
    )
    denied = run_ctl(port, "ping")
    assert denied.returncode == 3
    assert "identification required" in denied.stderr
    wrong_ctl = run_ctl(port, "ping", ident="nope")
    assert wrong_ctl.returncode == 3
    assert "incorrect identification" in wrong_ctl.stderr
    # PYRO_NS_IDENTIFICATION stands in for -i (kept out of the process list); -i wins.
    from_env = run_ctl(port, "ping", env={"PYRO_NS_IDENTIFICATION": "secret"})
    assert from_env.returncode == 0, from_env.stderr
    flag_wins = run_ctl(port, "ping", ident="nope", env={"PYRO_NS_IDENTIFICATION": "secret"})
    assert flag_wins.returncode == 3
    assert "incorrect identification" in flag_wins.stderr
    assert node.running


async def test_identification_with_the_async_proxy(start_node: Any) -> None:
    node = start_node("-i", "secret")
    with trio.fail_after(20):
        with pytest.raises(pairns.ConnectionDeniedError) as info:
            await pairns.NameServerLocator(identification="wrong").async_getNS(HOST, node.port)
        assert "incorrect identification" in str(info.value)
        ns = await pairns.NameServerLocator(identification="secret").async_getNS(HOST, node.port)
        async with ns:
            assert await ns.ping() is True


def test_k_refuses_shutdown_and_keeps_serving(start_node: Any) -> None:
    node = start_node("-k")
    assert "shutdown requests: refused (-k)" in node.banner
    refused = run_ctl(node.port, "shutdown")
    assert refused.returncode == 1
    assert "shutdown is not allowed" in refused.stderr
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=10) as ns:
        with pytest.raises(pairns.NamingError) as info:
            ns.shutdown()
        assert "not allowed" in str(info.value)
        time.sleep(0.5)  # more than the node's shutdown grace period
        assert node.running
        assert ns.ping() is True


def test_shutdown_request_stops_the_process_cleanly(start_node: Any) -> None:
    node = start_node()
    assert "shutdown requests: allowed" in node.banner
    result = run_ctl(node.port, "shutdown", json_out=True)
    assert _json(result) == {"shutdown": True}
    assert node.wait_exit(10) == 0
    assert "pairns name server stopped" in node.stdout()
    assert run_ctl(node.port, "ping").returncode == 3


def test_shutdown_via_the_blocking_proxy(start_node: Any) -> None:
    node = start_node()
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=10) as ns:
        assert ns.shutdown() is True
    assert node.wait_exit(10) == 0
    assert node.stdout().rstrip().endswith("pairns name server stopped")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_node_cleanly(start_node: Any, signum: int) -> None:
    node = start_node()
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=10) as ns:
        assert ns.ping()  # a connected client does not keep the node alive
        node.proc.send_signal(signum)
        assert node.wait_exit(10) == 0
    assert node.stdout().rstrip().endswith("pairns name server stopped")
    assert "Traceback" not in node.stderr()


@pytest.mark.slow
def test_toml_config_and_env_precedence(start_node: Any, tmp_path: Path) -> None:
    toml_port, env_port, flag_port = _free_port(), _free_port(), _free_port()
    config = tmp_path / "pairns.toml"
    config.write_text(
        f'PYRO_NS_HOSTNAME = "{HOST}"\n'
        f"PYRO_NS_PORT = {toml_port}\n"
        'PYRO_NS_IDENTIFICATION = "from-toml"\n'
        "PYRO_NS_ALLOW_SHUTDOWN = false\n"
    )
    # TOML alone: no -n/-p on the command line.
    from_file = NodeProcess(
        ["--config", str(config)], workdir=tmp_path / "logs", storage=tmp_path / "s1"
    )
    try:
        from_file.wait_started()
        assert (from_file.host, from_file.port) == (HOST, toml_port)
        assert "identification: required" in from_file.banner
        assert "shutdown requests: refused (-k)" in from_file.banner
        assert run_ctl(toml_port, "ping", ident="from-toml").returncode == 0
        assert run_ctl(toml_port, "ping").returncode == 3
    finally:
        from_file.terminate()

    # Environment beats the file.
    from_env = NodeProcess(
        ["--config", str(config)],
        workdir=tmp_path / "logs",
        storage=tmp_path / "s2",
        env={"PYRO_NS_PORT": str(env_port), "PYRO_NS_IDENTIFICATION": "from-env"},
    )
    try:
        from_env.wait_started()
        assert from_env.port == env_port
        assert run_ctl(env_port, "ping", ident="from-env").returncode == 0
        assert run_ctl(env_port, "ping", ident="from-toml").returncode == 3
    finally:
        from_env.terminate()

    # Flags beat both.
    from_flags = NodeProcess(
        ["--config", str(config), "-p", str(flag_port), "-i", "from-flag"],
        workdir=tmp_path / "logs",
        storage=tmp_path / "s3",
        env={"PYRO_NS_PORT": str(env_port), "PYRO_NS_IDENTIFICATION": "from-env"},
    )
    try:
        from_flags.wait_started()
        assert from_flags.port == flag_port
        assert run_ctl(flag_port, "ping", ident="from-flag").returncode == 0
        assert run_ctl(flag_port, "ping", ident="from-env").returncode == 3
    finally:
        from_flags.terminate()

    # PYRO_NS_URIFILE from the environment moves the URI file.
    uri_file = tmp_path / "elsewhere" / "ns.uri"
    moved = start_node(env={"PYRO_NS_URIFILE": str(uri_file)})
    assert uri_file.read_text().strip() == f"PYRO://{HOST}:{moved.port}/Pyro.NameServer"


def test_bad_configuration_is_a_clear_error_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("PYRO_NS_PORT = 'not a number'\n")
    result = run_server_to_exit(["--config", str(bad)], storage=tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "PYRO_NS_PORT" in result.stderr
    env_bad = run_server_to_exit(
        ["-n", HOST, "-p", "0"], storage=tmp_path, env={"PYRO_NS_PORT": "abc"}
    )
    assert env_bad.returncode == 2
    assert "PYRO_NS_PORT" in env_bad.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("PYRO_NO_SUCH_SETTING = 1\n")
    result = run_server_to_exit(["--config", str(unknown)], storage=tmp_path)
    assert result.returncode == 2
    assert "unknown setting" in result.stderr


def test_port_in_use_is_refused_with_an_error(node: NodeProcess, tmp_path: Path) -> None:
    result = run_server_to_exit(["-n", HOST, "-p", str(node.port)], storage=tmp_path)
    assert result.returncode != 0
    assert "pairns: cannot start" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_group_from_the_environment(start_node: Any) -> None:
    node = start_node(env={"PYRO_NS_DEFAULTGROUP": ":Mine.sub"})
    with pairns.Proxy.for_address(HOST, node.port, "Pyro.NameServer", timeout=10) as raw:
        raw.call("register", "thing", OBJ)  # relative: expanded by the node
        assert raw.call("resolve", ":Mine.sub.thing") == str(URI.from_string(OBJ))
        assert raw.call("list", "") == [["thing", 1]]
    # The client expands with its own default group (:Default unless configured).
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=10) as ns:
        assert ns.fullName("thing") == ":Default.thing"
        with pytest.raises(pairns.NamingError):
            ns.resolve("thing")
        assert ns.resolve(":Mine.sub.thing") == URI.from_string(OBJ)
    bad = start_node(env={"PYRO_NS_DEFAULTGROUP": "relative"}, wait=False)
    assert bad.wait_exit(20) == 2
    assert "PYRO_NS_DEFAULTGROUP" in bad.stderr()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["-n", HOST, "-p", "0"],
            {"PYRO_MAX_FRAME_SIZE": "100"},
            "PYRO_MAX_FRAME_SIZE must be an integer in 4096..268435456 (bytes), not 100 "
            "(from the environment)",
        ),
        (
            ["-n", HOST, "-p", "0"],
            {"PYRO_MAXCONNECTIONS": "99999999"},
            "PYRO_MAXCONNECTIONS must be an integer in 1..16777216, not 99999999 "
            "(from the environment)",
        ),
        (
            ["-n", HOST, "-p", "70000"],
            {},
            "-p must be an integer in 0..65535 (0: any free port), not 70000 "
            "(from the command line)",
        ),
    ],
)
def test_out_of_range_settings_are_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_server_to_exit(args, storage=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"pairns: configuration error: {message}"]
    assert result.stdout == ""


def test_out_of_range_setting_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "pairns.toml"
    config.write_text("PYRO_MAX_IN_FLIGHT = 100000\n")
    result = run_server_to_exit(["-n", HOST, "-p", "0", "--config", str(config)], storage=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "pairns: configuration error: PYRO_MAX_IN_FLIGHT must be an integer in 1..65536, "
        f"not 100000 (from config file {config})"
    ]


def test_ctl_bad_input_is_exit_code_2_with_or_without_a_server() -> None:
    nothing = _free_port()
    for args, line in [
        (
            ("-p", "70000", "ping"),
            "pairns-ctl: configuration error: -p must be an integer in 1..65535, not 70000 "
            "(from the command line)",
        ),
        (
            ("-p", str(nothing), "--timeout", "nan", "ping"),
            "pairns-ctl: configuration error: --timeout must be a finite number of seconds > 0, "
            "not nan (from the command line)",
        ),
        (
            ("-p", str(nothing), "--timeout", "-1", "ping"),
            "pairns-ctl: configuration error: --timeout must be a finite number of seconds > 0, "
            "not -1 (from the command line)",
        ),
        (("-p", str(nothing), "resolve"), "pairns-ctl resolve: expected 1 argument(s), got 0"),
        (
            ("-p", str(nothing), "resolve", "a", "b"),
            "pairns-ctl resolve: expected 1 argument(s), got 2",
        ),
    ]:
        result = subprocess.run(
            [*CTL_CMD, "-h", HOST, *args],
            capture_output=True,
            text=True,
            timeout=CTL_TIMEOUT,
            env=clean_env(),
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.splitlines() == [line]


@pytest.mark.parametrize("verbose", [False, True])
def test_each_start_up_line_is_shown_once(start_node: Any, verbose: bool) -> None:
    node = start_node(*(["-v"] if verbose else []))
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait_exit(10) == 0
    banner = node.banner.splitlines()
    assert banner[0].startswith("pairns name server listening on ")
    assert banner[-1].startswith("URI file: ")
    console = node.stdout() + node.stderr()
    for line in banner:
        assert console.count(line) == 1, (line, console)
    if verbose:
        assert "INFO" in node.stderr()  # -v still logs (what is not in the banner)
    else:
        assert node.stderr() == ""


def test_a_paired_node_without_a_secret_warns_once(start_node: Any) -> None:
    node = start_node("-1", f"{HOST}:{_free_port()}")
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait_exit(10) == 0
    console = node.stdout() + node.stderr()
    assert console.count("is trusted as the twin") == 1, console
    assert "WARNING pairns.node: paired without an identification or pair secret" in console
    for line in node.banner.splitlines():
        assert console.count(line) == 1, (line, console)
