"""The Trio daemon: registration, dispatch, limits, misbehaving clients."""

from __future__ import annotations

import errno
import resource
from typing import Any

import pytest
import trio

from pairns.errors import (
    ConnectionClosedError,
    LocalProtocolError,
    NamingError,
    ProtocolError,
    RemoteCallError,
)
from pairns.rpc import DAEMON_OBJECT_ID, AsyncProxy, Daemon, DaemonLimits
from pairns.rpc.daemon import raise_descriptor_limit
from pairns.wire import CLIENT, Challenge, Connection, ErrorCode, Request, Welcome
from pairns.wire.frames import HEADER, MessageType
from pairns.wire.limits import MAGIC, PROTOCOL_VERSION

from .helpers import KEY, Service, read_frames, start


def proxy(host: str, port: int, object_id: str = "svc", **kwargs: Any) -> AsyncProxy:
    return AsyncProxy.for_address(host, port, object_id, **kwargs)


# -- registration -----------------------------------------------------------------------


async def test_registration_and_uris(nursery: trio.Nursery) -> None:
    daemon = Daemon("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        _ = daemon.address
    with pytest.raises(RuntimeError, match="serve"):
        daemon.uri_for("x")
    daemon.register(Service(), "fixed-id")
    with pytest.raises(ValueError, match="already registered"):
        daemon.register(Service(), "fixed-id")
    for bad in ("", "has space", "a/b", "x" * 300, 5):
        with pytest.raises(ValueError):
            daemon.register(Service(), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        daemon.register(Service(), DAEMON_OBJECT_ID)
    host, port = await nursery.start(daemon.serve)
    assert daemon.address == (host, port)
    assert daemon.uri_for("fixed-id") == f"PYRO://127.0.0.1:{port}/fixed-id"
    uri = daemon.connect(Service(), "by-name")
    object_id = uri.rsplit("/", 1)[1]
    assert uri == f"PYRO://127.0.0.1:{port}/{object_id}" and len(object_id) == 35
    with pytest.raises(ValueError, match="name"):
        daemon.connect(Service(), "by-name")
    assert daemon.statistics().objects == 2
    daemon.unregister(object_id)
    with pytest.raises(KeyError):
        daemon.unregister(object_id)
    with pytest.raises(ValueError):
        daemon.unregister(DAEMON_OBJECT_ID)
    assert daemon.statistics().objects == 1
    with pytest.raises(RuntimeError, match="already serving"):
        await daemon.serve()


def test_public_host_and_ipv6_uris() -> None:
    assert Daemon("0.0.0.0", 7766, public_host="ns.example").uri_for("x") == (
        "PYRO://ns.example:7766/x"
    )
    assert Daemon("::1", 7766).uri_for("x") == "PYRO://[::1]:7766/x"


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Daemon(port=70000)
    with pytest.raises(ValueError):
        Daemon(identification="")
    with pytest.raises(TypeError):
        Daemon(identification=b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame_size": 100},
        {"max_frame_size": 1 << 30},
        {"max_in_flight": 0},
        {"max_connections": 0},
        {"handshake_timeout": 0},
        {"handshake_timeout": float("inf")},
        {"idle_timeout": -1},
        {"checksums": 1},
    ],
)
def test_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        DaemonLimits(**kwargs)


def test_limits_defaults() -> None:
    limits = DaemonLimits()
    assert (limits.max_frame_size, limits.max_in_flight, limits.max_connections) == (
        1 << 20,
        128,
        10_000,
    )
    assert (limits.handshake_timeout, limits.idle_timeout, limits.checksums) == (5.0, 0.0, False)


def test_descriptor_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and soft > 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        new_soft = raise_descriptor_limit(5000)
        assert new_soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert new_soft is not None and new_soft >= min(hard, 5000)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 256), hard))


# -- dispatch ---------------------------------------------------------------------------


async def test_built_in_daemon_object(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port, DAEMON_OBJECT_ID) as d:
        assert await d.ping() is True
        assert await d.resolve("svc-name") == f"PYRO://127.0.0.1:{port}/svc"
        with pytest.raises(NamingError) as info:
            await d.resolve("nothing")
        assert (info.value.message, info.value.name) == ("name not found", "nothing")


