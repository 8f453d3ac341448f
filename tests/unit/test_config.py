"""Configuration layering: defaults < TOML < environment < flags, each value checked once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairns.config import Config, ConfigError, load_config


def test_defaults() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.port == 9090
    assert config.default_group == ":Default"
    assert config.uri_path == Path(".") / "Pyro_NS_URI"
    assert config.database_path == Path(".") / "Pyro_NS_database"


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text('PYRO_NS_PORT = 4000\nPYRO_NS_HOSTNAME = "127.0.0.2"\nPYRO_STORAGE = "/srv"\n')
    config = load_config(toml, env={})
    assert (config.port, config.host, config.storage) == (4000, "127.0.0.2", "/srv")
    config = load_config(toml, env={"PYRO_NS_PORT": "4001"})
    assert (config.port, config.host) == (4001, "127.0.0.2")
    config = load_config(toml, env={"PYRO_NS_PORT": "4001"}, overrides={"port": 4002})
    assert config.port == 4002
    assert config.uri_path == Path("/srv/Pyro_NS_URI")


def test_identification_is_not_in_repr() -> None:
    config = load_config(env={"PYRO_NS_IDENTIFICATION": "s3cret"})
    assert config.identification == "s3cret"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"PYRO_NS_PORT": "http"}, "PYRO_NS_PORT"),
        ({"PYRO_NS_PORT": "70000"}, "PYRO_NS_PORT must be an integer in 0..65535"),
        ({"PYRO_NS_DEFAULTGROUP": "Default"}, "PYRO_NS_DEFAULTGROUP"),
        ({"PYRO_CHECKSUM": "maybe"}, "PYRO_CHECKSUM"),
        ({"PYRO_HANDSHAKE_TIMEOUT": "-1"}, "PYRO_HANDSHAKE_TIMEOUT"),
    ],
)
def test_bad_environment_values(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(env=env)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PYRO_NS_PORT = 'x'\n", "PYRO_NS_PORT must be an integer"),
        ("NOT_A_SETTING = 1\n", "unknown setting 'NOT_A_SETTING'"),
        ("PYRO_NS_PORT = \n", "ns.toml"),
        ("PYRO_NS_PORT = true\n", "PYRO_NS_PORT must be an integer"),
    ],
)
def test_bad_toml(tmp_path: Path, text: str, fragment: str) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(toml, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml", env={})
