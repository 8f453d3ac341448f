"""The async proxy: many tasks on one connection, identification, timeouts, reconnects."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    ConnectionDeniedError,
    LocalProtocolError,
    NamingError,
    URIError,
)
from pairns.rpc import AsyncProxy
from pairns.uri import URI
from pairns.wire import CLIENT, Connection
from pairns.wire.frames import MessageType

from .helpers import KEY, frame, start


def proxy(host: str, port: int, object_id: str = "svc", **kwargs: Any) -> AsyncProxy:
    return AsyncProxy.for_address(host, port, object_id, **kwargs)


async def test_fifty_tasks_share_one_connection(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery)
    results: dict[int, Any] = {}
    async with proxy(host, port) as p:

        async def worker(i: int) -> None:
            if i % 3 == 0:
                results[i] = await p.slow(0.001 * (i % 7), i)
            else:
                results[i] = await p.add(i, 1000)

        async with trio.open_nursery() as inner:
            for i in range(50):
                inner.start_soon(worker, i)
    assert results == {i: (i if i % 3 == 0 else i + 1000) for i in range(50)}
    assert daemon.statistics().total_connections == 1


async def test_more_tasks_than_the_server_allows_in_flight(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, max_in_flight=3)
    async with proxy(host, port) as p:
        results = []

        async def worker(i: int) -> None:
            results.append(await p.slow(0.01, i))

        async with trio.open_nursery() as inner:
            for i in range(20):
                inner.start_soon(worker, i)
        assert sorted(results) == list(range(20))


async def test_identification(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, identification=KEY)
    async with proxy(host, port, identification=KEY) as p:
        assert p.peer_authenticated is None  # not connected yet
        assert await p.add(1, 2) == 3
        assert p.peer_authenticated is True
    with pytest.raises(
        ConnectionDeniedError, match="refused the connection: incorrect identification"
    ):
        await proxy(host, port, identification="wrong").add(1, 2)
    with pytest.raises(ConnectionDeniedError, match="identification required"):
        await proxy(host, port).add(1, 2)


async def test_a_server_without_identification_is_seen_as_unauthenticated(
    nursery: trio.Nursery,
) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port, identification=KEY) as p:
        assert await p.add(1, 2) == 3
        assert p.peer_authenticated is False


async def fake_server(task_status: trio.TaskStatus[int]) -> None:
    """Claims to require identification, then welcomes with a proof it cannot make."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(
            frame(
                MessageType.CHALLENGE,
                {"nonce": "11" * 32, "auth": True, "server": "fake", "version": 1},
            )
        )
        await stream.receive_some(65536)
        await stream.send_all(
            frame(
                MessageType.WELCOME, {"mac": "22" * 32, "max_frame_size": 4096, "max_in_flight": 4}
            )
        )
        await stream.receive_some(65536)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


async def test_the_server_must_prove_it_knows_the_identification(nursery: trio.Nursery) -> None:
    port = await nursery.start(fake_server)
    with pytest.raises(ConnectionDeniedError, match="did not prove"):
        await proxy("127.0.0.1", port, identification=KEY).add(1, 2)


async def test_connect_failure_is_a_clear_connection_closed_error(nursery: trio.Nursery) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with pytest.raises(ConnectionClosedError, match=f"cannot connect to 127.0.0.1:{port}"):
        await proxy("127.0.0.1", port).add(1, 2)


async def test_timeout_drops_the_connection_and_fails_the_other_calls(
    nursery: trio.Nursery,
) -> None:
    daemon, _, host, port = await start(nursery)
    p = proxy(host, port, timeout=0.3)
    assert await p.add(1, 1) == 2
    errors: list[BaseException] = []

    async def long_call(seconds: float) -> None:
        try:
            await p.slow(seconds)
        except ConnectionClosedError as exc:
            errors.append(exc)

    async with trio.open_nursery() as inner:
        inner.start_soon(long_call, 10.0)  # times out after 0.3 s
        await trio.sleep(0.1)
        inner.start_soon(long_call, 10.0)  # started later: dropped with the connection
    assert [type(e) for e in errors] == [CallTimeoutError, ConnectionClosedError]
    assert "no reply within 0.3 s" in str(errors[0])
    assert "timed out" in str(errors[1])
    assert await p.add(2, 2) == 4  # the next call connects again
    assert daemon.statistics().total_connections == 2
    await p.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as p:
        got: list[Any] = []

        async def patient() -> None:
            got.append(await p.slow(0.2, "patient"))

        async def impatient() -> None:
            with trio.move_on_after(0.05):
                await p.slow(0.1, "impatient")
                got.append("should not happen")

        async with trio.open_nursery() as inner:
            inner.start_soon(impatient)  # becomes the reader first, then gives up
            await trio.sleep(0.01)
            inner.start_soon(patient)
        assert got == ["patient"]
        assert await p.add(1, 1) == 2  # the late reply of the cancelled call was dropped


