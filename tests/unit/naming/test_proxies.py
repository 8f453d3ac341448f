"""Both name server proxies offer exactly the methods declared in ``pairns.naming.methods``.

The table is the one declaration: these tests hold the blocking proxy, the async proxy
and the served ``NameServer`` to it, so they cannot drift apart again. Every call is
checked on the wire against a recording object (writes carry a fresh request id, reads
do not), and ``twin()``/``dump()`` against real in-process nodes.
"""

from __future__ import annotations

import inspect
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from pairns import URI, NamingError, URIError
from pairns.config import Config
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming import methods as m
from pairns.naming.methods import METHODS, Kind
from pairns.naming.proxy import AsyncNameServerProxy, NameServerProxy
from pairns.naming.service import NameServer
from pairns.node import open_node
from pairns.rpc import Daemon, current_request_id

HOST = "127.0.0.1"

#: What a proxy offers besides the name server's methods.
LOCAL = {
    NameServerProxy: {"close", "from_uri", "fullName"},
    AsyncNameServerProxy: {"aclose", "from_uri", "fullName"},
}


def public_methods(cls: type) -> set[str]:
    def is_method(attr: object) -> bool:
        return callable(attr) or isinstance(attr, classmethod)

    return {
        name
        for name in dir(cls)
        if not name.startswith("_") and is_method(inspect.getattr_static(cls, name))
    }


@pytest.mark.parametrize("cls", [NameServerProxy, AsyncNameServerProxy])
def test_each_proxy_offers_exactly_the_declared_methods(cls: type) -> None:
    assert public_methods(cls) - LOCAL[cls] == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_both_proxies_declare_each_method_with_the_tables_signature(name: str) -> None:
    method = METHODS[name]
    sync_fn = getattr(NameServerProxy, name)
    async_fn = getattr(AsyncNameServerProxy, name)
    assert not inspect.iscoroutinefunction(sync_fn)
    assert inspect.iscoroutinefunction(async_fn)
    sync_sig, async_sig = inspect.signature(sync_fn), inspect.signature(async_fn)
    assert sync_sig == async_sig  # names, kinds, defaults and annotations
    params = list(sync_sig.parameters.values())[1:]  # without self
    assert [(p.name, p.default) for p in params] == [(p.name, p.default) for p in method.params]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert sync_fn.__doc__ and sync_fn.__doc__ == async_fn.__doc__


def test_the_table_is_what_the_name_server_serves() -> None:
    served = {
        name
        for name in dir(NameServer)
        if not name.startswith("_") and callable(inspect.getattr_static(NameServer, name))
    }
    assert served == set(METHODS) | {"fullName"}  # fullName: the proxies answer it locally
    for name, method in METHODS.items():
        params = list(inspect.signature(getattr(NameServer, name)).parameters.values())[1:]
        # The admin proof (keyword-only ``admin``) is attached by the proxies, not
        # passed by their callers: it is no parameter of the table.
        params = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert [(p.name, p.default) for p in params] == [
            (p.name, p.default) for p in method.params
        ], name


def test_writes_are_the_namespace_changes() -> None:
    writes = {name for name, method in METHODS.items() if method.kind is Kind.WRITE}
    assert writes == {"register", "unregister", "createGroup", "deleteGroup", "setMeta"}


# -- on the wire: a recording object served as the name server --------------------------

#: What the recorder answers, in wire form, and what each proxy must turn it into.
REPLIES: dict[str, tuple[Any, Any]] = {
    "ping": (True, True),
    "resolve": ("PYRO://h:1/x", URI.from_string("PYRO://h:1/x")),
    "list": ([["a", 0], ["b", 1]], [("a", 0), ("b", 1)]),
    "flatlist": (
        [[":Default.b", "PYRO://h:1/b"]],
        [(":Default.b", URI.from_string("PYRO://h:1/b"))],
    ),
    "getMeta": ({"floor": 2}, {"floor": 2}),
    "getSystemMeta": ({"node": "n"}, {"node": "n"}),
    "dump": ({"entries": [], "next": None}, {"entries": [], "next": None}),
    "status": ({"role": "single"}, {"role": "single"}),
    "twin": ("PYRO://h:2/Pyro.NameServer", URI.from_string("PYRO://h:2/Pyro.NameServer")),
    "resync": (None, None),
    "shutdown": (True, True),
    "load": ({"loaded": [":x"], "existed": []}, {"loaded": [":x"], "existed": []}),
    "adminChallenge": ("ab12", "ab12"),
}

