"""The connection and broadcast guards: ``--allow``, ``--allow-twin``, ``-s`` (issue 22).

Nodes run in-process on 127.0.0.1 (``open_node``, port 0); the plugins are files in
the test's temporary directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
import pytest

from pairns.config import Config, ConfigError, load_config
from pairns.discovery.protocol import ResponderPolicy, Verdict
from pairns.errors import ConnectionClosedError, ConnectionDeniedError
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.node import node_guard, open_node
from pairns.replication.acceptor import PEER_OBJECT_ID
from pairns.rpc.aproxy import AsyncProxy
from pairns.security.guard import AddressList, NodeGuard, PluginError, load_plugin

HOST = "127.0.0.1"


def config(**kw: Any) -> Config:
    return attrs.evolve(Config(host=HOST, port=0, responder=False, storage="."), **kw)


def plugin_file(tmp_path: Path, body: str, name: str = "plugin") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return str(path)


# -- address lists and the guard alone ---------------------------------------------------


def test_address_lists_hold_networks_and_mapped_addresses() -> None:
    lst = AddressList.of(["10.0.0.0/8", "192.0.2.7", "fd00::/8"])
    assert lst.holds(("10.1.2.3", 1))
    assert lst.holds(("::ffff:10.1.2.3", 1))  # IPv4-mapped, as a dual-stack socket says
    assert lst.holds(("192.0.2.7", 1)) and not lst.holds(("192.0.2.8", 1))
    assert lst.holds(("fd00::1%eth0", 1))
    assert not lst.holds(None) and not lst.holds(("not an address", 1))
    assert not AddressList().restricts


def test_a_twin_only_address_reaches_only_the_peer_endpoint() -> None:
    guard = NodeGuard(
        allow=AddressList.of(["10.0.0.0/8"]),
        allow_twin=AddressList.of(["192.0.2.7"]),
        peer_objects=frozenset({PEER_OBJECT_ID}),
    )
    assert guard.admit(("10.0.0.1", 5)).refusal is None
    assert guard.admit(("10.0.0.1", 5)).only is None
    twin = guard.admit(("192.0.2.7", 5))
    assert twin.refusal is None and twin.only == frozenset({PEER_OBJECT_ID})
    assert guard.admit(("192.0.2.8", 5)).refusal is not None
    assert guard.may_be_twin(("192.0.2.7", 1)) and not guard.may_be_twin(("10.0.0.1", 1))
    assert guard.refusals.counts == {"address": 1, "twin": 1}


def test_plugin_answers_and_failures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = plugin_file(
        tmp_path,
        "def accept_host(address):\n"
        "    return {'1.1.1.1': True, '2.2.2.2': False, '3.3.3.3': 'go away'}.get(address[0], 7)\n"
        "def accept_connection(address, identified):\n"
        "    if address[0] == '9.9.9.9':\n"
        "        raise RuntimeError('boom')\n"
        "    return identified or 'identify yourself'\n",
    )
    guard = NodeGuard(plugin=load_plugin(spec))
    assert guard.admit(("1.1.1.1", 1)).refusal is None
    assert guard.admit(("2.2.2.2", 1)).refusal == "refused by the security plugin"
    assert guard.admit(("3.3.3.3", 1)).refusal == "go away"
    with caplog.at_level(logging.ERROR, "pairns.security"):
        assert guard.admit(("4.4.4.4", 1)).refusal is not None  # 7: not an answer
        assert guard.identified(("9.9.9.9", 1), True) is not None  # raised: refused
    assert "returned 7" in caplog.text and "RuntimeError: boom" in caplog.text
    assert guard.identified(("1.1.1.1", 1), False) == "identify yourself"
    assert guard.identified(("1.1.1.1", 1), True) is None
    assert guard.answer_location(("1.1.1.1", 1))  # no broadcast guard in this plugin


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 1\n", "defines none of"),
        ("accept_host = 3\n", "not a function"),
        ("raise ImportError('nope')\n", "cannot import"),
    ],
)
def test_a_bad_plugin_is_a_configuration_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        load_plugin(plugin_file(tmp_path, body))
    cfg = load_config(env={"PYRO_NS_SECURITY_PLUGIN": plugin_file(tmp_path, body, "p2")})
    with pytest.raises(ConfigError, match=r"PYRO_NS_SECURITY_PLUGIN: .* the environment"):
        node_guard(cfg)


def test_a_missing_module_is_a_configuration_error() -> None:
    with pytest.raises(PluginError, match="cannot import security plugin 'no_such_module_x'"):
        load_plugin("no_such_module_x")


def test_allow_lists_are_settings() -> None:
    cfg = load_config(env={"PYRO_NS_ALLOW": "10.0.0.0/8, 192.0.2.7", "PYRO_NS_ALLOW_TWIN": ""})
    assert cfg.allow == ("10.0.0.0/8", "192.0.2.7/32") and cfg.allow_twin == ()
    with pytest.raises(ConfigError, match=r"^PYRO_NS_ALLOW must be a list of addresses"):
        load_config(env={"PYRO_NS_ALLOW": "10.0.0.0/33"})


def test_the_broadcast_guard_is_asked_after_the_rate_limit() -> None:
    asked: list[tuple[str, int]] = []

    def guard(peer: tuple[str, int]) -> bool:
        asked.append(peer)
        return peer[0] == "127.0.0.1"

    policy = ResponderPolicy.with_clock(lambda: 0.0)
    policy.guard = guard
    assert policy.receive(b"location", "127.0.0.1", port=5) is Verdict.ANSWER
    assert policy.receive(b"location", "127.0.0.2", port=6) is Verdict.REFUSED
    assert policy.receive(b"garbage", "127.0.0.2", port=6) is Verdict.GARBAGE
    assert asked == [("127.0.0.1", 5), ("127.0.0.2", 6)]
    assert policy.statistics.refused == 1


# -- on a node ----------------------------------------------------------------------------


async def test_a_node_refuses_addresses_outside_allow() -> None:
    async with open_node(config(allow=("10.0.0.0/8",))) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port) as ns:
            with pytest.raises(ConnectionClosedError, match="not allowed"):
                await ns.ping()
        status = node.service.status()
        assert status["refused_by_address"] >= 1
    async with open_node(config(allow=("127.0.0.0/8",))) as node:
        async with AsyncNameServerProxy(*node.address) as ns:
            assert await ns.ping()
        assert node.service.status()["refused_by_address"] == 0


async def test_an_address_allowed_only_as_the_twin_reaches_only_the_peer_endpoint() -> None:
    cfg = config(allow=("10.0.0.0/8",), allow_twin=("127.0.0.1",), role=1, twin="127.0.0.1:1")
    async with open_node(cfg) as node:
        host, port = node.address
        async with AsyncProxy.for_address(host, port, NAMESERVER_OBJECT_ID) as ns:
            with pytest.raises(ConnectionDeniedError, match="may not call"):
                await ns.call("ping")
        async with AsyncProxy.for_address(host, port, PEER_OBJECT_ID) as peer:
            # Reached (the proof then fails: a wrong nonce), not turned away.
            with pytest.raises(Exception, match="invalid challenge"):
                await peer.call("challenge", "x", False)


async def test_a_twin_outside_allow_twin_is_refused_at_the_peer_endpoint() -> None:
    cfg = config(allow_twin=("10.9.9.9",), role=1, twin="127.0.0.1:1")
    async with open_node(cfg) as node:
        host, port = node.address
        async with AsyncProxy.for_address(host, port, PEER_OBJECT_ID) as peer:
            with pytest.raises(Exception, match="may not act as the twin"):
                await peer.call("challenge", "00" * 32, False)
        assert node.service.status()["refused_peer_calls"] == 1


async def test_the_plugin_refuses_after_the_handshake_and_is_counted(tmp_path: Path) -> None:
    spec = plugin_file(
        tmp_path,
        "seen = []\n"
        "def accept_connection(address, identified):\n"
        "    seen.append((address[0], identified))\n"
        "    return True if identified else 'only identified clients'\n",
    )
    async with open_node(config(identification="id", security_plugin=spec)) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port, identification="id") as ns:
            assert await ns.ping()
    async with open_node(config(security_plugin=spec)) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port) as ns:
            with pytest.raises(ConnectionDeniedError, match="only identified clients"):
                await ns.ping()
        status = node.service.status()
        assert status["refused_by_guard"] == 1
        assert node.daemon.statistics().refused_by_guard == 1


async def test_a_plugin_that_raises_refuses_and_the_node_keeps_serving(tmp_path: Path) -> None:
    spec = plugin_file(
        tmp_path,
        "calls = [0]\n"
        "def accept_host(address):\n"
        "    calls[0] += 1\n"
        "    if calls[0] % 2:\n"
        "        raise ValueError('odd')\n"
        "    return True\n",
        name="flaky",
    )
    async with open_node(config(security_plugin=spec)) as node:
        host, port = node.address
        outcomes = []
        for _ in range(4):
            async with AsyncNameServerProxy(host, port) as ns:
                try:
                    outcomes.append(await ns.ping())
                except ConnectionClosedError:
                    outcomes.append(False)
        # Each failure refused one connection; the node served the next one.
        assert outcomes == [False, True, False, True]
        assert node.service.status()["refused_by_address"] == 2
