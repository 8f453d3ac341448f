"""TLS between the daemon and both proxies, over loopback, with certificates made by
``trustme`` at run time (``tls_files`` in tests/conftest.py).

Each failure is checked on both sides: the client's exception names the reason, the
daemon counts it (``tls_failures``) and logs one line, and nothing takes longer than
the bounds set here.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from pairns.errors import TLSError
from pairns.naming.locator import async_resolve_uri, getProxyForURI, resolve_uri
from pairns.naming.objects import async_getProxyForURI
from pairns.rpc import AsyncProxy, Daemon, DaemonLimits, Proxy
from pairns.rpc.tls_server import PLAIN_CLIENT_WAIT

HOST = "127.0.0.1"

#: No failure may take longer than this (handshake timeout below + slack for 2 cores).
BOUND = 4.0


class Echo:
    def echo(self, value: Any) -> Any:
        return value


@asynccontextmanager
async def serving(ssl_context: Any = None, **kw: Any) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = Daemon(HOST, 0, ssl_context=ssl_context, **kw)
    uri = daemon.connect(Echo(), ":Test.echo")
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.serve)
        yield daemon, uri
        nursery.cancel_scope.cancel()


async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def failure(fn: Any, *args: Any) -> tuple[BaseException, float]:
    """Run a blocking call in a thread; the exception it raised and how long it took."""
    start = time.monotonic()

    def run() -> BaseException:
        try:
            fn(*args)
        except Exception as exc:
            return exc
        raise AssertionError("the call succeeded")

    exc = await trio.to_thread.run_sync(run)
    return exc, time.monotonic() - start


async def wait_counted(daemon: Daemon, count: int) -> None:
    with trio.fail_after(BOUND):
        while daemon.statistics().tls_failures < count:
            await trio.sleep(0.01)


async def test_tls_daemon_serves_both_proxies_under_pyrossl(tls_files: Any) -> None:
    async with serving(tls_files.server_context()) as (daemon, uri):
        assert uri.startswith(f"PYROSSL://{HOST}:")
        client = tls_files.client_context()
        with Proxy(uri, ssl_context=client, timeout=BOUND) as proxy:
            assert await blocking(proxy.echo, "blocking") == "blocking"
            assert await blocking(proxy.echo, "x" * 200_000) == "x" * 200_000  # many records
            assert proxy.target.tls and str(proxy.target).startswith("PYROSSL://")
        async with AsyncProxy(uri, ssl_context=client, timeout=BOUND) as aproxy:
            async with trio.open_nursery() as nursery:  # pipelined on one connection
                for i in range(50):
                    nursery.start_soon(aproxy.echo, i)
            assert await aproxy.echo("async") == "async"
        assert daemon.statistics().tls_failures == 0


async def test_a_pyrossl_uri_without_a_context_uses_the_system_trust(tls_files: Any) -> None:
    async with serving(tls_files.server_context()) as (_, uri):
        proxy = Proxy(uri, timeout=BOUND)
        assert proxy.ssl_context is not None  # the default context: trustme's CA is unknown
        exc, _ = await failure(proxy.echo, 1)
        assert isinstance(exc, TLSError) and "not signed by a trusted CA" in str(exc)


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    tls_files: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pairns.rpc")
    async with serving(tls_files.server_context(mutual=True)) as (daemon, uri):
        good = tls_files.client_context("client")
        with Proxy(uri, ssl_context=good, timeout=BOUND) as proxy:
            assert await blocking(proxy.echo, 1) == 1
        async with AsyncProxy(uri, ssl_context=good, timeout=BOUND) as aproxy:
            assert await aproxy.echo(2) == 2

        # No client certificate: refused, both proxies say why.
        none = tls_files.client_context()
        exc, took = await failure(Proxy(uri, ssl_context=none, timeout=BOUND).echo, 1)
        assert isinstance(exc, TLSError) and "requires a client certificate" in str(exc)
        assert took < BOUND
        with pytest.raises(TLSError, match="requires a client certificate"):
            await AsyncProxy(uri, ssl_context=none, timeout=BOUND).echo(1)
        await wait_counted(daemon, 2)
        assert "presented no certificate (--tls-ca requires one)" in caplog.text

        # A certificate from another CA: refused.
        stranger = tls_files.client_context("stranger_client")
        exc, _ = await failure(Proxy(uri, ssl_context=stranger, timeout=BOUND).echo, 1)
        assert isinstance(exc, TLSError) and "does not trust this client's certificate" in str(exc)
        await wait_counted(daemon, 3)
        assert "is not signed by a trusted CA: not by --tls-ca" in caplog.text


@pytest.mark.parametrize(
    ("server", "dial", "words", "logged"),
    [
        ("stranger", HOST, "not signed by a trusted CA", "does not trust this node's certificate"),
        ("expired", HOST, "has expired", "refused this node's certificate: expired"),
        (
            "elsewhere",
            HOST,
            "is not for the name or address dialled",
            "refused this node's certificate (not for the name it dialled?)",
        ),
        ("server", "localhost", None, None),  # the certificate names localhost too
    ],
)
async def test_the_server_certificate_is_checked(
    tls_files: Any,
    caplog: pytest.LogCaptureFixture,
    server: str,
    dial: str,
    words: str | None,
    logged: str | None,
) -> None:
    caplog.set_level(logging.WARNING, "pairns.rpc")
    async with serving(tls_files.server_context(server)) as (daemon, uri):
        uri = uri.replace(HOST, dial)
        client = tls_files.client_context()
        if words is None:
            assert await blocking(Proxy(uri, ssl_context=client, timeout=BOUND).echo, 1) == 1
            return
        exc, took = await failure(Proxy(uri, ssl_context=client, timeout=BOUND).echo, 1)
        assert isinstance(exc, TLSError) and words in str(exc), exc
        assert took < BOUND
        with pytest.raises(TLSError, match=words):
            await AsyncProxy(uri, ssl_context=client, timeout=BOUND).echo(1)
        await wait_counted(daemon, 2)  # the client's refusal, seen by the server
        assert f"TLS handshake with {HOST}:" in caplog.text and str(logged) in caplog.text


async def test_a_plain_client_on_a_tls_port_is_told_so_quickly(
    tls_files: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pairns.rpc")
    async with serving(tls_files.server_context()) as (daemon, uri):
        plain = uri.replace("PYROSSL://", "PYRO://")
        exc, took = await failure(Proxy(plain, timeout=BOUND).echo, 1)
        assert isinstance(exc, TLSError) and "requires TLS" in str(exc)
        assert PLAIN_CLIENT_WAIT * 0.9 < took < PLAIN_CLIENT_WAIT + 1.5
        with trio.fail_after(BOUND), pytest.raises(TLSError, match="requires TLS"):
            await AsyncProxy(plain, timeout=BOUND).echo(1)
        await wait_counted(daemon, 2)
        assert "that does not speak TLS (said nothing) connected to this TLS port" in caplog.text


async def test_a_tls_client_on_a_plain_port_is_refused_on_both_sides(
    tls_files: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pairns.rpc")
    async with serving() as (daemon, uri):
        assert uri.startswith("PYRO://")
        client = tls_files.client_context()
        exc, took = await failure(Proxy(uri, ssl_context=client, timeout=BOUND).echo, 1)
        assert isinstance(exc, TLSError) and "does not speak TLS" in str(exc)
        assert took < BOUND
        with trio.fail_after(BOUND), pytest.raises(TLSError, match="does not speak TLS"):
            await AsyncProxy(uri, ssl_context=client, timeout=BOUND).echo(1)
        await wait_counted(daemon, 2)
        assert "a TLS client 127.0.0.1:" in caplog.text
        assert "connected to this plain (non-TLS) port" in caplog.text


async def test_the_tls_handshake_is_bounded_by_the_handshake_timeout(tls_files: Any) -> None:
    limits = DaemonLimits(handshake_timeout=0.5)
    async with serving(tls_files.server_context(), limits=limits) as (daemon, uri):
        address = daemon.address
        with socket.create_connection(address, timeout=BOUND) as stalled:
            stalled.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
            start = time.monotonic()
            await wait_counted(daemon, 1)
            assert time.monotonic() - start < 0.5 + 1.5
            stalled.settimeout(BOUND)
            assert await trio.to_thread.run_sync(stalled.recv, 100) == b""  # closed
        # Garbage that is not TLS: told in plain text, and closed.
        with socket.create_connection(address, timeout=BOUND) as garbage:
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = await trio.to_thread.run_sync(garbage.recv, 1000)
            assert reply.startswith(b"PN") and b"TLS only" in reply
        await wait_counted(daemon, 2)
        async with AsyncProxy(uri, ssl_context=tls_files.client_context()) as aproxy:
            assert await aproxy.echo("still serving") == "still serving"


async def test_pyrolocssl_resolves_through_a_tls_daemon(tls_files: Any) -> None:
    client = tls_files.client_context()
    async with serving(tls_files.server_context()) as (daemon, uri):
        port = daemon.address[1]
        loc = f"PYROLOCSSL://{HOST}:{port}/:Test.echo"
        found = await blocking(resolve_uri, loc, ssl_context=client)
        assert str(found) == uri and found.is_ssl
        assert str(await async_resolve_uri(loc, ssl_context=client)) == uri
        proxy = await blocking(getProxyForURI, loc, ssl_context=client, timeout=BOUND)
        assert await blocking(proxy.echo, "loc") == "loc"
        proxy.close()
        aproxy = await async_getProxyForURI(loc, ssl_context=client, timeout=BOUND)
        async with aproxy:
            assert await aproxy.echo("aloc") == "aloc"
        # PYROLOC (plain) to the TLS daemon: told TLS is required.
        with pytest.raises(TLSError, match="requires TLS"):
            await async_resolve_uri(f"PYROLOC://{HOST}:{port}/:Test.echo")


async def test_connect_persistent_keeps_a_pyrossl_uri(tls_files: Any) -> None:
    registered: dict[str, str] = {}

    class Names:
        def register(self, name: str, uri: Any) -> None:
            registered[name] = str(uri)

        def unregister(self, name: str) -> None:
            registered.pop(name, None)

        def resolve(self, name: str) -> str:
            from pairns.errors import NamingError

            if name not in registered:
                raise NamingError("unknown name", name)
            return registered[name]

    first = Daemon(HOST, 0, ssl_context=tls_files.server_context(), ns=Names())
    uri = first.connectPersistent(Echo(), ":Test.p")
    assert uri.startswith("PYROSSL://")
    port = first.address[1]
    first.shutdown()
    again = Daemon(HOST, port, ssl_context=tls_files.server_context(), ns=Names())
    assert again.connectPersistent(Echo(), ":Test.p") == uri
    again.shutdown()


def test_a_handshake_cut_without_an_alert_is_a_lost_connection_not_a_tls_error() -> None:
    """Worth retrying (on the twin too): a proxy in between or a dying node cut it."""
    import ssl

    from pairns.tls import is_tls_error

    for cut in (
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"),
    ):
        wrapped = trio.BrokenResourceError("handshake")
        wrapped.__cause__ = cut
        assert not is_tls_error(cut) and not is_tls_error(wrapped)
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = trio.BrokenResourceError("handshake")
    wrapped.__cause__ = refused
    assert is_tls_error(refused) and is_tls_error(wrapped)
    assert not is_tls_error(OSError("plain")) and not is_tls_error(None)