#: Arguments to call each method with, and what must arrive (default group :Default).
ARGUMENTS: dict[str, tuple[tuple[Any, ...], list[Any]]] = {
    "ping": ((), []),
    "resolve": (("x",), [":Default.x"]),
    "list": ((), [":Default"]),
    "flatlist": ((), []),
    "getMeta": ((":G.x",), [":G.x"]),
    "getSystemMeta": (("x",), [":Default.x"]),
    "dump": ((":G", 5), [":G", 5]),
    "register": (("x", URI.from_string("PYRO://h:1/x")), [":Default.x", "PYRO://h:1/x"]),
    "unregister": (("x",), [":Default.x"]),
    "createGroup": ((":G",), [":G"]),
    "deleteGroup": (("g",), [":Default.g"]),
    "setMeta": (("x", [1, "two"]), [":Default.x", [1, "two"]]),
    "status": ((), []),
    "twin": ((), []),
    "resync": ((), []),
    "shutdown": ((), []),
    "load": (([{"name": ":x", "kind": "group"}],), [[{"name": ":x", "kind": "group"}]]),
    "adminChallenge": ((), []),
}


@attrs.define
class Recorded:
    method: str
    args: list[Any]
    request_id: str | None


def recorder() -> tuple[object, list[Recorded]]:
    """An object with every table method, recording what arrives (and the request id)."""
    seen: list[Recorded] = []

    def make(name: str) -> Callable[..., Any]:
        def method(self: object, *args: Any) -> Any:
            seen.append(Recorded(name, list(args), current_request_id.get()))
            return REPLIES.get(name, (None, None))[0]

        return method

    cls = type("Recorder", (), {name: make(name) for name in METHODS})
    return cls(), seen


def check(seen: list[Recorded], results: dict[str, Any]) -> None:
    # Before its first read (or write), the proxy asks the node where its twin is,
    # once (the failover learns the pair from it).
    expected = list(METHODS)
    expected.insert(expected.index("resolve"), "twin")
    assert [r.method for r in seen] == expected
    del seen[expected.index("resolve") - 1]
    ids = []
    for record in seen:
        assert record.args == ARGUMENTS[record.method][1], record.method
        if METHODS[record.method].kind is Kind.WRITE:
            assert record.request_id is not None
            assert re.fullmatch("[0-9a-f]{32}", record.request_id)
            ids.append(record.request_id)
        else:
            assert record.request_id is None, record.method
        assert results[record.method] == REPLIES.get(record.method, (None, None))[1]
    assert len(set(ids)) == len(ids) == 5  # a fresh id for every write
    assert type(results["list"][0]) is tuple and type(results["flatlist"][0][1]) is URI


async def test_blocking_proxy_calls_on_the_wire(nursery: trio.Nursery) -> None:
    obj, seen = recorder()
    daemon = Daemon()
    daemon.register(obj, NAMESERVER_OBJECT_ID)
    host, port = await nursery.start(daemon.serve)

    def run() -> dict[str, Any]:
        with NameServerProxy(host, port, default_group=":Default") as ns:
            return {name: getattr(ns, name)(*ARGUMENTS[name][0]) for name in METHODS}

    check(seen, await trio.to_thread.run_sync(run))


async def test_async_proxy_calls_on_the_wire(nursery: trio.Nursery) -> None:
    obj, seen = recorder()
    daemon = Daemon()
    daemon.register(obj, NAMESERVER_OBJECT_ID)
    host, port = await nursery.start(daemon.serve)
    async with AsyncNameServerProxy(host, port, default_group=":Default") as ns:
        results = {name: await getattr(ns, name)(*ARGUMENTS[name][0]) for name in METHODS}
    check(seen, results)


def test_a_bad_name_fails_before_anything_is_sent() -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    with NameServerProxy(HOST, port, timeout=1) as ns, pytest.raises(NamingError):
        ns.resolve("not a name!")