async def test_calls_and_errors(nursery: trio.Nursery) -> None:
    _, service, host, port = await start(nursery)
    async with proxy(host, port) as p:
        assert await p.add(2, 3) == 5
        assert await p.echo(1, "é", key=[None]) == [[1, "é"], {"key": [None]}]
        assert await p.call("echo", method="kwarg named method") == [
            [],
            {"method": "kwarg named method"},
        ]
        with pytest.raises(NamingError) as naming:
            await p.fail_naming(":Default.x")
        assert naming.value.name == ":Default.x"
        with pytest.raises(RemoteCallError) as value_error:
            await p.fail_value()
        assert value_error.value.remote_type == "ValueError"
        assert "bad value" in str(value_error.value)
        with pytest.raises(RemoteCallError, match="bad arguments for add"):
            await p.add(1)
        with pytest.raises(RemoteCallError, match="raised inside the method") as inside:
            await p.fail_type_inside()
        assert inside.value.remote_type == "TypeError"
        with pytest.raises(RemoteCallError, match="private"):
            await p.call("_private")
        with pytest.raises(RemoteCallError, match="no method 'missing'") as missing:
            await p.missing()
        assert missing.value.remote_type == "AttributeError"
        with pytest.raises(RemoteCallError, match="not a method"):
            await p.prop()
        with pytest.raises(RemoteCallError, match="not a method"):
            await p.attribute()
        assert service.property_reads == 0  # a property's getter never runs remotely
        with pytest.raises(RemoteCallError, match="cannot be sent") as unencodable:
            await p.unencodable()
        assert unencodable.value.remote_type == "TypeError"
        with pytest.raises(NamingError, match="123"):
            await p.fail_unencodable()
        with pytest.raises(RemoteCallError, match=r"lone \\ud800 surrogate"):
            await p.fail_surrogate()
        assert await p.add(20, 22) == 42  # the connection survived all of that
    async with proxy(host, port, "nobody") as nobody:
        with pytest.raises(ProtocolError, match="unknown object 'nobody'"):
            await nobody.ping()


async def test_reply_larger_than_the_client_accepts(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port, max_frame_size=4096) as p:
        with pytest.raises(ProtocolError, match="cannot be sent"):
            await p.big(10_000)
        assert len(await p.big(1000)) == 1000


