"""Issue 20: user objects served by a daemon, found through a real name server process.

A ``pairns`` node on a free loopback port, and ``quote_server.py`` (the Pyro manual's
quote example) in its own process: ``PYRONAME`` and ``PYROLOC`` end to end, a oneway
method, a slow method beside fast ones, ``connectPersistent`` across a crash and
restart, and ``shutdown()`` unregistering. Every wait is bounded; only the processes
started here are ended, by their handle.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from _support import HOST, PYTHON, NodeProcess, clean_env, free_ports, wait_until

import pairns
from pairns import NamingError, RemoteCallError

SCRIPT = Path(__file__).with_name("quote_server.py")
NAME = ":Test.quotegen"
QUOTE = "Give me a lever long enough and I shall move the world."
START_TIMEOUT = 20.0
CALL_TIMEOUT = 10.0
URI_RE = re.compile(r"^URI: (PYRO://\S+)$", re.M)


class QuoteServer:
    """One ``quote_server.py`` process; output in files under *workdir*."""

    def __init__(self, workdir: Path, ns_port: int, *extra: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        stamp = time.monotonic_ns()
        self.out = workdir / f"quotes-{stamp}.out"
        self.err = workdir / f"quotes-{stamp}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, str(SCRIPT), "--ns-port", str(ns_port), "--name", NAME, *extra],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env(),
            )
        self.uri = ""

    def wait_uri(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = URI_RE.search(self.out.read_text())
            if match:
                self.uri = match.group(1)
                return self.uri
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"quote server gave no URI (exit {self.proc.poll()})\n{self.err.read_text()}"
        )

    @property
    def port(self) -> int:
        return pairns.URI.from_string(self.uri).address[1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=CALL_TIMEOUT)


StartQuotes = Callable[..., QuoteServer]


@pytest.fixture
def ns(node: NodeProcess) -> Iterator[pairns.NameServerProxy]:
    with pairns.NameServerLocator().getNS(HOST, node.port, timeout=CALL_TIMEOUT) as proxy:
        proxy.createGroup(":Test")
        yield proxy


@pytest.fixture
def start_quotes(node: NodeProcess, tmp_path: Path) -> Iterator[StartQuotes]:
    started: list[QuoteServer] = []

    def start(*extra: str, wait: bool = True) -> QuoteServer:
        server = QuoteServer(tmp_path / "quotes", node.port, *extra)
        started.append(server)
        if wait:
            server.wait_uri()
        return server

    yield start
    for server in started:
        server.kill()


def test_pyroname_and_pyroloc_reach_the_user_object(
    node: NodeProcess,
    ns: pairns.NameServerProxy,
    start_quotes: StartQuotes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_quotes()
    assert str(ns.resolve(NAME)) == server.uri
    by_name = pairns.getProxyForURI(f"PYRONAME://{HOST}:{node.port}/{NAME}", timeout=10)
    by_loc = pairns.getProxyForURI(f"PYROLOC://{HOST}:{server.port}/{NAME}", timeout=10)
    with by_name, by_loc:
        assert by_name.getQuote() == QUOTE
        assert by_loc.getQuote() == QUOTE
        assert str(by_name.target) == str(by_loc.target) == server.uri
    # The manual's form, the name server located (here from the environment).
    monkeypatch.setenv("PYRO_NS_HOSTNAME", HOST)
    monkeypatch.setenv("PYRO_NS_PORT", str(node.port))
    # Discovery is tried first: on loopback, on ports nobody answers, and short.
    for key in ("PYRO_NS_BC_ADDR", "PYRO_NS2_BC_ADDR"):
        monkeypatch.setenv(key, "127.255.255.255")
    bc_ports = free_ports(2, socket.SOCK_DGRAM)
    for key, bc_port in zip(("PYRO_NS_BC_PORT", "PYRO_NS2_BC_PORT"), bc_ports, strict=True):
        monkeypatch.setenv(key, str(bc_port))
    monkeypatch.setenv("PYRO_NS_MC_GROUP", "none")  # no IPv6 multicast off loopback
    monkeypatch.setenv("PYRO_BC_RETRIES", "0")
    monkeypatch.setenv("PYRO_BC_TIMEOUT", "0.1")
    with pairns.getProxyForURI(f"PYRONAME://{NAME}", timeout=10) as located:
        assert located.getQuote() == QUOTE
    # A name the daemon does not serve, a name the name server does not know.
    with pytest.raises(NamingError):
        pairns.resolve_uri(f"PYROLOC://{HOST}:{server.port}/:Test.nothing")
    with pytest.raises(NamingError):
        pairns.resolve_uri(f"PYRONAME://{HOST}:{node.port}/:Test.nothing")

    async def from_trio() -> None:
        for uri in (
            f"PYRONAME://{HOST}:{node.port}/{NAME}",
            f"PYROLOC://{HOST}:{server.port}/{NAME}",
        ):
            proxy = await pairns.async_getProxyForURI(uri, timeout=10)
            try:
                assert await proxy.getQuote() == QUOTE
            finally:
                await proxy.aclose()

    trio.run(from_trio)


def test_oneway_and_slow_methods_beside_fast_ones(
    ns: pairns.NameServerProxy, start_quotes: StartQuotes
) -> None:
    server = start_quotes()
    slow_result: list[str] = []
    with pairns.Proxy(server.uri, timeout=CALL_TIMEOUT) as fast:
        assert fast.getQuote() == QUOTE

        def call_slow() -> None:
            with pairns.Proxy(server.uri, timeout=CALL_TIMEOUT) as slow:
                slow_result.append(slow.slow())

        slow_thread = threading.Thread(target=call_slow, daemon=True)
        slow_thread.start()
        time.sleep(0.3)  # the slow call is in its method now (it waits for release())
        # The fast ones are answered meanwhile, each at once.
        for _ in range(10):
            started = time.monotonic()
            assert fast.getQuote() == QUOTE
            assert time.monotonic() - started < 1.0
        assert slow_result == []
        fast.release()
        slow_thread.join(CALL_TIMEOUT)
        assert slow_result == ["slow done"]

        # A oneway method returns before it has run; its effect comes later.
        started = time.monotonic()
        assert fast.remember("first", 3.0) is None
        assert time.monotonic() - started < 1.0
        assert fast.recalled() == []
        assert wait_until(lambda: fast.recalled() == ["first"], timeout=CALL_TIMEOUT)

        # A remote exception: type, message and the remote traceback as text.
        with pytest.raises(RemoteCallError) as info:
            fast.fail()
        assert info.value.remote_type == "ValueError"
        assert info.value.args[0] == "no quote today"
        assert "quote_server.py" in (info.value.remote_traceback or "")


def test_connect_persistent_keeps_the_uri_across_a_restart(
    node: NodeProcess, ns: pairns.NameServerProxy, start_quotes: StartQuotes
) -> None:
    first = start_quotes("--persistent")
    uri, port = first.uri, first.port
    client = pairns.getProxyForURI(f"PYRONAME://{HOST}:{node.port}/{NAME}", timeout=10)
    assert client.getQuote() == QUOTE
    first.kill()  # a crash: the name stays registered
    assert str(ns.resolve(NAME)) == uri
    with pytest.raises(pairns.ConnectionClosedError):
        client.getQuote()

    again = start_quotes("--persistent", "--port", str(port))
    assert again.uri == uri  # the same object id on the same address
    assert client.getQuote() == QUOTE  # the old proxy reconnects to the new process
    assert str(ns.resolve(NAME)) == uri
    client.close()

    # A plain connect() after the same crash fails as in Pyro 3: the name exists.
    again.kill()
    refused = start_quotes("--port", str(port), wait=False)
    assert refused.proc.wait(timeout=START_TIMEOUT) != 0
    assert "name already exists" in refused.err.read_text()


def test_shutdown_unregisters_connected_names(
    ns: pairns.NameServerProxy, start_quotes: StartQuotes
) -> None:
    server = start_quotes()
    assert str(ns.resolve(NAME)) == server.uri
    with pairns.Proxy.for_address(HOST, server.port, "control", timeout=CALL_TIMEOUT) as control:
        control.stop()
    assert server.proc.wait(timeout=CALL_TIMEOUT) == 0
    assert "stopped" in server.out.read_text()
    with pytest.raises(NamingError, match="name not found"):
        ns.resolve(NAME)

    # A persistent name stays after a clean stop, for the next start to reuse.
    kept = start_quotes("--persistent")
    with pairns.Proxy.for_address(HOST, kept.port, "control", timeout=CALL_TIMEOUT) as control:
        control.stop()
    assert kept.proc.wait(timeout=CALL_TIMEOUT) == 0
    assert str(ns.resolve(NAME)) == kept.uri
