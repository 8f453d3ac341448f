"""The daemon and the async proxy over memory streams: no sockets, virtual time.

Also the backpressure rule: a client that does not read its replies stops being read
once ``max_queued_reply_bytes`` wait for it, and is read again when it reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from pairns.config import ConfigError, load_config
from pairns.errors import CallTimeoutError, ConnectionClosedError, NamingError
from pairns.node import _limits
from pairns.rpc import AsyncProxy, Daemon, DaemonLimits, Deferred
from pairns.rpc.daemon import WRITE_CHUNK
from pairns.rpc.transport import Outbox, StreamTransport, as_transport
from pairns.wire import CLIENT, NEED_DATA, Challenge, Connection, Reply, Request, Welcome

from .helpers import KEY, Service


def memory_opener(
    daemon: Daemon, nursery: trio.Nursery
) -> tuple[Callable[[], Awaitable[trio.abc.Stream]], list[int]]:
    """An opener that serves each new connection over a memory stream pair; the list
    counts the connections opened."""
    opened: list[int] = []

    async def open_stream() -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(daemon.serve_connection, server)
        opened.append(1)
        return client

    return open_stream, opened


def memory_proxy(
    daemon: Daemon, nursery: trio.Nursery, **kwargs: Any
) -> tuple[AsyncProxy, list[int]]:
    opener, opened = memory_opener(daemon, nursery)
    # The address is never dialled: the opener makes every connection.
    proxy = AsyncProxy.for_address("memory", 1, "svc", **kwargs).open_with(opener)
    return proxy, opened


class Deferring:
    """Answers ``later()`` through a Deferred finished by ``finish()``."""

    def __init__(self) -> None:
        self.pending: list[Deferred] = []

    def later(self) -> Deferred:
        deferred = Deferred()
        self.pending.append(deferred)
        return deferred

    def finish(self, value: Any) -> int:
        for deferred in self.pending:
            deferred.resolve(value)
        count = len(self.pending)
        self.pending.clear()
        return count


async def test_calls_of_every_kind_over_memory_streams(nursery: trio.Nursery) -> None:
    daemon = Daemon(identification=KEY)
    service = Service()
    daemon.register(service, "svc")
    deferring = Deferring()
    daemon.register(deferring, "later")
    proxy, opened = memory_proxy(daemon, nursery, identification=KEY)
    async with proxy:
        assert await proxy.add(1, 2) == 3
        assert await proxy.echo(1, x=[2]) == [[1], {"x": [2]}]
        assert await proxy.call("request_id", request_id="r-1") == "r-1"
        assert await proxy.async_request_id() is None
        assert await proxy.slow(0, "async") == "async"
        with pytest.raises(NamingError, match="name not found"):
            await proxy.fail_naming("x")
        with pytest.raises(NamingError):
            await proxy.async_fail("y")
        await proxy.oneway("record", 7)
        assert len(await proxy.big(300_000)) == 300_000  # larger than one write chunk
        assert proxy.peer_authenticated is True
    assert service.recorded == [7]
    opener, _ = memory_opener(daemon, nursery)
    other = AsyncProxy.for_address("memory", 1, "later", identification=KEY).open_with(opener)
    async with other, trio.open_nursery() as inner:
        results: list[Any] = []

        async def wait_later() -> None:
            results.append(await other.later())

        for _ in range(3):
            inner.start_soon(wait_later)
        await trio.testing.wait_all_tasks_blocked()
        assert deferring.finish("done") == 3
    assert results == ["done"] * 3
    assert opened == [1]
    await trio.testing.wait_all_tasks_blocked()
    assert daemon.statistics().connections == 0  # both connections are closed


async def test_many_tasks_share_one_memory_connection(nursery: trio.Nursery) -> None:
    daemon = Daemon(limits=DaemonLimits(max_in_flight=4))
    daemon.register(Service(), "svc")
    proxy, opened = memory_proxy(daemon, nursery)
    results: dict[int, Any] = {}
    async with proxy, trio.open_nursery() as inner:

        async def worker(i: int) -> None:
            results[i] = await (proxy.slow(0, i) if i % 2 else proxy.add(i, 1000))

        for i in range(40):
            inner.start_soon(worker, i)
    assert results == {i: (i if i % 2 else i + 1000) for i in range(40)}
    assert opened == [1]


async def test_idle_timeout_in_virtual_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = Daemon(limits=DaemonLimits(idle_timeout=30))
    daemon.register(Service(), "svc")
    proxy, opened = memory_proxy(daemon, nursery)
    async with proxy:
        assert await proxy.add(1, 1) == 2
        await trio.sleep(29)
        assert await proxy.add(2, 2) == 4  # not idle long enough: the same connection
        assert opened == [1]
        await trio.sleep(40)
        assert daemon.statistics().connections == 0  # dropped with an idle goodbye
        # A memory stream cannot be polled, so the proxy learns of the goodbye on its
        # next call (over TCP it polls the socket first and reconnects at once).
        with pytest.raises(ConnectionClosedError):
            await proxy.add(3, 3)
        assert await proxy.add(4, 4) == 8
        assert opened == [1, 1]


async def test_call_timeout_in_virtual_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = Daemon()
    daemon.register(Service(), "svc")
    proxy, opened = memory_proxy(daemon, nursery, timeout=5)
    async with proxy:
        start = trio.current_time()
        with pytest.raises(CallTimeoutError, match="no reply within 5 s"):
            await proxy.slow(100)
        assert trio.current_time() - start == pytest.approx(5)
        assert await proxy.add(1, 2) == 3  # a new connection
        assert opened == [1, 1]


async def test_handshake_timeout_in_virtual_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    daemon = Daemon(limits=DaemonLimits(handshake_timeout=5))
    client, server = trio.testing.memory_stream_pair()
    start = trio.current_time()
    await daemon.serve_connection(server)  # the client never answers the challenge
    assert trio.current_time() - start == pytest.approx(5 + 1.0, abs=0.1)  # + the linger
    data = bytearray()
    while chunk := await client.receive_some():
        data += chunk
    conn = Connection(CLIENT)
    conn.receive_data(bytes(data))
    assert type(conn.next_event()) is Challenge


# -- backpressure -------------------------------------------------------------------


class Blobs:
    """Replies of a chosen size; counts the calls it answered."""

    def __init__(self) -> None:
        self.calls = 0

    def blob(self, size: int, padding: str = "") -> str:
        self.calls += 1
        return "x" * size


class CountingStream(trio.abc.Stream):
    """A stream that counts the bytes received through it."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.received = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _handshake(client: trio.abc.Stream, conn: Connection) -> None:
    for expected in (Challenge, Welcome):
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(bytes(await client.receive_some(65536)))
        assert type(event) is expected
        if expected is Challenge:
            await client.send_all(conn.send(conn.response()))


