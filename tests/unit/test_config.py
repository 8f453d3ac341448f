"""Configuration layering: defaults < TOML < environment < flags, each value checked once.

A bad value is one line naming the setting, what it accepts, the value and its origin.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairns.cli.server import clock_offset, config_from_args
from pairns.config import SETTINGS, Config, ConfigError, Origin, load_config
from pairns.rpc.daemon import DaemonLimits
from pairns.wire import limits


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


# -- Issue 19: every setting is checked against its range, naming where it came from --

#: Numeric settings: (PYRO name, smallest allowed, largest allowed); None: no integer bound.
INTEGER_SETTINGS = [
    ("PYRO_NS_PORT", 0, 65535),
    ("PYRO_NS2_PORT", 0, 65535),
    ("PYRO_MAXCONNECTIONS", 1, limits.MAX_MAX_CONNECTIONS),
    ("PYRO_MAX_FRAME_SIZE", limits.MIN_MAX_FRAME_SIZE, limits.MAX_MAX_FRAME_SIZE),
    ("PYRO_MAX_IN_FLIGHT", 1, limits.MAX_MAX_IN_FLIGHT),
    ("PYRO_MAX_QUEUED_REPLY_BYTES", 0, limits.MAX_MAX_QUEUED_REPLY_BYTES),
    ("PYRO_NS_BC_PORT", 0, 65535),
    ("PYRO_NS2_BC_PORT", 0, 65535),
    ("PYRO_BC_RETRIES", 0, 100),
    ("PYRO_NS_ROLE", 0, 2),
]
#: Seconds settings: (PYRO name, whether 0 is allowed).
SECONDS_SETTINGS = [
    ("PYRO_HANDSHAKE_TIMEOUT", False),
    ("PYRO_IDLE_TIMEOUT", True),
    ("PYRO_NS_PEER_TIMEOUT", False),
    ("PYRO_NS_MAX_CLOCK_SKEW", False),
    ("PYRO_BC_TIMEOUT", False),
]


def _refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_numeric_setting_is_covered_here() -> None:
    numeric = {
        key
        for key, field in SETTINGS.items()
        if isinstance(getattr(Config(), field), (int, float))
        and not isinstance(getattr(Config(), field), bool)
    }
    assert numeric == {k for k, *_ in INTEGER_SETTINGS} | {k for k, _ in SECONDS_SETTINGS}


@pytest.mark.parametrize(("key", "low", "high"), INTEGER_SETTINGS)
def test_integer_settings_at_their_edges(key: str, low: int, high: int) -> None:
    field = SETTINGS[key]
    assert getattr(load_config(env={key: str(low)}), field) == low
    assert getattr(load_config(env={key: f" {high} "}), field) == high
    for text in [str(low - 1), str(high + 1), "-1", "999999999999", "9" * 40]:
        if low <= int(text) <= high:
            continue
        message = _refused({key: text})
        assert message.startswith(f"{key} must be an integer in {low}..{high}")
        assert message.endswith(f", not {text} (from the environment)")
    for text in ["", "abc", "1.5", "1e3", "nan", "inf", "0x10"]:
        message = _refused({key: text})
        assert message.startswith(f"{key} must be an integer in {low}..{high}")
        assert message.endswith(f", not {text!r} (from the environment)")


@pytest.mark.parametrize(("key", "zero_allowed"), SECONDS_SETTINGS)
def test_seconds_settings_at_their_edges(key: str, zero_allowed: bool) -> None:
    field = SETTINGS[key]
    assert getattr(load_config(env={key: "0.001"}), field) == 0.001
    assert getattr(load_config(env={key: "1e9"}), field) == 1e9
    if zero_allowed:
        assert getattr(load_config(env={key: "0"}), field) == 0.0
    bad = ["-1", "-0.5", "nan", "inf", "-inf", "1e400", "abc", ""]
    if not zero_allowed:
        bad += ["0", "-0", "0.0"]
    for text in bad:
        message = _refused({key: text})
        assert message.startswith(f"{key} must be a finite number of seconds")
        assert "(from the environment)" in message


@settings(max_examples=200, deadline=None)
@given(st.integers())
def test_max_frame_size_is_accepted_exactly_in_its_range(value: int) -> None:
    env = {"PYRO_MAX_FRAME_SIZE": str(value)}
    if limits.MIN_MAX_FRAME_SIZE <= value <= limits.MAX_MAX_FRAME_SIZE:
        assert load_config(env=env).max_frame_size == value
    else:
        assert "PYRO_MAX_FRAME_SIZE must be an integer" in _refused(env)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers().map(float))
def test_a_timeout_is_accepted_exactly_when_positive_and_finite(value: float) -> None:
    env = {"PYRO_NS_PEER_TIMEOUT": repr(value)}
    if math.isfinite(value) and value > 0:
        assert load_config(env=env).peer_timeout == value
    else:
        assert "PYRO_NS_PEER_TIMEOUT must be a finite number of seconds > 0" in _refused(env)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12))
def test_any_text_is_a_value_or_a_one_line_error(text: str) -> None:
    for key in ("PYRO_NS_PORT", "PYRO_IDLE_TIMEOUT", "PYRO_CHECKSUM", "PYRO_NS_ACK"):
        try:
            load_config(env={key: text})
        except ConfigError as exc:
            assert str(exc).startswith(f"{key} must be ")
            assert str(exc).endswith("(from the environment)")


def test_the_range_limits_every_layer_the_same_way(tmp_path: Path) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text("PYRO_MAX_IN_FLIGHT = 100000\n")
    with pytest.raises(ConfigError) as info:
        load_config(toml, env={})
    assert str(info.value) == (
        f"PYRO_MAX_IN_FLIGHT must be an integer in 1..{limits.MAX_MAX_IN_FLIGHT}, "
        f"not 100000 (from config file {toml})"
    )
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"max_in_flight": 0}, flags={"max_in_flight": "--x"})
    assert str(info.value) == (
        f"--x must be an integer in 1..{limits.MAX_MAX_IN_FLIGHT}, not 0 (from the command line)"
    )
    with pytest.raises(ConfigError, match=r"^max_in_flight must .* \(from the program's Config\)"):
        Config(max_in_flight=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PYRO_IDLE_TIMEOUT = nan", "PYRO_IDLE_TIMEOUT must be a finite number of seconds >= 0"),
        ("PYRO_IDLE_TIMEOUT = -inf", "PYRO_IDLE_TIMEOUT must be a finite number of seconds >= 0"),
        ("PYRO_NS_PORT = 9090.0", "PYRO_NS_PORT must be an integer in 0..65535"),
        ("PYRO_NS_PORT = 9223372036854775807", "PYRO_NS_PORT must be an integer in 0..65535"),
        ("PYRO_MAXCONNECTIONS = 0", "PYRO_MAXCONNECTIONS must be an integer in 1.."),
        ("PYRO_NS_ACK = 'always'", "PYRO_NS_ACK must be one of local, twin"),
        ("PYRO_CHECKSUM = 2", "PYRO_CHECKSUM must be a boolean"),
        ("PYRO_NS_PERSISTENT = 1", "PYRO_NS_PERSISTENT must be a boolean"),
        ("PYRO_NS_HOSTNAME = 5", "PYRO_NS_HOSTNAME must be a string"),
    ],
)
def test_bad_toml_values_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(toml, env={})
    assert str(info.value).startswith(message)
    assert str(info.value).endswith(f"(from config file {toml})")


def test_toml_values_are_normalised(tmp_path: Path) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text('PYRO_CHECKSUM = 1\nPYRO_HANDSHAKE_TIMEOUT = 3\nPYRO_NS_URIFILE = ""\n')
    config = load_config(toml, env={})
    assert config.checksums is True
    assert config.handshake_timeout == 3.0 and type(config.handshake_timeout) is float
    assert config.uri_file is None


def test_a_secret_is_never_shown(tmp_path: Path) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text("PYRO_NS_IDENTIFICATION = 73519\n")
    with pytest.raises(ConfigError) as info:
        load_config(toml, env={})
    assert "73519" not in str(info.value)
    assert str(info.value).startswith("PYRO_NS_IDENTIFICATION must be a string")


def test_origins_are_tracked_per_value(tmp_path: Path) -> None:
    toml = tmp_path / "ns.toml"
    toml.write_text("PYRO_NS_PORT = 4000\nPYRO_MAX_IN_FLIGHT = 8\n")
    config = load_config(
        toml,
        env={"PYRO_NS_PORT": "4001", "PYRO_IDLE_TIMEOUT": "30"},
        overrides={"host": "127.0.0.1"},
        flags={"host": "-n"},
    )
    assert config.origin_of("port") == Origin.environment("PYRO_NS_PORT")
    assert config.origin_of("max_in_flight") == Origin.file("PYRO_MAX_IN_FLIGHT", toml)
    assert config.origin_of("idle_timeout") == Origin("PYRO_IDLE_TIMEOUT", "the environment")
    assert config.origin_of("host") == Origin("-n", "the command line")
    assert config.origin_of("ack") == Origin("PYRO_NS_ACK", "the built-in default")
    # Where a value came from is not part of the configuration's value.
    assert config == attrs.evolve(config, origins={})


def test_defaults_are_the_wire_limits_and_the_daemon_agrees() -> None:
    config = Config()
    assert config.max_frame_size == limits.DEFAULT_MAX_FRAME_SIZE
    assert config.max_in_flight == limits.DEFAULT_MAX_IN_FLIGHT
    assert config.max_connections == limits.DEFAULT_MAX_CONNECTIONS
    assert config.handshake_timeout == limits.DEFAULT_HANDSHAKE_TIMEOUT
    assert config.idle_timeout == limits.DEFAULT_IDLE_TIMEOUT
    daemon = DaemonLimits()
    for field in ("max_frame_size", "max_in_flight", "max_connections"):
        assert getattr(daemon, field) == getattr(config, field), field
    for field in ("handshake_timeout", "idle_timeout"):
        assert getattr(daemon, field) == getattr(config, field), field


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [s for s in INTEGER_SETTINGS if SETTINGS[s[0]] in attrs.fields_dict(DaemonLimits)],
)
def test_whatever_config_accepts_the_daemon_accepts(key: str, low: int, high: int) -> None:
    # A value that passes Config must not fail later, inside the daemon, with a traceback.
    for value in (low, high):
        config = load_config(env={key: str(value)})
        DaemonLimits(**{SETTINGS[key]: getattr(config, SETTINGS[key])})


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["-p", "70000"], {}, "-p must be an integer in 0..65535 (0: any free port), not 70000"),
        (["-p-5"], {}, "-p must be an integer in 0..65535 (0: any free port), not -5"),
        (["-p", "http"], {}, "-p must be an integer in 0..65535 (0: any free port), not 'http'"),
        (["-1", "h:0"], {}, "-1: invalid address 'h:0': the port must be 1..65535"),
        (["-2", "h:70000"], {}, "-2: invalid address 'h:70000': the port must be 1..65535"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args(argv, env=env)
    assert str(info.value) == f"{message} (from the command line)"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["-2"], {"PYRO_NS_PORT": "0"}, "PYRO_NS_PORT (the twin's port)"),
        (["-1"], {"PYRO_NS2_PORT": "0"}, "PYRO_NS2_PORT (the twin's port)"),
    ],
)
def test_a_twin_cannot_be_on_port_zero(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args(argv, env=env)
    assert str(info.value) == (
        f"{message} must be an integer in 1..65535, not 0 (from the environment)"
    )
    # Listening on any free port is still fine for the node itself.
    assert config_from_args(["-2", "-p", "0"], env={"PYRO_NS2_PORT": "0"}).port == 0


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "soon"])
def test_a_bad_clock_offset_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^PAIRNS_CLOCK_OFFSET must be a finite number"):
        clock_offset({"PAIRNS_CLOCK_OFFSET": text})
    assert clock_offset({"PAIRNS_CLOCK_OFFSET": "-3.5"}) == -3.5


# -- Issue 21: role and twin as settings (a TOML file describes a whole node), logging --


def test_role_and_twin_from_the_environment_resolve_like_the_flags() -> None:
    env = {"PYRO_NS_ROLE": "2", "PYRO_NS_TWIN": "10.0.0.1:4000", "PYRO_NS_HOSTNAME": "10.0.0.2"}
    config = config_from_args([], env=env)
    assert (config.role, config.twin, config.port) == (2, "10.0.0.1:4000", 9091)
    assert config.twin_address == ("10.0.0.1", 4000)
    # -1/-2 win; without an address they keep PYRO_NS_TWIN, with one they replace it.
    assert config_from_args(["-1"], env=env).role == 1
    assert config_from_args(["-1"], env=env).twin == "10.0.0.1:4000"
    assert config_from_args(["-2", "h:5"], env=env).twin == "h:5"
    # Without a PYRO_NS_TWIN, Pyro 3's defaults as before.
    assert config_from_args([], env={"PYRO_NS_ROLE": "1"}).twin == "localhost:9091"


def test_a_twin_without_a_role_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args([], env={"PYRO_NS_TWIN": "h:1"})
    assert str(info.value).startswith("PYRO_NS_TWIN names a twin but the node has no role")
    assert str(info.value).endswith("(from the environment)")


def test_a_bad_twin_address_names_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_args([], env={"PYRO_NS_ROLE": "1", "PYRO_NS_TWIN": "h:0"})
    assert str(info.value) == (
        "PYRO_NS_TWIN: invalid address 'h:0': the port must be 1..65535 (from the environment)"
    )


def test_log_settings() -> None:
    config = config_from_args([], env={"PYRO_NS_LOG_FORMAT": "json", "PYRO_NS_LOG_FILE": "x.log"})
    assert (config.log_format, config.log_file) == ("json", "x.log")
    flagged = config_from_args(["--log-format", "human", "--log-file", "y.log"], env={})
    assert (flagged.log_format, flagged.log_file) == ("human", "y.log")
    assert (Config().log_format, Config().log_file) == ("human", None)
    message = _refused({"PYRO_NS_LOG_FORMAT": "xml"})
    assert message == (
        "PYRO_NS_LOG_FORMAT must be one of human, json, not 'xml' (from the environment)"
    )