async def test_async_methods_and_the_request_id(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as p:
        assert await p.slow(0.01, "done") == "done"
        assert await p.call("request_id", request_id="r-1") == "r-1"
        assert await p.call("async_request_id", request_id="r-2") == "r-2"
        assert await p.request_id() is None
        assert await p.async_request_id() is None
        with pytest.raises(NamingError):
            await p.async_fail(":x")
        with pytest.raises(RemoteCallError, match="bad arguments"):
            await p.slow()


async def test_slow_async_calls_do_not_block_sync_ones(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as p:
        order: list[str] = []

        async def slow() -> None:
            await p.slow(0.3)
            order.append("slow")

        async with trio.open_nursery() as inner:
            inner.start_soon(slow)
            await trio.sleep(0.05)
            assert await p.add(1, 1) == 2
            order.append("fast")
        assert order == ["fast", "slow"]


async def test_oneway_calls(nursery: trio.Nursery) -> None:
    _, service, host, port = await start(nursery)
    async with proxy(host, port) as p:
        await p.oneway("record", 1)
        await p.oneway("arecord", 2)
        await p.oneway("record_fail")  # logged by the daemon, nothing comes back
        await p.oneway("no_such_method")
        await p.oneway("_private")
        await p.add(0, 0)  # ordered behind the oneways
        with trio.fail_after(2):
            while len(service.recorded) < 2:
                await trio.sleep(0.01)
        assert sorted(service.recorded) == [1, 2]


async def test_async_calls_are_cancelled_when_the_client_goes(nursery: trio.Nursery) -> None:
    _, service, host, port = await start(nursery)
    p = proxy(host, port, timeout=None)

    async def wait_forever() -> None:
        with pytest.raises(ConnectionClosedError, match="the proxy was closed"):
            await p.until_cancelled()

    async with trio.open_nursery() as inner:
        inner.start_soon(wait_forever)
        await trio.sleep(0.1)
        await p.aclose()
    with trio.fail_after(2):
        await service.cancelled.wait()


# -- limits and misbehaving clients -----------------------------------------------------


async def test_garbage_gets_a_goodbye_and_others_are_still_served(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as good:
        assert await good.add(1, 2) == 3
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        frames = await read_frames(stream)
        assert frames[0][0] == MessageType.CHALLENGE
        assert frames[-1] == (
            MessageType.GOODBYE,
            {"code": ErrorCode.BAD_MAGIC, "message": "bad frame magic b'GE'"},
        )
        assert await good.add(3, 4) == 7


async def test_oversized_frame_is_refused(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, max_frame_size=4096)
    async with proxy(host, port) as good:
        assert await good.add(1, 2) == 3
        raw = proxy(host, port)
        await raw.add(0, 0)
        assert raw._session is not None
        stream = raw._session.transport
        await stream.send_all(
            HEADER.pack(MAGIC, PROTOCOL_VERSION, int(MessageType.REQUEST), 0, 0, 9, 5000)
        )
        frames = await read_frames(stream)
        assert frames[-1][0] == MessageType.GOODBYE
        assert frames[-1][1]["code"] == ErrorCode.FRAME_TOO_LARGE
        assert await good.add(3, 4) == 7
        with pytest.raises(LocalProtocolError, match="exceeds the peer's limit"):
            await good.echo("x" * 5000)  # the proxy knows the limit from the Welcome


async def test_silent_client_is_dropped_after_the_handshake_timeout(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, handshake_timeout=0.2)
    stream = await trio.open_tcp_stream(host, port)
    start_time = trio.current_time()
    frames = await read_frames(stream)
    assert 0.15 < trio.current_time() - start_time < 2.5
    assert [t for t, _ in frames] == [MessageType.CHALLENGE, MessageType.GOODBYE]
    assert frames[-1][1]["code"] == ErrorCode.HANDSHAKE_TIMEOUT
    async with proxy(host, port) as good:
        assert await good.add(1, 1) == 2


async def test_too_many_connections(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery, max_connections=2)
    async with proxy(host, port) as a, proxy(host, port) as b:
        assert await a.add(1, 1) == 2 and await b.add(2, 2) == 4
        c = proxy(host, port)
        with pytest.raises(ConnectionClosedError, match="too many connections"):
            await c.add(3, 3)
        assert daemon.statistics().refused_connections == 1
        assert await a.add(5, 5) == 10


async def test_idle_connections_are_dropped_and_proxies_reconnect(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery, idle_timeout=0.2)
    async with proxy(host, port) as p:
        assert await p.add(1, 1) == 2
        await trio.sleep(0.6)
        assert await p.add(2, 2) == 4  # noticed the goodbye, reconnected
        assert daemon.statistics().total_connections == 2


async def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(
    nursery: trio.Nursery,
) -> None:
    daemon, _, host, port = await start(nursery, idle_timeout=0.3)
    stream = await trio.open_tcp_stream(host, port)
    conn = Connection(CLIENT)
    conn.receive_data(await stream.receive_some(65536))
    assert type(conn.next_event()) is Challenge
    await stream.send_all(conn.send(conn.response()))
    conn.receive_data(await stream.receive_some(65536))
    assert type(conn.next_event()) is Welcome
    # Ask for ~40 MB of replies and never read them: the daemon's write stalls.
    requests = [conn.send(Request(i, "svc", "big", [400_000])) for i in range(100)]
    await stream.send_all(b"".join(requests))
    with trio.fail_after(5):
        while daemon.statistics().connections:
            await trio.sleep(0.05)
    await stream.aclose()


async def test_idle_timeout_spares_connections_with_calls_running(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, idle_timeout=0.2)
    async with proxy(host, port) as p:
        assert await p.slow(0.5, "still here") == "still here"


async def test_checksummed_daemon(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, checksums=True)
    async with proxy(host, port, checksums=True) as p:
        assert await p.add(1, 2) == 3


async def test_statistics(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery, identification=KEY)
    async with proxy(host, port, identification=KEY) as p:
        for i in range(5):
            await p.add(i, i)
        await p.oneway("record", 1)
        await p.add(0, 0)
        stats = daemon.statistics()
    with pytest.raises(Exception, match="refused"):
        await proxy(host, port, identification="wrong").add(1, 1)
    assert stats.requests == 7
    assert stats.connections == 1 and stats.total_connections == 1
    assert daemon.statistics().denied_connections == 1
    assert daemon.identification_required


class FlakyListener:
    """Stands in for a SocketListener whose accept() runs out of descriptors."""

    def __init__(self, failures: list[int]) -> None:
        self.failures = failures
        self.calls = 0
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    async def accept(self) -> trio.SocketStream:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        if self.failures:
            raise OSError(self.failures.pop(0), "simulated")
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_accept_retries_after_running_out_of_resources(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon()
    listener = FlakyListener([errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._accept_loop, listener, nursery)  # type: ignore[arg-type]
        start_time = trio.current_time()
        while listener.calls < 5:
            await trio.sleep(0.01)
        assert trio.current_time() - start_time == pytest.approx(0.4, abs=0.02)
        nursery.cancel_scope.cancel()
    assert caplog.text.count("retrying in 100 ms") == 4
    assert listener.closed  # a stopping daemon stops accepting at once


async def test_other_accept_errors_propagate() -> None:
    daemon = Daemon()
    listener = FlakyListener([errno.EBADF])
    with pytest.raises(OSError):
        await daemon._accept_loop(listener, None)  # type: ignore[arg-type]
    assert listener.closed