async def test_a_client_that_does_not_read_stops_being_read_until_it_reads(
    nursery: trio.Nursery,
) -> None:
    cap, size, count = 100_000, 20_000, 1000
    daemon = Daemon(limits=DaemonLimits(max_queued_reply_bytes=cap, max_in_flight=count))
    blobs = Blobs()
    daemon.register(blobs, "blobs")
    # Requests flow freely; a reply's send_all returns only once the client read it,
    # so nothing sits in a pipe buffer: everything unread is queued in the daemon.
    up_send, up_receive = trio.testing.memory_stream_one_way_pair()
    down_send, down_receive = trio.testing.lockstep_stream_one_way_pair()
    server = CountingStream(trio.StapledStream(down_send, up_receive))
    client = trio.StapledStream(up_send, down_receive)
    nursery.start_soon(daemon.serve_connection, server)
    conn = Connection(CLIENT, max_in_flight=count)
    await _handshake(client, conn)
    requests = b"".join(
        conn.send(Request(i, "blobs", "blob", [size, "p" * 200], None, None)) for i in range(count)
    )
    assert len(requests) > 3 * 65536  # more than the daemon reads at once
    handshake_bytes = server.received
    await client.send_all(requests)
    await trio.testing.wait_all_tasks_blocked()
    # Stopped: the replies made wait (the cap, plus at most one chunk of replies
    # gathered before writing and one reply), and so do the requests (read: one
    # chunk, not the 250 KB sent).
    stalled_calls = blobs.calls
    assert cap < stalled_calls * size <= cap + WRITE_CHUNK + size
    assert server.received - handshake_bytes <= 65536
    await trio.sleep(0.05)
    assert blobs.calls == stalled_calls
    # The client reads: the daemon answers and reads again, every reply in order.
    corr_ids = []
    while len(corr_ids) < count:
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(bytes(await client.receive_some(65536)))
        assert type(event) is Reply and len(event.value) == size
        corr_ids.append(event.corr_id)
    assert corr_ids == list(range(count))
    assert blobs.calls == count
    assert server.received - handshake_bytes == len(requests)


async def test_the_outbox_keeps_order_and_counts_queued_bytes(nursery: trio.Nursery) -> None:
    down_send, down_receive = trio.testing.lockstep_stream_one_way_pair()
    _, up_receive = trio.testing.memory_stream_one_way_pair()
    transport = as_transport(trio.StapledStream(down_send, up_receive))
    assert isinstance(transport, StreamTransport)
    outbox = Outbox(transport, nursery)
    outbox.write(b"one,")
    outbox.write(b"two,")
    assert outbox.busy and outbox.queued == 8
    waiter_done = trio.Event()

    async def waiter() -> None:
        await outbox.wait_below(4)
        waiter_done.set()

    nursery.start_soon(waiter)
    await trio.testing.wait_all_tasks_blocked()
    assert not waiter_done.is_set()
    received = b""
    while len(received) < 8:
        received += await down_receive.receive_some()
    assert received == b"one,two,"
    await waiter_done.wait()
    nursery.start_soon(outbox.send, b"three")
    assert await down_receive.receive_some() == b"three"
    await trio.testing.wait_all_tasks_blocked()
    assert outbox.queued == 0 and not outbox.busy
    outbox.close()
    with pytest.raises(trio.ClosedResourceError):
        outbox.write(b"late")


def test_the_reply_cap_is_a_setting() -> None:
    assert _limits(load_config(env={})).max_queued_reply_bytes == 4 << 20
    config = load_config(env={"PYRO_MAX_QUEUED_REPLY_BYTES": "65536"})
    assert _limits(config).max_queued_reply_bytes == 65536
    with pytest.raises(ConfigError, match="PYRO_MAX_QUEUED_REPLY_BYTES must be an integer"):
        load_config(env={"PYRO_MAX_QUEUED_REPLY_BYTES": "-1"})
    with pytest.raises(ValueError, match="max_queued_reply_bytes"):
        DaemonLimits(max_queued_reply_bytes=1 << 40)
