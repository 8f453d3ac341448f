"""Issue 19: the commands turn bad usage and bad settings into one line and exit code 2.

These run ``main`` in-process; nothing may be dialled or bound before the error.
"""

from __future__ import annotations

from typing import Any

import pytest

from pairns.cli import ctl, server
from pairns.naming.locator import NameServerLocator


@pytest.fixture(autouse=True)
def _no_dialling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a command tries to reach a name server; no PYRO_* from the shell."""
    for key in ("PYRO_NS_HOSTNAME", "PYRO_NS_PORT", "PYRO_NS_DEFAULTGROUP"):
        monkeypatch.delenv(key, raising=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command dialled a name server before checking its input")

    monkeypatch.setattr(NameServerLocator, "getNS", refuse)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-p", "70000", "ping"], "-p must be an integer in 1..65535, not 70000"),
        (["-p", "0", "ping"], "-p must be an integer in 1..65535, not 0"),
        (["-p", "-5", "ping"], "-p must be an integer in 1..65535, not -5"),
        (["-p", "nine", "ping"], "-p must be an integer in 1..65535, not 'nine'"),
        (["--timeout", "-1", "ping"], "--timeout must be a finite number of seconds > 0, not -1"),
        (["--timeout", "0", "ping"], "--timeout must be a finite number of seconds > 0, not 0"),
        (["--timeout", "nan", "ping"], "--timeout must be a finite number of seconds > 0, not nan"),
        (["--timeout", "inf", "ping"], "--timeout must be a finite number of seconds > 0, not inf"),
        (["--timeout", "1e999", "ping"], "--timeout must be a finite number of seconds > 0"),
        (["--timeout", "soon", "ping"], "--timeout must be a finite number of seconds > 0"),
        (["-h", "", "ping"], "-h must be a host name or address, not ''"),
    ],
)
def test_ctl_bad_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(argv) == ctl.EXIT_USAGE
    line = _one_line(capsys)
    assert line.startswith(f"pairns-ctl: configuration error: {message}")
    assert line.endswith("(from the command line)")


@pytest.mark.parametrize("value", ["0", "70000", "abc"])
def test_ctl_bad_port_in_the_environment(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYRO_NS_PORT", value)
    assert ctl.main(["ping"]) == ctl.EXIT_USAGE
    line = _one_line(capsys)
    assert line.startswith("pairns-ctl: configuration error: PYRO_NS_PORT must be an integer")
    assert line.endswith("(from the environment)")


def test_ctl_bad_default_group_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYRO_NS_DEFAULTGROUP", "relative")
    assert ctl.main(["-p", "1", "ping"]) == ctl.EXIT_USAGE
    assert _one_line(capsys) == (
        "pairns-ctl: configuration error: PYRO_NS_DEFAULTGROUP must be an absolute group "
        "name such as ':Default', not 'relative' (from the environment)"
    )


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_ctl_bad_failover_timeout_in_the_environment(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYRO_NS_FAILOVER_TIMEOUT", value)
    assert ctl.main(["-p", "1", "ping"]) == ctl.EXIT_USAGE
    line = _one_line(capsys)
    assert line.startswith(
        "pairns-ctl: configuration error: PYRO_NS_FAILOVER_TIMEOUT must be a finite number"
    )
    assert line.endswith("(from the environment)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resolve"], "pairns-ctl resolve: expected 1 argument(s), got 0"),
        (["resolve", "a", "b"], "pairns-ctl resolve: expected 1 argument(s), got 2"),
        (["ping", "x"], "pairns-ctl ping: expected 0 argument(s), got 1"),
        (["register", "a"], "pairns-ctl register: expected 2 argument(s), got 1"),
        (["list", "a", "b"], "pairns-ctl list: expected 0 to 1 argument(s), got 2"),
        (["-p", "1", "nosuch"], "pairns-ctl: unknown command 'nosuch'; try --help"),
    ],
)
def test_ctl_usage_is_checked_before_connecting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl.main(argv) == ctl.EXIT_USAGE
    assert _one_line(capsys) == message


def test_every_ctl_command_declares_its_arity() -> None:
    for name, command in ctl.COMMANDS.items():
        assert 0 <= command.min_args <= command.max_args <= 2, name
        # The help line shows the arguments a command takes.
        shown = command.usage.split("  ")[0] if "  " in command.usage else ""
        assert len(shown.split()) == command.max_args, name


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PYRO_MAX_FRAME_SIZE": "100"},
            "PYRO_MAX_FRAME_SIZE must be an integer in 4096..268435456 (bytes), not 100",
        ),
        (
            {"PYRO_MAX_FRAME_SIZE": "999999999999"},
            "PYRO_MAX_FRAME_SIZE must be an integer in 4096..268435456 (bytes), not 999999999999",
        ),
        (
            {"PYRO_MAX_IN_FLIGHT": "100000"},
            "PYRO_MAX_IN_FLIGHT must be an integer in 1..65536, not 100000",
        ),
        (
            {"PYRO_MAXCONNECTIONS": "99999999"},
            "PYRO_MAXCONNECTIONS must be an integer in 1..16777216, not 99999999",
        ),
        (
            {"PAIRNS_CLOCK_OFFSET": "nan"},
            "PAIRNS_CLOCK_OFFSET must be a finite number of seconds (negative: behind), not nan",
        ),
    ],
)
def test_server_bad_environment(
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def refuse(*args: Any) -> None:
        raise AssertionError("the node started despite a bad setting")

    monkeypatch.setattr(server.trio, "run", refuse)
    assert server.main(["-n", "127.0.0.1", "-p", "0"]) == 2
    assert _one_line(capsys) == f"pairns: configuration error: {message} (from the environment)"
