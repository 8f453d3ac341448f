"""``-1``/``-2`` on the command line: own port and twin address (Pyro 3's rule)."""

from __future__ import annotations

import pytest

from pairns.cli.server import config_from_args
from pairns.config import ConfigError, load_config, parse_address


@pytest.mark.parametrize(
    ("argv", "env", "port", "twin"),
    [
        (["-1"], {}, 9090, "localhost:9091"),
        (["-2"], {}, 9091, "localhost:9090"),
        (["-n", "h", "-p", "4000", "-1", "h:5000"], {}, 4000, "h:5000"),
        (["-n", "h", "-p", "5000", "-2", "h:4000"], {}, 5000, "h:4000"),
        (["-2", "other"], {}, 9091, "other:9090"),
        (["-1", "other"], {}, 9090, "other:9091"),
        (["-2", "-p", "7000"], {}, 7000, "localhost:9090"),
        (["-1"], {"PYRO_NS2_HOSTNAME": "b", "PYRO_NS2_PORT": "8001"}, 9090, "b:8001"),
        (["-2"], {"PYRO_NS_PORT": "8000", "PYRO_NS2_PORT": "8001"}, 8001, "localhost:8000"),
        (["-n", "127.0.0.1", "-1"], {}, 9090, "127.0.0.1:9091"),
        (["-2", "[::1]:4000"], {}, 9091, "[::1]:4000"),
    ],
)
def test_role_flags_resolve_port_and_twin(
    argv: list[str], env: dict[str, str], port: int, twin: str
) -> None:
    config = config_from_args(argv, env=env)
    assert config.port == port
    assert config.twin == twin
    assert config.twin_address == parse_address(twin, 0)


def test_single_node_has_no_twin_and_keeps_its_port() -> None:
    config = config_from_args(["-p", "1234"], env={})
    assert (config.role, config.port, config.twin_address) == (0, 1234, None)


def test_pairing_settings_come_from_env_and_flags() -> None:
    config = config_from_args(
        ["-1", "--ack", "twin"], env={"PYRO_NS_PEER_TIMEOUT": "0.5", "PYRO_NS_ACK": "local"}
    )
    assert config.ack == "twin" and config.peer_timeout == 0.5
    assert load_config(env={"PYRO_NS_ACK": "twin"}).ack == "twin"


@pytest.mark.parametrize(
    "env",
    [{"PYRO_NS_ACK": "sometimes"}, {"PYRO_NS_PEER_TIMEOUT": "0"}, {"PYRO_NS2_PORT": "70000"}],
)
def test_bad_pairing_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(env=env)


def test_one_role_only() -> None:
    with pytest.raises(SystemExit):
        config_from_args(["-1", "-2"], env={})


@pytest.mark.parametrize("text", ["", ":5", "h:x", "h:0", "h:70000", "[::1", "[::1]x"])
def test_bad_twin_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_address(text, 9090)
