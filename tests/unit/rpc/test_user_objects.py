"""User objects served by a daemon: dispatch rules, worker threads, oneway, errors,
and the name-server bookkeeping of connect / connectPersistent / disconnect / shutdown.

The name server here is an in-memory stand-in (a dict), so the rules are tested
without a name server process; tests/integration/test_user_objects.py runs the real one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import pairns
from pairns.errors import NamingError, RemoteCallError, error_from_wire
from pairns.rpc import AsyncProxy, Daemon, DaemonLimits, Proxy, oneway
from pairns.rpc.dispatch import LookupFailed, ObjectTable, is_oneway
from pairns.uri import URI

#: Longest a test waits for anything (a thread, a reply).
WAIT = 5.0


class Boom(Exception):
    """An exception type the client does not know."""


class Quotes:
    """A user object: plain, async, oneway, slow and failing methods."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.memory: list[str] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def getQuote(self) -> str:
        return "Give me a lever long enough and I shall move the world."

    def thread_id(self) -> int:
        return threading.get_ident()

    async def loop_thread_id(self) -> int:
        await trio.sleep(0)
        return threading.get_ident()

    def blocked(self) -> str:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.entered.set()
        try:
            self.release.wait(WAIT)
            return "released"
        finally:
            with self.lock:
                self.running -= 1

    @oneway
    def remember(self, text: str) -> str:
        self.entered.set()
        self.release.wait(WAIT)
        self.memory.append(text)
        return "never seen by the caller"

    @oneway
    def remember_and_fail(self) -> None:
        raise Boom("oneway failure, logged only")

    @oneway
    async def aremember(self, text: str) -> None:
        await trio.sleep(0.01)
        self.memory.append(text)

    def recalled(self) -> list[str]:
        return list(self.memory)

    def fail(self) -> None:
        raise Boom("no quote today")

    def unencodable(self) -> set[int]:
        return {1, 2}

    def fail_naming(self) -> None:
        raise NamingError("name not found", ":Test.nothing")

    def _private(self) -> str:
        return "secret"

    @property
    def prop(self) -> str:
        return "not a method"


