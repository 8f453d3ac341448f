"""Discovery settings: the node's flags and settings, the locator's settings and plan."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pairns.cli import server
from pairns.config import Config, ConfigError, load_config
from pairns.discovery.search import Broadcast, Direct, LocatorSettings, plan


def _no_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the node started despite a bad setting")

    monkeypatch.setattr(server.trio, "run", refuse)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["-b", "70000"],
            {},
            "-b must be an integer in 0..65535 (0: any free port), not 70000 "
            "(from the command line)",
        ),
        (
            ["-b", "udp"],
            {},
            "-b must be an integer in 0..65535 (0: any free port), not 'udp' "
            "(from the command line)",
        ),
        (
            [],
            {"PYRO_NS_BC_PORT": "-1"},
            "PYRO_NS_BC_PORT must be an integer in 0..65535 "
            "(0: any free port), not -1 (from the environment)",
        ),
        (
            ["-2"],
            {"PYRO_NS2_BC_PORT": "x"},
            "PYRO_NS2_BC_PORT must be an integer in 0..65535 "
            "(0: any free port), not 'x' (from the environment)",
        ),
        (
            [],
            {"PYRO_BC_RETRIES": "-1"},
            "PYRO_BC_RETRIES must be an integer in 0..100, not -1 (from the environment)",
        ),
        (
            [],
            {"PYRO_BC_TIMEOUT": "0"},
            "PYRO_BC_TIMEOUT must be a finite number of seconds > 0, not 0 (from the environment)",
        ),
    ],
)
def test_bad_discovery_settings_are_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in list(os.environ):
        if key.startswith("PYRO_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _no_start(monkeypatch)
    assert server.main(["-n", "127.0.0.1", "-p", "0", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"pairns: configuration error: {message}"]


def _places(config: Config) -> list[tuple[str, int, str | None]]:
    return [(p.host, p.port, p.group) for p in config.responder_places]


G = "ff02::5079:726f"  # the default group


def test_flags_set_the_discovery_fields() -> None:
    config = server.config_from_args(["-n", "0.0.0.0", "-b", "5000", "-c", "10.0.0.255"], env={})
    assert (config.bc_port, config.bc_addr) == (5000, "10.0.0.255")
    assert _places(config) == [("10.0.0.255", 5000, None)]
    assert config.look_for_others and not config.allow_multiple
    config = server.config_from_args(["-n", "0.0.0.0", "-x", "-r", "-m"], env={})
    assert _places(config) == []
    assert not config.look_for_others and config.allow_multiple


def test_the_second_node_answers_on_the_second_broadcast_port() -> None:
    env = {"PYRO_NS2_BC_PORT": "6001", "PYRO_NS2_BC_ADDR": "127.255.255.255"}
    second = server.config_from_args(["-n", "10.0.0.1", "-2"], env=env)
    assert _places(second) == [("127.255.255.255", 6001, None)]
    first = server.config_from_args(["-n", "10.0.0.1", "-1"], env=env)
    assert _places(first) == [("", 9090, None)]
    single = server.config_from_args(["-n", "10.0.0.1"], env=env)
    assert _places(single) == [("", 9090, None)]
    # -b and -c win over the second node's settings.
    flagged = server.config_from_args(["-n", "fd00::1", "-2", "-b", "7000", "-c", "::"], env=env)
    assert _places(flagged) == [("::", 7000, None)]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"])
def test_a_loopback_node_answers_only_where_c_says(host: str) -> None:
    assert _places(Config(host=host)) == []
    assert _places(Config(host=host, bc_addr="127.255.255.255")) == [
        ("127.255.255.255", 9090, None)
    ]
    # An IPv6 multicast address given to -c is the group to join, on every address.
    assert _places(Config(host=host, bc_addr="ff05::1:2")) == [("::", 9090, "ff05::1:2")]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "node-a.example"])
def test_ipv4_nodes_answer_broadcasts_on_every_interface(host: str) -> None:
    assert _places(Config(host=host)) == [("", 9090, None)]


@pytest.mark.parametrize("host", ["::", "fd00::1", "fe80::1", "2001:db8::7"])
def test_ipv6_nodes_join_the_multicast_group(host: str) -> None:
    assert _places(Config(host=host)) == [("::", 9090, G)]
    assert _places(Config(host=host, mc_group="ff05::99")) == [("::", 9090, "ff05::99")]
    # With no group an IPv6 node still answers a request sent to its address.
    assert _places(Config(host=host, mc_group=None)) == [("::", 9090, None)]


def test_a_node_on_every_interface_of_both_families_answers_on_both() -> None:
    assert _places(Config(host="")) == [("", 9090, None), ("::", 9090, G)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", G), ("none", None), ("NONE", None), ("ff05::1", "ff05::1"), (" ff02::7 ", "ff02::7")],
)
def test_the_group_setting(text: str, expected: str | None) -> None:
    assert load_config(env={"PYRO_NS_MC_GROUP": text}).mc_group == expected
    assert LocatorSettings.from_env({"PYRO_NS_MC_GROUP": text}).mc_group == (
        G if text == "" else expected
    )


@pytest.mark.parametrize("text", ["fd00::1", "224.0.0.1", "ff02::zz", "yes"])
def test_a_group_that_is_not_an_ipv6_multicast_address_is_refused(text: str) -> None:
    message = "PYRO_NS_MC_GROUP must be an IPv6 multicast address"
    with pytest.raises(ConfigError, match=message):
        load_config(env={"PYRO_NS_MC_GROUP": text})
    with pytest.raises(ConfigError, match=message):
        LocatorSettings.from_env({"PYRO_NS_MC_GROUP": text})


def test_locator_settings_from_the_environment() -> None:
    settings = LocatorSettings.from_env({})
    assert (settings.bc_port, settings.ns2_bc_port) == (9090, 9091)
    assert (settings.retries, settings.timeout) == (1, 0.75)
    assert settings.bc_addr == settings.ns2_bc_addr == "255.255.255.255"
    assert (settings.mc_group, settings.mc_interface) == (G, None)
    with pytest.raises(ConfigError, match=r"PYRO_NS2_BC_PORT must be an integer in 1\.\.65535"):
        LocatorSettings.from_env({"PYRO_NS2_BC_PORT": "0"})
    with pytest.raises(ConfigError, match="PYRO_BC_TIMEOUT"):
        LocatorSettings.from_env({"PYRO_BC_TIMEOUT": "nan"})


def test_the_plan_asks_both_ports_then_every_fallback() -> None:
    settings = LocatorSettings.from_env(
        {
            "PYRO_NS_BC_ADDR": "127.255.255.255",
            "PYRO_NS_BC_PORT": "5000",
            "PYRO_NS2_BC_PORT": "5001",
            "PYRO_BC_RETRIES": "2",
            "PYRO_NS_HOSTNAME": "ns1",
            "PYRO_NS_PORT": "6000",
            "PYRO_NS2_HOSTNAME": "ns2",
            "PYRO_NS2_PORT": "6001",
            "PYRO_NS_MC_GROUP": "ff05::7",
            "PYRO_NS_MC_INTERFACE": "eth1",
        }
    )
    steps = plan(settings, local_hostname="me")
    destinations = (
        ("127.255.255.255", 5000),
        ("255.255.255.255", 5001),
        ("ff05::7", 5000),
        ("ff05::7", 5001),
    )
    assert steps == [
        Broadcast(destinations, 3, 0.75, "eth1"),
        Direct("ns1", 6000),
        Direct("ns2", 6001),
        Direct("me", 6000),
        Direct("me", 6001),
        Direct("localhost", 6000),
        Direct("localhost", 6001),
    ]
    assert str(steps[0]) == (
        "broadcast to 127.255.255.255:5000, 255.255.255.255:5001, [ff05::7]:5000, "
        "[ff05::7]:5001 (IPv6 on eth1) (3 rounds of 0.75 s)"
    )


def test_the_plan_with_defaults_and_with_a_port() -> None:
    settings = LocatorSettings()
    steps = plan(settings, bcaddr="127.255.255.255", local_hostname="localhost")
    assert steps == [
        Broadcast((("127.255.255.255", 9090), ("127.255.255.255", 9091)), 2, 0.75),
        Direct("localhost", 9090),
        Direct("localhost", 9091),
    ]
    # Pyro 3's getNS(port=P) without a host: P is the one port asked, everywhere.
    steps = plan(settings, port=7000, bcaddr="127.255.255.255", local_hostname="me")
    assert steps == [
        Broadcast((("127.255.255.255", 7000),), 2, 0.75),
        Direct("me", 7000),
        Direct("localhost", 7000),
    ]
    # An IPv6 bcaddr is the one place asked too; no group: IPv4 only.
    steps = plan(settings, bcaddr="ff05::3", local_hostname="")
    assert steps[0] == Broadcast((("ff05::3", 9090), ("ff05::3", 9091)), 2, 0.75)
    steps = plan(LocatorSettings(mc_group=None), local_hostname="")
    assert steps[0] == Broadcast((("255.255.255.255", 9090), ("255.255.255.255", 9091)), 2, 0.75)
    steps = plan(LocatorSettings(), local_hostname="")
    assert steps[0].destinations[2:] == ((G, 9090), (G, 9091))  # type: ignore[union-attr]
    # Only PYRO_NS_HOSTNAME set: the twin is looked for on that host too.
    steps = plan(LocatorSettings(ns_host="ns1"), local_hostname="")
    assert steps[1:3] == [Direct("ns1", 9090), Direct("ns1", 9091)]
