"""TLS nodes in process: configuration errors, a TLS pair (the twin link over mutual
TLS, with identification on top), failover between TLS nodes, the locator.

Certificates come from ``tls_files`` (tests/conftest.py, made by trustme at run time);
everything talks to 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from pairns.cli import server
from pairns.config import Config, ConfigError, load_config
from pairns.discovery.search import LocatorSettings
from pairns.errors import TLSError
from pairns.naming.locator import NameServerLocator
from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy
from pairns.node import Node, open_node
from pairns.rpc.tls_server import PLAIN_CLIENT_WAIT
from pairns.testing.faultproxy import FaultProxy, open_fault_proxy
from pairns.tls import node_tls

HOST = "127.0.0.1"
PEER_TIMEOUT = 0.4
FAILOVER = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tls_settings(files: Any, cert: str = "server", *, mutual: bool = True) -> dict[str, Any]:
    return {
        "tls_cert": str(files.path(cert)),
        "tls_key": str(files.key(cert)),
        "tls_ca": str(files.path("ca")) if mutual else None,
    }


def node_config(tmp: Path, name: str, port: int, role: int, twin: int, **kw: Any) -> Config:
    kw.setdefault("peer_timeout", PEER_TIMEOUT)
    return Config(
        host=HOST,
        port=port,
        role=role,
        twin=f"{HOST}:{twin}",
        uri_file=str(tmp / f"{name}.uri"),
        **kw,
    )


async def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not check():
            await trio.sleep(0.02)


def link(node: Node) -> str:
    assert node.replicator is not None
    return str(node.replicator.status()["link"])


@asynccontextmanager
async def tls_pair(
    tmp: Path, kw1: dict[str, Any], kw2: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Node, Node, FaultProxy]]:
    """A pair of TLS nodes; node 1 is also reachable through a fault proxy (raw TCP, so
    TLS passes through it unchanged)."""
    p1, p2 = free_port(), free_port()
    async with (
        open_node(node_config(tmp, "n1", p1, 1, p2, **kw1)) as n1,
        open_node(node_config(tmp, "n2", p2, 2, p1, **(kw1 if kw2 is None else kw2))) as n2,
        open_fault_proxy((HOST, p1)) as proxy,
    ):
        yield n1, n2, proxy


# -- configuration ---------------------------------------------------------------------


def test_node_tls_settings_errors_name_the_setting(tls_files: Any, tmp_path: Path) -> None:
    assert node_tls(Config()) is None
    ok = node_tls(Config(**tls_settings(tls_files)))
    assert ok is not None and ok.mutual
    key_only = load_config(env={"PYRO_NS_TLS_KEY": str(tls_files.key("server"))})
    with pytest.raises(ConfigError, match=r"^PYRO_NS_TLS_KEY \(from the environment\) needs"):
        node_tls(key_only)
    missing = load_config(env={"PYRO_NS_TLS_CERT": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError, match=r"^PYRO_NS_TLS_CERT \(from the environment\): cannot"):
        node_tls(missing)
    wrong_key = Config(tls_cert=str(tls_files.path("server")), tls_key=str(tls_files.key("client")))
    with pytest.raises(ConfigError, match=r"tls_key .*matching private key"):
        node_tls(wrong_key)
    not_ca = tmp_path / "junk.pem"
    not_ca.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM CA certificate"):
        node_tls(Config(**{**tls_settings(tls_files), "tls_ca": str(not_ca)}))


def test_the_command_exits_2_on_unusable_tls_files(
    tls_files: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-n", HOST, "-p", "0", "-x"]
    assert server.main([*args, "--tls-cert", str(tmp_path / "missing.pem")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pairns: configuration error: --tls-cert (from the command line)")
    assert err.count("\n") == 1
    assert server.main([*args, "--tls-ca", str(tls_files.path("ca"))]) == 2
    assert "--tls-ca (from the command line) needs a certificate too" in capsys.readouterr().err
    config = server.config_from_args(
        [*args, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"]
    )
    assert (config.tls_cert, config.tls_key, config.tls_ca) == ("c.pem", "k.pem", "ca.pem")


# -- a TLS pair ------------------------------------------------------------------------


async def test_a_tls_pair_links_over_mutual_tls_and_replicates(
    tls_files: Any, tmp_path: Path
) -> None:
    kw = {**tls_settings(tls_files), "identification": "s3cret"}
    async with tls_pair(tmp_path, kw) as (n1, n2, _):
        assert str(n1.uri).startswith("PYROSSL://")
        await wait_for(lambda: link(n1) == "paired" and link(n2) == "paired")
        client = tls_files.client_context("client")
        for node in (n1, n2):
            assert node.daemon.statistics().tls_failures == 0
        async with (
            AsyncNameServerProxy(
                HOST, n1.address[1], ssl_context=client, identification="s3cret", timeout=5.0
            ) as c1,
            AsyncNameServerProxy(
                HOST, n2.address[1], ssl_context=client, identification="s3cret", timeout=5.0
            ) as c2,
        ):
            await c1.createGroup(":tls")
            await c1.register(":tls.x", "PYROSSL://127.0.0.1:7766/x")
            await wait_for(lambda: n2.namespace.exists(":tls.x"), 5.0)
            assert str(await c2.resolve(":tls.x")) == "PYROSSL://127.0.0.1:7766/x"
            status = await c1.status()
            assert status["tls"] == "mutual" and status["link"] == "paired"
            assert str(await c1.twin()) == f"PYROSSL://{HOST}:{n2.address[1]}/Pyro.NameServer"
            assert [str(u) for u in c1.nodes] == [
                f"PYROSSL://{HOST}:{n1.address[1]}/Pyro.NameServer",
                f"PYROSSL://{HOST}:{n2.address[1]}/Pyro.NameServer",
            ]
        # Identification still applies on top of TLS.
        wrong = AsyncNameServerProxy(HOST, n1.address[1], ssl_context=client, timeout=5.0)
        with pytest.raises(Exception, match="identification"):
            await wrong.ping()
        await wrong.aclose()


async def test_a_twin_whose_certificate_is_not_from_the_ca_is_refused(
    tls_files: Any, tmp_path: Path
) -> None:
    good = tls_settings(tls_files)
    # Node 2 presents a certificate from another CA (and trusts only that one).
    bad = {**tls_settings(tls_files, "stranger"), "tls_ca": str(tls_files.path("other-ca"))}
    async with tls_pair(tmp_path, good, bad) as (n1, n2, _):
        await wait_for(lambda: "TLS failed" in link(n2) or "TLS failed" in link(n1), 10.0)
        assert link(n1) != "paired" and link(n2) != "paired"
        await wait_for(lambda: n1.daemon.statistics().tls_failures > 0, 5.0)
        # Both keep serving their own clients.
        client = tls_files.client_context("client")
        async with AsyncNameServerProxy(HOST, n1.address[1], ssl_context=client) as c1:
            assert await c1.ping()


async def test_failover_between_tls_nodes_keeps_tls(tls_files: Any, tmp_path: Path) -> None:
    async with tls_pair(tmp_path, tls_settings(tls_files)) as (n1, n2, fp):
        await wait_for(lambda: link(n1) == "paired" and link(n2) == "paired")
        client = tls_files.client_context("client")
        async with AsyncNameServerProxy(
            HOST, fp.address[1], ssl_context=client, timeout=5.0, failover_timeout=FAILOVER
        ) as ns:
            await ns.createGroup(":f")
            fp.refuse(True)
            fp.cut(reset=True)
            for i in range(5):
                await ns.register(f":f.n{i}", f"PYRO://{HOST}:1/n{i}")
            assert ns.serving.port == n2.address[1] and ns.serving.is_ssl
            fp.refuse(False)

        fp.refuse(False)
        ns = NameServerProxy(
            HOST, fp.address[1], ssl_context=client, timeout=5.0, failover_timeout=FAILOVER
        )
        try:
            await trio.to_thread.run_sync(ns.resolve, ":f.n0")
            assert ns.serving.port == fp.address[1]
            fp.refuse(True)
            fp.cut(reset=True)

            def during() -> None:
                for i in range(5):
                    ns.resolve(f":f.n{i}")

            await trio.to_thread.run_sync(during)
            assert ns.serving.port == n2.address[1] and ns.serving.is_ssl
        finally:
            ns.close()
        assert n1.daemon.statistics().tls_failures == 0
        assert n2.daemon.statistics().tls_failures == 0


async def test_the_locator_connects_with_the_context(tls_files: Any, tmp_path: Path) -> None:
    config = Config(host=HOST, port=0, uri_file=str(tmp_path / "uri"), **tls_settings(tls_files))
    async with open_node(config) as node:
        port = node.address[1]
        client = tls_files.client_context("client")
        ns = await NameServerLocator(ssl_context=client).async_getNS(HOST, port)
        async with ns:
            assert str(await ns.resolve(":Pyro.NameServer")) == str(node.uri)

        def blocking() -> str:
            with NameServerLocator(ssl_context=client).getNS(HOST, port) as ns:
                return str(ns.resolve(":Pyro.NameServer"))

        assert await trio.to_thread.run_sync(blocking) == str(node.uri)

        def plain() -> None:
            NameServerLocator().getNS(HOST, port)

        with pytest.raises(TLSError, match="requires TLS"):
            await trio.to_thread.run_sync(plain)


async def test_discovery_finds_a_tls_node_and_the_locator_speaks_tls(
    tls_files: Any, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        bc_port = int(s.getsockname()[1])
    config = Config(
        host=HOST,
        port=0,
        uri_file=str(tmp_path / "uri"),
        bc_addr="127.255.255.255",
        bc_port=bc_port,
        look_for_others=False,
        **tls_settings(tls_files),
    )
    settings = LocatorSettings(mc_group=None, retries=2, timeout=0.5, local_hostname="")
    async with open_node(config) as node:
        assert node.responders  # answering on 127.255.255.255
        client = tls_files.client_context("client")
        found = NameServerLocator(ssl_context=client, settings=settings)
        ns = await found.async_getNS(port=bc_port, bcaddr="127.255.255.255")
        async with ns:
            assert ns.uri == node.uri and ns.uri.is_ssl
            assert await ns.ping()

        def blocking() -> str:
            with found.getNS(port=bc_port, bcaddr="127.255.255.255") as ns:
                return str(ns.resolve(":Pyro.NameServer"))

        assert await trio.to_thread.run_sync(blocking) == str(node.uri)


async def test_a_tls_node_and_a_plain_twin_refuse_to_pair_and_say_why(
    tls_files: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The plain node waits longer than the TLS port's wait for a first byte
    # (PLAIN_CLIENT_WAIT) before it gives a dial up: only then is it told, and counted.
    # With a shorter peer timeout it hangs up first, and the TLS side sees a port check.
    plain = {"peer_timeout": 2 * PLAIN_CLIENT_WAIT}
    async with tls_pair(tmp_path, tls_settings(tls_files), plain) as (n1, n2, _):
        # The TLS -1 node's probes of its plain twin say what is wrong; the plain -2
        # node's dials are turned away by the TLS port (counted there).
        await wait_for(lambda: "TLS failed" in link(n1), 10.0)
        assert "TLS failed; 127.0.0.1:" in caplog.text and "does not speak TLS" in caplog.text
        assert link(n2) != "paired"
        await wait_for(lambda: n1.daemon.statistics().tls_failures > 0, 5.0)
        await wait_for(lambda: n2.daemon.statistics().tls_failures > 0, 5.0)