class FakeNameServer:
    """The part of a name server a daemon uses, in memory, with Pyro 3's errors."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def register(self, name: str, uri: Any) -> None:
        self.calls.append(("register", name))
        if name in self.names:
            raise NamingError("name already exists", name)
        self.names[name] = str(uri)

    def unregister(self, name: str) -> None:
        self.calls.append(("unregister", name))
        if name not in self.names:
            raise NamingError("name not found", name)
        del self.names[name]

    def resolve(self, name: str) -> URI:
        if name not in self.names:
            raise NamingError("name not found", name)
        return URI.from_string(self.names[name])


async def serve(nursery: trio.Nursery, obj: Quotes, **limits: Any) -> tuple[Daemon, str]:
    daemon = Daemon("127.0.0.1", 0, limits=DaemonLimits(**limits))
    uri = daemon.connect(obj, "quotes")
    await nursery.start(daemon.serve)
    return daemon, uri


def aproxy(uri: str) -> AsyncProxy:
    return AsyncProxy(uri, timeout=WAIT)


# -- dispatch rules (no sockets) --------------------------------------------------------


def test_lookup_says_how_each_method_runs() -> None:
    table = ObjectTable()
    table.add(Quotes(), "user", threaded=True)
    table.add(Quotes(), "inline")
    plain = table.lookup("user", "getQuote")
    assert (plain.is_async, plain.threaded, plain.oneway) == (False, True, False)
    assert table.lookup("user", "loop_thread_id").is_async
    assert not table.lookup("user", "loop_thread_id").threaded
    assert table.lookup("user", "remember").oneway and table.lookup("user", "remember").threaded
    assert table.lookup("user", "aremember").oneway and table.lookup("user", "aremember").is_async
    assert table.lookup("inline", "getQuote").threaded is False
    # Only inline plain methods take the hot path.
    assert set(table.sync_methods) == {("inline", "getQuote")}
    assert is_oneway(Quotes.remember) and not is_oneway(Quotes.getQuote)
    assert pairns.oneway is oneway


_TABLE = ObjectTable()
_TABLE.add(Quotes(), "user", threaded=True)


@given(st.text(min_size=1, max_size=30))
def test_no_private_name_is_ever_callable(suffix: str) -> None:
    for name in ("_" + suffix, "__" + suffix):
        with pytest.raises(LookupFailed) as info:
            _TABLE.lookup("user", name)
        assert info.value.error[0] == "RemoteCallError"
        assert "AttributeError" in info.value.error[1]


def test_remote_errors_carry_type_message_and_traceback_text() -> None:
    error = error_from_wire("RemoteCallError", "Boom: x", ["x", "Boom", "Traceback ...\n"])
    assert isinstance(error, RemoteCallError)
    assert (error.remote_type, error.args[0], error.remote_traceback) == (
        "Boom",
        "x",
        "Traceback ...\n",
    )
    # Anything but text in the traceback slot is ignored, never interpreted.
    odd = error_from_wire("RemoteCallError", "Boom: x", ["x", "Boom", {"evil": 1}])
    assert isinstance(odd, RemoteCallError) and odd.remote_traceback is None
    assert str(odd) == "Boom: x"


# -- calls over sockets -------------------------------------------------------------------


async def test_only_public_methods_are_callable(nursery: trio.Nursery) -> None:
    _, uri = await serve(nursery, Quotes())
    proxy = aproxy(uri)
    assert await proxy.getQuote() == Quotes().getQuote()
    for name in ("_private", "__init__", "__class__", "prop", "nope"):
        with pytest.raises(RemoteCallError) as info:
            await proxy.call(name)
        assert info.value.remote_type == "AttributeError"
    await proxy.aclose()


async def test_plain_methods_run_in_worker_threads_async_ones_on_the_loop(
    nursery: trio.Nursery,
) -> None:
    _, uri = await serve(nursery, Quotes())
    proxy = aproxy(uri)
    loop_thread = threading.get_ident()
    assert await proxy.thread_id() != loop_thread
    assert await proxy.loop_thread_id() == loop_thread
    await proxy.aclose()


async def test_a_slow_method_does_not_stall_fast_ones(nursery: trio.Nursery) -> None:
    quotes = Quotes()
    _, uri = await serve(nursery, quotes)
    slow, fast = aproxy(uri), aproxy(uri)
    results: list[str] = []

    async def call_slow() -> None:
        results.append(await slow.blocked())

    nursery.start_soon(call_slow)
    with trio.fail_after(WAIT):
        await trio.to_thread.run_sync(quotes.entered.wait, WAIT)
    started = time.monotonic()
    for _ in range(20):  # answered while the slow one still blocks its thread
        assert await fast.getQuote()
    assert time.monotonic() - started < WAIT / 2
    # The same connection too: calls are in flight side by side.
    assert await slow.getQuote()
    assert results == []
    quotes.release.set()
    with trio.fail_after(WAIT):
        while not results:
            await trio.sleep(0.01)
    assert results == ["released"]
    await slow.aclose()
    await fast.aclose()


async def test_worker_threads_are_bounded(nursery: trio.Nursery) -> None:
    quotes = Quotes()
    _, uri = await serve(nursery, quotes, worker_threads=2)
    done: list[str] = []

    async def call() -> None:
        proxy = aproxy(uri)
        done.append(await proxy.blocked())
        await proxy.aclose()

    for _ in range(4):
        nursery.start_soon(call)
    with trio.fail_after(WAIT):
        while quotes.running < 2:
            await trio.sleep(0.01)
    await trio.sleep(0.2)  # a third thread would have started by now
    assert quotes.running == 2
    quotes.release.set()
    with trio.fail_after(WAIT):
        while len(done) < 4:
            await trio.sleep(0.01)
    assert quotes.most_running == 2


async def test_oneway_methods_return_at_once(nursery: trio.Nursery) -> None:
    quotes = Quotes()
    _, uri = await serve(nursery, quotes)
    proxy = aproxy(uri)
    with trio.fail_after(WAIT / 2):
        # The method blocks until released, yet the call returns (with None).
        assert await proxy.remember("first") is None
    with trio.fail_after(WAIT):
        await trio.to_thread.run_sync(quotes.entered.wait, WAIT)
    assert await proxy.recalled() == []
    # Its failure goes to the log, not to the caller.
    assert await proxy.remember_and_fail() is None
    assert await proxy.aremember("async") is None
    quotes.release.set()
    with trio.fail_after(WAIT):
        while len(await proxy.recalled()) < 2:
            await trio.sleep(0.01)
    assert sorted(await proxy.recalled()) == ["async", "first"]
    await proxy.aclose()


async def test_oneway_frames_to_user_objects_do_not_block_the_loop(
    nursery: trio.Nursery,
) -> None:
    quotes = Quotes()
    _, uri = await serve(nursery, quotes)
    proxy = aproxy(uri)
    await proxy.oneway("blocked")  # a plain method, sent as a oneway frame
    with trio.fail_after(WAIT):
        await trio.to_thread.run_sync(quotes.entered.wait, WAIT)
        assert await proxy.getQuote()  # the connection is still served
    quotes.release.set()
    await proxy.aclose()


async def test_remote_exceptions_arrive_with_type_message_and_traceback(
    nursery: trio.Nursery,
) -> None:
    _, uri = await serve(nursery, Quotes())
    proxy = aproxy(uri)
    with pytest.raises(RemoteCallError) as info:
        await proxy.fail()
    error = info.value
    assert error.remote_type == "Boom"
    assert error.args[0] == "no quote today"
    assert error.remote_traceback is not None
    assert 'raise Boom("no quote today")' in error.remote_traceback
    assert "in fail" in error.remote_traceback
    # pairns errors stay themselves.
    with pytest.raises(NamingError, match="name not found"):
        await proxy.fail_naming()
    # A result JSON cannot carry, computed in a worker thread: an error, not a crash.
    with pytest.raises(RemoteCallError, match="cannot be sent"):
        await proxy.unencodable()
    assert await proxy.getQuote()
    # Bad arguments are described, not a traceback of the daemon's internals.
    with pytest.raises(RemoteCallError, match="bad arguments") as bad:
        await proxy.getQuote(1, 2)
    assert bad.value.remote_traceback is None
    await proxy.aclose()


# -- name server bookkeeping -------------------------------------------------------------


def test_connect_registers_and_refuses_an_existing_name() -> None:
    ns = FakeNameServer()
    daemon = Daemon("127.0.0.1", 0, ns=ns)
    uri = daemon.connect(Quotes(), ":Test.quotes")
    port = daemon.address[1]
    assert port > 0 and uri.startswith(f"PYRO://127.0.0.1:{port}/")
    assert ns.names == {":Test.quotes": uri}
    second = Daemon("127.0.0.1", 0, ns=ns)
    with pytest.raises(NamingError, match="name already exists"):
        second.connect(Quotes(), ":Test.quotes")
    second.shutdown()
    assert ns.names == {":Test.quotes": uri}
    # Refused by the name server: nothing stays connected locally either.
    ns.names[":Test.taken"] = "PYRO://elsewhere:1/x"
    with pytest.raises(NamingError):
        daemon.connect(Quotes(), ":Test.taken")
    assert daemon.statistics().objects == 1
    # Without a name nothing is registered.
    daemon.connect(Quotes())
    assert len(ns.names) == 2
    daemon.shutdown()


def test_connect_persistent_keeps_the_uri_of_this_address() -> None:
    ns = FakeNameServer()
    first = Daemon("127.0.0.1", 0, ns=ns)
    uri = first.connectPersistent(Quotes(), ":Test.quotes")
    port = first.address[1]
    first.shutdown()  # closes the listening socket too: the port is free again
    assert ns.names == {":Test.quotes": uri}  # shutdown leaves a persistent name

    again = Daemon("127.0.0.1", port, ns=ns)
    assert again.connectPersistent(Quotes(), ":Test.quotes") == uri
    assert ("register", ":Test.quotes") not in ns.calls[1:]
    again.shutdown()

    # Another address (or a protocol the daemon does not serve): the entry is replaced.
    ns.names[":Test.moved"] = "PYRO://elsewhere.example:7766/0000"
    fresh = Daemon("127.0.0.1", 0, ns=ns)
    new_uri = fresh.connectPersistent(Quotes(), ":Test.moved")
    assert new_uri != "PYRO://elsewhere.example:7766/0000"
    assert ns.names[":Test.moved"] == new_uri
    # A name not yet registered is registered.
    other = fresh.connectPersistent(Quotes(), ":Test.new")
    assert ns.names[":Test.new"] == other
    with pytest.raises(ValueError, match="name server"):
        Daemon("127.0.0.1", 0).connectPersistent(Quotes(), ":x")
    with pytest.raises(TypeError, match="async"):
        Daemon("127.0.0.1", 0, ns=pairns.AsyncNameServerProxy("127.0.0.1", 9))
    with pytest.raises(TypeError, match="no register"):
        Daemon("127.0.0.1", 0).useNameServer(object())  # type: ignore[arg-type]
    fresh.shutdown()


def test_disconnect_and_shutdown_unregister() -> None:
    ns = FakeNameServer()
    daemon = Daemon("127.0.0.1", 0, ns=ns)
    kept, gone, dropped = Quotes(), Quotes(), Quotes()
    daemon.connectPersistent(kept, ":Test.kept")
    daemon.connect(gone, ":Test.gone")
    daemon.connect(dropped, ":Test.dropped")
    daemon.disconnect(dropped)
    assert ":Test.dropped" not in ns.names
    with pytest.raises(KeyError):
        daemon.disconnect(dropped)
    with pytest.raises(KeyError):
        daemon.disconnect(Quotes())
    del ns.names[":Test.gone"]  # someone removed it already: shutdown goes on
    ns.names[":Test.other"] = "PYRO://h:1/x"
    daemon.shutdown()
    assert ns.names == {":Test.kept": ns.names[":Test.kept"], ":Test.other": "PYRO://h:1/x"}
    assert daemon.statistics().objects == 1  # the persistent one is still served


def test_request_loop_serves_until_shutdown_from_another_thread() -> None:
    ns = FakeNameServer()
    daemon = Daemon("127.0.0.1", 0, ns=ns)
    quotes = Quotes()
    uri = daemon.connect(quotes, "quotes")
    loop = threading.Thread(target=daemon.requestLoop, daemon=True)
    loop.start()
    try:
        with Proxy(uri, timeout=WAIT) as proxy:
            assert proxy.getQuote() == quotes.getQuote()
        # PYROLOC: the daemon resolves the name it was connected under.
        host, port = daemon.address
        with pairns.getProxyForURI(f"PYROLOC://{host}:{port}/quotes", timeout=WAIT) as found:
            assert found.getQuote() == quotes.getQuote()
            assert str(found.target) == uri
    finally:
        daemon.shutdown()
        loop.join(WAIT)
    assert not loop.is_alive()
    assert ns.names == {}


def test_identification_covers_user_objects_and_pyroloc() -> None:
    daemon = Daemon("127.0.0.1", 0, identification="s3cret")
    quotes = Quotes()
    daemon.connect(quotes, "quotes")
    host, port = daemon.address
    loop = threading.Thread(target=daemon.requestLoop, daemon=True)
    loop.start()
    try:
        where = f"PYROLOC://{host}:{port}/quotes"
        with pytest.raises(pairns.ConnectionDeniedError):
            pairns.getProxyForURI(where, timeout=WAIT)
        with pytest.raises(pairns.ConnectionDeniedError):
            pairns.getProxyForURI(where, identification="wrong", timeout=WAIT)
        with pairns.getProxyForURI(where, identification="s3cret", timeout=WAIT) as proxy:
            assert proxy.getQuote() == quotes.getQuote()
    finally:
        daemon.shutdown()
        loop.join(WAIT)
    assert not loop.is_alive()


async def test_a_client_leaving_mid_call_and_a_stop_mid_call(nursery: trio.Nursery) -> None:
    quotes = Quotes()
    daemon = Daemon("127.0.0.1", 0)
    uri = daemon.connect(quotes, "quotes")
    serving = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with serving:
            await daemon.serve(task_status=task_status)

    await nursery.start(run)
    # The client goes away while its call blocks a thread: the daemon serves on.
    leaving = aproxy(uri)
    async with trio.open_nursery() as inner:
        inner.start_soon(leaving.blocked)
        with trio.fail_after(WAIT):
            while quotes.running < 1:
                await trio.sleep(0.01)
        inner.cancel_scope.cancel()
    await leaving.aclose()
    assert quotes.running == 1
    other = aproxy(uri)
    assert await other.getQuote()

    # Stopping the daemon does not wait for the threads (they cannot be stopped);
    # the caller is told the server is shutting down.
    errors: list[Exception] = []

    async def call_blocked() -> None:
        try:
            await other.blocked()
        except pairns.ConnectionClosedError as exc:
            errors.append(exc)

    nursery.start_soon(call_blocked)
    with trio.fail_after(WAIT):
        while quotes.running < 2:
            await trio.sleep(0.01)
    serving.cancel()
    with trio.fail_after(WAIT / 2):
        while not errors:
            await trio.sleep(0.01)
    assert "shutting down" in str(errors[0])
    assert daemon.statistics().connections == 0
    assert quotes.running == 2  # both methods still run; their results are dropped
    quotes.release.set()
    await other.aclose()


async def test_proxies_send_methods_set_oneway_as_oneway_calls(nursery: trio.Nursery) -> None:
    quotes = Quotes()
    _, uri = await serve(nursery, quotes)
    proxy = aproxy(uri)
    proxy._setOneway(["blocked"])
    with trio.fail_after(WAIT / 2):
        assert await proxy.blocked() is None  # no reply awaited although it blocks
    with trio.fail_after(WAIT):
        while quotes.running < 1:
            await trio.sleep(0.01)
    quotes.release.set()
    await proxy.aclose()
    with pytest.raises(TypeError):
        proxy._setOneway([1])  # type: ignore[list-item]

    def blocking_client() -> None:
        with Proxy(uri, timeout=WAIT) as sync_proxy:
            sync_proxy._setOneway("recalled")
            assert sync_proxy.recalled() is None
            assert sync_proxy.getQuote() == quotes.getQuote()

    await trio.to_thread.run_sync(blocking_client)


async def test_user_objects_on_ipv6_loopback(nursery: trio.Nursery) -> None:
    try:
        daemon = Daemon("::1", 0)
        uri = daemon.connect(Quotes(), "quotes")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert uri.startswith(f"PYRO://[::1]:{daemon.address[1]}/")
    await nursery.start(daemon.serve)
    proxy = await pairns.async_getProxyForURI(
        f"PYROLOC://[::1]:{daemon.address[1]}/quotes", timeout=WAIT
    )
    assert await proxy.getQuote() == Quotes().getQuote()
    await proxy.aclose()
