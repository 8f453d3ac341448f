"""The fault proxy: forwarding, each fault, statistics, the subprocess form, loopback only.

These use real loopback sockets (the proxy's job is sockets), so quiet periods are short
real-time windows; autojump_clock would jump while the kernel still moves bytes.
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial

import pytest
import trio

from pairns.testing import FaultProxyProcess, FaultProxyStatistics, open_fault_proxy
from pairns.testing.faultproxy import (
    FaultProxy,
    check_loopback,
    execute_command,
    format_address,
    parse_address,
)

QUIET = 0.2  # how long "nothing arrives" is watched for
TIMEOUT = 5.0  # generous bound on anything that should happen


# --------------------------------------------------------------------------- helpers


async def echo_handler(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def start_echo(nursery: trio.Nursery) -> tuple[str, int]:
    listeners = await nursery.start(partial(trio.serve_tcp, echo_handler, 0, host="127.0.0.1"))
    host, port = listeners[0].socket.getsockname()[:2]
    return (host, port)


class PairServer:
    """Hands the test the server side of every connection, so both ends can be driven."""

    def __init__(self) -> None:
        self.tx, self.rx = trio.open_memory_channel[trio.SocketStream](16)

    async def handler(self, stream: trio.SocketStream) -> None:
        await self.tx.send(stream)
        await trio.sleep_forever()  # keep it open; the test owns it now

    async def start(self, nursery: trio.Nursery) -> tuple[str, int]:
        listeners = await nursery.start(partial(trio.serve_tcp, self.handler, 0, host="127.0.0.1"))
        host, port = listeners[0].socket.getsockname()[:2]
        return (host, port)

    async def accept(self) -> trio.SocketStream:
        with trio.fail_after(TIMEOUT):
            return await self.rx.receive()


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    with trio.fail_after(TIMEOUT):
        while len(data) < n:
            chunk = await stream.receive_some(n - len(data))
            assert chunk, f"EOF after {data!r}"
            data += chunk
    return data


async def assert_quiet(stream: trio.SocketStream) -> None:
    with trio.move_on_after(QUIET) as scope:
        data = await stream.receive_some()
        pytest.fail(f"expected silence, got {data!r}")
    assert scope.cancelled_caught


async def assert_closed(stream: trio.SocketStream) -> None:
    with trio.fail_after(TIMEOUT):
        try:
            while await stream.receive_some():
                pass
        except trio.BrokenResourceError:
            pass


@pytest.fixture
async def echo_proxy() -> AsyncIterator[FaultProxy]:
    async with trio.open_nursery() as nursery:
        target = await start_echo(nursery)
        async with open_fault_proxy(target) as proxy:
            yield proxy
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- in-process


async def test_bytes_flow_and_statistics(echo_proxy: FaultProxy) -> None:
    assert echo_proxy.address[0] == "127.0.0.1" and echo_proxy.address[1] > 0
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        await client.send_all(b"hello")
        assert await receive_exactly(client, 5) == b"hello"
        await client.send_all(b"x" * 100_000)
        assert await receive_exactly(client, 100_000) == b"x" * 100_000
        stats = echo_proxy.statistics()
    assert stats == FaultProxyStatistics(
        connections_accepted=1,
        connections_refused=0,
        connections_open=1,
        bytes_to_target=100_005,
        bytes_to_client=100_005,
        bytes_dropped=0,
    )


async def test_half_close_is_forwarded(echo_proxy: FaultProxy) -> None:
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        await client.send_all(b"last words")
        await client.send_eof()
        assert await receive_exactly(client, 10) == b"last words"
        await assert_closed(client)  # the echo server saw EOF and closed its side


async def test_partition_stops_both_ways_without_closing_then_heal() -> None:
    pair = PairServer()
    async with trio.open_nursery() as nursery:
        target = await pair.start(nursery)
        async with open_fault_proxy(target) as proxy:
            client = await trio.open_tcp_stream(*proxy.address)
            server = await pair.accept()
            await client.send_all(b"a")
            assert await receive_exactly(server, 1) == b"a"

            proxy.partition()
            assert proxy.partitioned
            await client.send_all(b"lost-up")
            await server.send_all(b"lost-down")
            await assert_quiet(server)  # quiet, not EOF: still open
            await assert_quiet(client)
            assert proxy.statistics().bytes_dropped == len(b"lost-up") + len(b"lost-down")
            assert proxy.statistics().connections_open == 1

            proxy.heal()
            await client.send_all(b"up")
            assert await receive_exactly(server, 2) == b"up"  # dropped bytes stay dropped
            await server.send_all(b"down")
            assert await receive_exactly(client, 4) == b"down"
        nursery.cancel_scope.cancel()


async def test_connection_made_during_partition_is_held_until_heal() -> None:
    pair = PairServer()
    async with trio.open_nursery() as nursery:
        target = await pair.start(nursery)
        async with open_fault_proxy(target) as proxy:
            proxy.partition()
            client = await trio.open_tcp_stream(*proxy.address)  # accepted...
            await client.send_all(b"dropped")
            with trio.move_on_after(QUIET):
                await pair.rx.receive()
                pytest.fail("upstream connection made during a partition")
            proxy.heal()
            server = await pair.accept()  # ...connected upstream once healed
            await client.send_all(b"kept")
            assert await receive_exactly(server, 4) == b"kept"
            assert proxy.statistics().bytes_dropped == len(b"dropped")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("reset", [False, True])
async def test_cut_closes_both_sides(reset: bool) -> None:
    pair = PairServer()
    async with trio.open_nursery() as nursery:
        target = await pair.start(nursery)
        async with open_fault_proxy(target) as proxy:
            client = await trio.open_tcp_stream(*proxy.address)
            server = await pair.accept()
            await client.send_all(b"a")
            assert await receive_exactly(server, 1) == b"a"
            proxy.cut(reset=reset)
            await assert_closed(client)
            await assert_closed(server)
            assert proxy.statistics().connections_open == 0
            # The proxy itself lives on.
            client2 = await trio.open_tcp_stream(*proxy.address)
            server2 = await pair.accept()
            await client2.send_all(b"b")
            assert await receive_exactly(server2, 1) == b"b"
        nursery.cancel_scope.cancel()


async def test_delay_delays_and_keeps_order(echo_proxy: FaultProxy) -> None:
    echo_proxy.set_delay(0.25)
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        start = trio.current_time()
        for i in range(5):
            await client.send_all(b"%d," % i)
            await trio.sleep(0.01)
        data = await receive_exactly(client, 10)
        elapsed = trio.current_time() - start
        assert data == b"0,1,2,3,4,"
        assert 0.45 <= elapsed < TIMEOUT  # 0.25 each way
        echo_proxy.set_delay(0)
        start = trio.current_time()
        await client.send_all(b"now")
        assert await receive_exactly(client, 3) == b"now"
        assert trio.current_time() - start < 0.2
    with pytest.raises(ValueError):
        echo_proxy.set_delay(-1)
    with pytest.raises(ValueError):
        echo_proxy.set_delay(float("nan"))


async def test_refuse_accepts_then_closes(echo_proxy: FaultProxy) -> None:
    echo_proxy.refuse(True)
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        await assert_closed(client)
    echo_proxy.refuse(False)
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        await client.send_all(b"ok")
        assert await receive_exactly(client, 2) == b"ok"
    stats = echo_proxy.statistics()
    assert (stats.connections_accepted, stats.connections_refused) == (2, 1)


async def test_drop_rate(echo_proxy: FaultProxy) -> None:
    echo_proxy.set_drop_rate(1.0, seed=1)
    async with await trio.open_tcp_stream(*echo_proxy.address) as client:
        await client.send_all(b"gone")
        await assert_quiet(client)
        echo_proxy.set_drop_rate(0.0)
        await client.send_all(b"here")
        assert await receive_exactly(client, 4) == b"here"
    assert echo_proxy.statistics().bytes_dropped == 4
    with pytest.raises(ValueError):
        echo_proxy.set_drop_rate(1.5)


async def test_unreachable_target_closes_client() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with open_fault_proxy(("127.0.0.1", port)) as proxy:
        async with await trio.open_tcp_stream(*proxy.address) as client:
            await assert_closed(client)
        with trio.fail_after(TIMEOUT):
            while proxy.statistics().connections_open:
                await trio.sleep(0.01)


async def test_leaving_the_block_closes_everything_without_hanging() -> None:
    pair = PairServer()
    async with trio.open_nursery() as nursery:
        target = await pair.start(nursery)
        with trio.fail_after(TIMEOUT):
            async with open_fault_proxy(target) as proxy:
                client = await trio.open_tcp_stream(*proxy.address)
                server = await pair.accept()
                proxy.set_delay(30)  # a chunk stuck in the delay line
                proxy.partition()  # and a partition in force
                await client.send_all(b"x")
                address = proxy.address
            await assert_closed(client)
            await assert_closed(server)
            with pytest.raises(OSError):
                await trio.open_tcp_stream(*address)
        nursery.cancel_scope.cancel()


def test_control_commands() -> None:
    proxy = FaultProxy(("127.0.0.1", 9), ("127.0.0.1", 10))
    assert execute_command(proxy, "partition") == "ok" and proxy.partitioned
    assert execute_command(proxy, "heal") == "ok" and not proxy.partitioned
    assert execute_command(proxy, "delay 0.05") == "ok"
    assert execute_command(proxy, "delay -1").startswith("error ")
    assert execute_command(proxy, "delay soon").startswith("error ")
    assert execute_command(proxy, "drop 0.5 7") == "ok"
    assert execute_command(proxy, "refuse on") == "ok"
    assert execute_command(proxy, "refuse maybe").startswith("error ")
    assert execute_command(proxy, "cut") == "ok"
    assert execute_command(proxy, "cut reset") == "ok"
    assert execute_command(proxy, "bogus").startswith("error unknown command")
    stats = FaultProxyStatistics.from_json(execute_command(proxy, "stats"))
    assert stats == proxy.statistics()


# --------------------------------------------------------------------------- loopback only


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "0.0.0.0", "192.168.1.1", "8.8.8.8", "::", "2001:db8::1", "localhost"]
)
async def test_non_loopback_is_refused(host: str) -> None:
    with pytest.raises(ValueError):
        async with open_fault_proxy((host, 80)):
            pass
    with pytest.raises(ValueError):
        async with open_fault_proxy(("127.0.0.1", 80), listen=(host, 0)):
            pass
    with pytest.raises(ValueError):
        FaultProxyProcess((host, 80))


def test_loopback_addresses_pass() -> None:
    assert check_loopback(("127.0.0.1", 1), allow_port_zero=False) == ("127.0.0.1", 1)
    assert check_loopback(("127.1.2.3", 0), allow_port_zero=True) == ("127.1.2.3", 0)
    assert check_loopback(("::1", 80), allow_port_zero=False) == ("::1", 80)
    with pytest.raises(ValueError):
        check_loopback(("127.0.0.1", 0), allow_port_zero=False)
    with pytest.raises(ValueError):
        check_loopback(("127.0.0.1", 70000), allow_port_zero=True)
    assert parse_address(format_address(("::1", 5))) == ("::1", 5)
    assert parse_address("127.0.0.1:7") == ("127.0.0.1", 7)


async def test_ipv6_loopback(echo_proxy: FaultProxy) -> None:
    try:
        async with open_fault_proxy(echo_proxy.address, listen=("::1", 0)) as proxy:
            assert proxy.address[0] == "::1"
            async with await trio.open_tcp_stream(*proxy.address) as client:
                await client.send_all(b"six")
                assert await receive_exactly(client, 3) == b"six"
    except OSError as exc:  # pragma: no cover - host without IPv6
        pytest.skip(f"no IPv6 loopback: {exc}")


# --------------------------------------------------------------------------- subprocess


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def thread_echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield (str(host), int(port))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        assert chunk, "closed"
        got += chunk
    return got


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_process_form(thread_echo: tuple[str, int]) -> None:
    with FaultProxyProcess(thread_echo) as fp:
        assert fp.address[0] == "127.0.0.1" and fp.pid > 0
        with socket.create_connection(fp.address, timeout=TIMEOUT) as sock:
            assert _roundtrip(sock, b"hello") == b"hello"

            fp.partition()
            sock.sendall(b"lost")
            sock.settimeout(QUIET)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            sock.settimeout(TIMEOUT)
            fp.heal()
            assert _roundtrip(sock, b"back") == b"back"

            fp.set_delay(0.2)
            start = time.monotonic()
            assert _roundtrip(sock, b"slow") == b"slow"
            assert time.monotonic() - start >= 0.35
            fp.set_delay(0)

            fp.cut()
            assert _closed(sock)

        fp.refuse(True)
        with socket.create_connection(fp.address, timeout=TIMEOUT) as sock:
            assert _closed(sock)
        fp.refuse(False)

        stats = fp.statistics()
        assert stats.connections_accepted == 2 and stats.connections_refused == 1
        assert stats.bytes_dropped == 4
        assert stats.bytes_to_target == stats.bytes_to_client == 13
        assert fp.command("nonsense").startswith("error ")
        with pytest.raises(RuntimeError):
            fp.set_delay(-1)
    assert fp.returncode is not None  # killed on exit


def test_process_quit_exits_cleanly(thread_echo: tuple[str, int]) -> None:
    fp = FaultProxyProcess(thread_echo).start()
    try:
        fp.quit()
        assert fp.returncode == 0
    finally:
        fp.stop()


def test_process_line_format_and_loopback_refusal(thread_echo: tuple[str, int]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pairns.testing.faultproxy", "--target", "10.1.2.3:80"],
        capture_output=True,
        timeout=TIMEOUT * 2,
    )
    assert result.returncode == 2
    assert b"loopback" in result.stderr
