"""``resolve_uri`` and ``async_resolve_uri`` share one plan: they must agree on every URI."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from pairns import URI, NamingError, URIError
from pairns.config import Config
from pairns.naming.locator import NameServerLocator, async_resolve_uri, resolve_uri
from pairns.node import open_node

HOST = "127.0.0.1"


def free_udp_port() -> int:
    """A UDP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


PRINTER = "PYRO://printhost:7766/1234abcd"


async def test_sync_and_async_resolve_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_node(Config(host=HOST, port=0, uri_file=str(tmp_path / "ns.uri"))) as node:
        port = node.address[1]
        own = URI.pyro(HOST, port, "Pyro.NameServer")
        ns = await NameServerLocator().async_getNS(HOST, port)
        async with ns:
            await ns.register(":Default.printer", PRINTER)
        # PYRONAME without a place: located from the environment, as getNS does.
        monkeypatch.setenv("PYRO_NS_HOSTNAME", HOST)
        monkeypatch.setenv("PYRO_NS_PORT", str(port))
        # Discovery comes first: keep it on loopback, on ports nobody answers, and short.
        monkeypatch.setenv("PYRO_NS_BC_ADDR", "127.255.255.255")
        monkeypatch.setenv("PYRO_NS2_BC_ADDR", "127.255.255.255")
        monkeypatch.setenv("PYRO_NS_BC_PORT", str(free_udp_port()))
        monkeypatch.setenv("PYRO_NS2_BC_PORT", str(free_udp_port()))
        monkeypatch.setenv("PYRO_NS_MC_GROUP", "none")  # no IPv6 multicast off loopback
        monkeypatch.setenv("PYRO_BC_RETRIES", "0")
        monkeypatch.setenv("PYRO_BC_TIMEOUT", "0.1")
        cases = {
            PRINTER: URI.from_string(PRINTER),
            f"PYROLOC://{HOST}:{port}/:Pyro.NameServer": own,
            f"PYRONAME://{HOST}:{port}/:Pyro.NameServer": own,
            f"PYRONAME://{HOST}:{port}/printer": URI.from_string(PRINTER),
            "PYRONAME://:Default.printer": URI.from_string(PRINTER),
        }
        for uri, expected in cases.items():
            assert await trio.to_thread.run_sync(resolve_uri, uri) == expected, uri
            assert await async_resolve_uri(uri) == expected, uri
        for uri in (f"PYRONAME://{HOST}:{port}/missing", f"PYROLOC://{HOST}:{port}/:No.Such"):
            with pytest.raises(NamingError):
                await trio.to_thread.run_sync(resolve_uri, uri)
            with pytest.raises(NamingError):
                await async_resolve_uri(uri)


async def test_a_bad_uri_fails_the_same_way_in_both() -> None:
    with pytest.raises(URIError, match="PYROLOC") as sync_error:
        resolve_uri("PYROLOC://")
    with pytest.raises(URIError, match="PYROLOC") as async_error:
        await async_resolve_uri("PYROLOC://")
    assert str(sync_error.value) == str(async_error.value)