def test_a_call_keeps_its_request_id() -> None:
    call = m.REGISTER.bind(("x", "PYRO://h:1/x"), ":Default")
    assert call.method == "register" and call.args == (":Default.x", "PYRO://h:1/x")
    again = m.REGISTER.bind(("x", "PYRO://h:1/x"), ":Default")
    assert call.request_id and again.request_id and call.request_id != again.request_id
    assert m.RESOLVE.bind(("x",), ":G").request_id is None


# -- twin() and dump() against real nodes ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def both_ways(port: int) -> tuple[NameServerProxy, AsyncNameServerProxy]:
    return NameServerProxy(HOST, port, timeout=5), AsyncNameServerProxy(HOST, port, timeout=5)


async def test_twin_on_a_single_node_is_none(tmp_path: Path) -> None:
    cfg = Config(host=HOST, port=0, uri_file=str(tmp_path / "ns.uri"))
    async with open_node(cfg) as node:
        sync_ns, async_ns = both_ways(node.address[1])
        with sync_ns:
            assert await trio.to_thread.run_sync(sync_ns.twin) is None
        async with async_ns:
            assert await async_ns.twin() is None


async def test_twin_names_the_other_node_on_both_proxies(tmp_path: Path) -> None:
    p1, p2 = free_port(), free_port()

    def cfg(name: str, port: int, role: int, twin: int) -> Config:
        return Config(
            host=HOST,
            port=port,
            role=role,
            twin=f"{HOST}:{twin}",
            uri_file=str(tmp_path / f"{name}.uri"),
            peer_timeout=0.4,
        )

    async with open_node(cfg("n1", p1, 1, p2)), open_node(cfg("n2", p2, 2, p1)):
        for port, other in ((p1, p2), (p2, p1)):
            expected = URI.pyro(HOST, other, NAMESERVER_OBJECT_ID)
            sync_ns, async_ns = both_ways(port)
            with sync_ns:
                assert await trio.to_thread.run_sync(sync_ns.twin) == expected
            async with async_ns:
                found = await async_ns.twin()
                assert found == expected and isinstance(found, URI)


async def test_dump_pages_through_the_namespace_on_both_proxies(tmp_path: Path) -> None:
    cfg = Config(host=HOST, port=0, uri_file=str(tmp_path / "ns.uri"))
    async with open_node(cfg) as node:
        sync_ns, async_ns = both_ways(node.address[1])
        async with async_ns:
            await async_ns.createGroup(":T")
            for i in range(5):
                await async_ns.register(f":T.o{i}", f"PYRO://h:1/o{i}")
            await async_ns.setMeta(":T.o3", {"floor": 3})

            async def async_pages() -> list[dict[str, Any]]:
                entries, after = [], None
                while True:
                    page = await async_ns.dump(after, limit=2)
                    assert len(page["entries"]) <= 2
                    entries += page["entries"]
                    if (after := page["next"]) is None:
                        return entries

            from_async = await async_pages()

        def sync_pages() -> list[dict[str, Any]]:
            entries, after = [], None
            with sync_ns:
                while True:
                    page = sync_ns.dump(after, limit=2)
                    entries += page["entries"]
                    if (after := page["next"]) is None:
                        return entries

        from_sync = await trio.to_thread.run_sync(sync_pages)
    assert from_sync == from_async
    names = [e["name"] for e in from_async]
    assert names == sorted(names)
    assert {":T", ":T.o0", ":T.o4", ":Pyro.NameServer"} <= set(names)
    o3 = next(e for e in from_async if e["name"] == ":T.o3")
    assert o3["kind"] == "object" and o3["uri"] == "PYRO://h:1/o3" and o3["meta"] == {"floor": 3}


def test_resolve_replies_are_parsed_once_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(m, "_parsed_uris", {})
    monkeypatch.setattr(m, "URI_CACHE_SIZE", 3)
    first = m.RESOLVE.reply("PYRO://h:1/x")
    assert first == URI.from_string("PYRO://h:1/x")
    assert m.RESOLVE.reply("PYRO://h:1/x") is first
    with pytest.raises(URIError):
        m.RESOLVE.reply("not a uri")
    with pytest.raises(URIError):
        m.RESOLVE.reply(["not", "text"])
    assert list(m._parsed_uris) == ["PYRO://h:1/x"]
    for i in range(10):
        assert m.RESOLVE.reply(f"PYRO://h:1/o{i}") == URI.pyro("h", 1, f"o{i}")
        assert len(m._parsed_uris) <= 3
