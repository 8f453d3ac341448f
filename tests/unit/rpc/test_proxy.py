"""The blocking proxy, driven from worker threads against a daemon in the test's Trio run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import trio

from pairns.errors import (
    CallTimeoutError,
    ConnectionClosedError,
    ConnectionDeniedError,
    LocalProtocolError,
    NamingError,
    ProtocolError,
    RemoteCallError,
    URIError,
)
from pairns.rpc import Proxy
from pairns.uri import URI

from .helpers import KEY, start
from .test_aproxy import fake_server

T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def proxy(host: str, port: int, object_id: str = "svc", **kwargs: Any) -> Proxy:
    return Proxy.for_address(host, port, object_id, **kwargs)


async def test_calls_errors_and_sugar(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)

    def work() -> None:
        with Proxy(f"PYRO://{host}:{port}/svc") as p:
            assert p.add(1, 2) == 3
            assert p.call("echo", 1, key="v") == [[1], {"key": "v"}]
            assert p.call("request_id", request_id="rid-7") == "rid-7"
            assert p.slow(0.01, "async ok") == "async ok"
            with pytest.raises(NamingError):
                p.fail_naming(":x")
            with pytest.raises(RemoteCallError) as info:
                p.fail_value()
            assert info.value.remote_type == "ValueError"
            with pytest.raises(RemoteCallError, match="private"):
                p.call("_private")
            with pytest.raises(AttributeError):
                _ = p._private
            with pytest.raises(LocalProtocolError):
                p.echo(b"bytes are not JSON")
            assert p.add(2, 2) == 4
            assert p.peer_authenticated is False
            assert repr(p) == f"<Proxy PYRO://{host}:{port}/svc>"
        assert not p.connected
        with (
            Proxy(URI.pyro(host, port, "nobody")) as nobody,
            pytest.raises(ProtocolError, match="unknown object"),
        ):
            nobody.ping()

    await in_thread(work)


async def test_identification(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery, identification=KEY)

    def work() -> None:
        with proxy(host, port, identification=KEY) as p:
            assert p.add(1, 1) == 2
            assert p.peer_authenticated is True
        with pytest.raises(ConnectionDeniedError, match="incorrect identification"):
            proxy(host, port, identification="nope").add(1, 1)
        with pytest.raises(ConnectionDeniedError, match="identification required"):
            proxy(host, port).add(1, 1)
        # A denied oneway is reported too, not lost silently.
        with pytest.raises(ConnectionDeniedError, match="identification required"):
            proxy(host, port).oneway("record", 1)

    await in_thread(work)


async def test_the_server_must_prove_it_knows_the_identification(nursery: trio.Nursery) -> None:
    port = await nursery.start(fake_server)

    def work() -> None:
        with pytest.raises(ConnectionDeniedError, match="did not prove"):
            proxy("127.0.0.1", port, identification=KEY).add(1, 1)

    await in_thread(work)


async def test_connect_failure(nursery: trio.Nursery) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()

    def work() -> None:
        with pytest.raises(ConnectionClosedError, match=f"cannot connect to 127.0.0.1:{port}"):
            proxy("127.0.0.1", port).add(1, 1)

    await in_thread(work)


async def test_timeout_drops_the_connection_and_the_next_call_reconnects(
    nursery: trio.Nursery,
) -> None:
    daemon, _, host, port = await start(nursery)

    def work() -> None:
        p = proxy(host, port, timeout=0.3)
        assert p.add(1, 1) == 2
        started = time.monotonic()
        with pytest.raises(CallTimeoutError, match=r"no reply within 0\.3 s"):
            p.slow(5)
        assert time.monotonic() - started < 2
        assert not p.connected
        assert p.add(2, 2) == 4
        p.close()

    await in_thread(work)
    assert daemon.statistics().total_connections == 2


async def test_threads_share_one_proxy(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery)
    p = proxy(host, port)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                assert p.add(n, i) == n + i
                assert p.echo(n, i) == [[n, i], {}]
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    def work() -> None:
        threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p.close()

    await in_thread(work)
    assert failures == []
    assert daemon.statistics().total_connections == 1


async def test_reconnects_after_the_server_dropped_the_connection(nursery: trio.Nursery) -> None:
    daemon, _, host, port = await start(nursery, idle_timeout=0.2)

    def work() -> None:
        with proxy(host, port) as p:
            assert p.add(1, 1) == 2
            time.sleep(0.6)
            assert p.add(2, 2) == 4

    await in_thread(work)
    assert daemon.statistics().total_connections == 2


async def test_close_from_another_thread_wakes_a_blocked_call(nursery: trio.Nursery) -> None:
    _, _, host, port = await start(nursery)
    p = proxy(host, port, timeout=None)

    def work() -> None:
        p.add(0, 0)
        closer = threading.Timer(0.2, p.close)
        closer.start()
        with pytest.raises(ConnectionClosedError):
            p.slow(10)
        closer.join()
        assert p.add(1, 1) == 2  # usable again afterwards
        p.close()

    await in_thread(work)


async def test_oneway_and_goodbye_on_server_shutdown(nursery: trio.Nursery) -> None:
    async with trio.open_nursery() as server_scope:
        _, service, host, port = await start(server_scope)
        p = proxy(host, port)

        def work() -> None:
            p.oneway("record", "x")
            assert p.add(1, 1) == 2

        await in_thread(work)
        assert service.recorded == ["x"]
        server_scope.cancel_scope.cancel()

    def after() -> None:
        with pytest.raises(ConnectionClosedError):
            p.add(1, 1)

    await in_thread(after)


def test_constructor_checks() -> None:
    with pytest.raises(URIError):
        Proxy("PYRONAME://:Default.x")
    with pytest.raises(ValueError):
        Proxy.for_address("h", 0, "o")
    with pytest.raises(ValueError):
        Proxy.for_address("h", 1, "o", timeout=-1)
    with pytest.raises(TypeError):
        Proxy.for_address("h", 1, "o", timeout="1")  # type: ignore[arg-type]


async def test_call_within_bounds_one_call_and_the_proxy_timeout_stays(
    nursery: trio.Nursery,
) -> None:
    daemon, _, host, port = await start(nursery)

    def work() -> None:
        p = proxy(host, port, timeout=5.0)
        assert p.call_within(0.5, "add", 1, 1) == 2  # kernel timeouts set for 0.5 s
        started = time.monotonic()
        with pytest.raises(CallTimeoutError, match=r"no reply within 0\.2 s"):
            p.call_within(0.2, "slow", 5)
        assert time.monotonic() - started < 1.5
        assert not p.connected
        assert p.call("slow", 0.6) is None  # the proxy's own 5 s again, not 0.2 or 0.5
        with pytest.raises(ValueError):
            p.call_within(float("nan"), "add", 1, 1)
        p.close()

    await in_thread(work)
    assert daemon.statistics().total_connections == 2