class StoppableServer:
    """A daemon in its own cancel scope, so a test can stop it and keep running."""

    def __init__(self, **limits: Any) -> None:
        self.limits = limits
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    async def run(self, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    _, _, host, port = await start(nursery, **self.limits)
                    task_status.started((host, port))
                    await trio.sleep_forever()
        finally:
            self.stopped.set()

    def stop(self) -> None:
        self.scope.cancel()


async def test_calls_fail_when_the_server_goes_away(nursery: trio.Nursery) -> None:
    server = StoppableServer()
    host, port = await nursery.start(server.run)
    p = proxy(host, port)
    assert await p.add(1, 1) == 2

    async def stop_soon() -> None:
        await trio.sleep(0.1)
        server.stop()

    nursery.start_soon(stop_soon)
    with pytest.raises(ConnectionClosedError, match="the server is shutting down"):
        await p.slow(5)
    await server.stopped.wait()
    with pytest.raises(ConnectionClosedError, match="cannot connect"):
        await p.add(1, 1)


async def test_uris_and_sugar(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with AsyncProxy(f"PYRO://{host}:{port}/svc") as p:
        assert await p.add(1, 2) == 3
        assert repr(p) == f"<AsyncProxy PYRO://{host}:{port}/svc>"
        assert p.target.address == (host, port)
        with pytest.raises(AttributeError):
            _ = p._hidden
    async with AsyncProxy(URI.pyro(host, port, "svc")) as p:
        assert await p.add(2, 2) == 4
    with pytest.raises(URIError, match="resolve"):
        AsyncProxy(f"PYROLOC://{host}:{port}/svc-name")
    with pytest.raises(ValueError):
        AsyncProxy.for_address(host, port, "svc", timeout=0)
    with pytest.raises(ValueError):
        AsyncProxy.for_address(host, port, "svc", identification="")


async def test_unencodable_arguments_leave_the_connection_usable(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as p:
        with pytest.raises(LocalProtocolError, match="not JSON"):
            await p.echo({1, 2})
        assert await p.add(1, 1) == 2


async def test_errors_from_async_methods_and_request_ids(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    async with proxy(host, port) as p:
        with pytest.raises(NamingError):
            await p.async_fail(":x")
        assert await p.call("async_request_id", request_id="abc") == "abc"


async def test_reconnect_after_aclose_and_oneway(nursery: trio.Nursery) -> None:
    daemon, service, host, port = await start(nursery)
    p = proxy(host, port)
    await p.oneway("record", "first")  # a oneway opens the connection too
    await p.aclose()
    assert not p.connected
    assert await p.add(1, 1) == 2
    assert p.connected
    await p.aclose()
    assert service.recorded == ["first"]
    assert daemon.statistics().total_connections == 2


async def test_a_server_that_speaks_garbage(nursery: trio.Nursery) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n")
        await trio.sleep(1)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, handler, listeners)
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(ConnectionClosedError, match=r"protocol error .* bad frame magic"):
        await proxy("127.0.0.1", port).add(1, 1)


def test_bad_max_frame_size_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        AsyncProxy.for_address("h", 1, "o", max_frame_size=10)
    assert Connection(CLIENT).peer_max_in_flight == 1


async def test_calls_waiting_for_a_slot_fail_with_the_connection(
    nursery: trio.Nursery,
) -> None:
    server = StoppableServer(max_in_flight=1)
    host, port = await nursery.start(server.run)
    p = proxy(host, port, timeout=None)
    errors: list[str] = []

    async def call(method: str, *args: Any) -> None:
        try:
            await p.call(method, *args)
        except ConnectionClosedError as exc:
            errors.append(f"{method}: {exc}")

    with trio.fail_after(3):
        async with trio.open_nursery() as clients:
            clients.start_soon(call, "slow", 10)
            await trio.sleep(0.1)
            clients.start_soon(call, "add", 1, 2)  # waits for the only slot
            await trio.sleep(0.1)
            server.stop()
    assert sorted(errors) == [
        f"add: {host}:{port} closed the connection: the server is shutting down (SHUTDOWN)",
        f"slow: {host}:{port} closed the connection: the server is shutting down (SHUTDOWN)",
    ]
