"""Issue 10: the naming service over the network, with the blocking and the async proxy."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from _support import HOST, NodeProcess

import pairns
from pairns import URI, NamingError

PRINTER = "PYRO://printhost:7766/1234abcd"


def _ns(node: NodeProcess, **kwargs: Any) -> pairns.NameServerProxy:
    return pairns.NameServerLocator(**kwargs).getNS(HOST, node.port, timeout=10)


def _raw(node: NodeProcess) -> pairns.Proxy:
    """A plain proxy for the name server object: names go to the node unexpanded."""
    return pairns.Proxy.for_address(HOST, node.port, "Pyro.NameServer", timeout=10)


def _established_to(port: int) -> int | None:
    """Established TCP connections whose local port is *port* (None: cannot tell)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    count = 0
    for line in lines:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":
            count += 1
    return count


def _naming_error(call: Any, *args: Any) -> tuple[str, str | None]:
    with pytest.raises(NamingError) as info:
        call(*args)
    return info.value.message, info.value.name


def test_blocking_proxy_tour(node: NodeProcess) -> None:
    with _ns(node) as ns:
        assert ns.ping() is True
        own = URI.from_string(f"PYRO://{HOST}:{node.port}/Pyro.NameServer")
        assert ns.resolve(":Pyro.NameServer") == own
        assert ns.list(":") == [("Default", 0), ("Pyro", 0)]
        assert ns.list(":Pyro") == [("NameServer", 1)]
        assert ns.list() == []  # the default group, empty at start

        ns.createGroup(":Test")
        ns.createGroup(":Test.sub")
        ns.register(":Test.printer", PRINTER)
        ns.register(":Test.sub.scanner", URI.from_string("PYRO://scanhost:7000/abc"))
        found = ns.resolve(":Test.printer")
        assert isinstance(found, URI)
        assert found == URI.from_string(PRINTER)
        assert str(found) == str(URI.from_string(PRINTER))
        assert ns.list(":Test") == [("printer", 1), ("sub", 0)]
        assert ns.list(":Test.sub") == [("scanner", 1)]
        flat = ns.flatlist()
        assert all(isinstance(uri, URI) for _, uri in flat)
        assert sorted(flat) == sorted(
            [
                (":Pyro.NameServer", own),
                (":Test.printer", URI.from_string(PRINTER)),
                (":Test.sub.scanner", URI.from_string("PYRO://scanhost:7000/abc")),
            ]
        )

        # Relative names (and the empty name) expand against :Default.
        ns.register("relative", "PYRO://h:1/rel")
        assert ns.resolve(":Default.relative") == URI.from_string("PYRO://h:1/rel")
        assert ns.resolve("relative") == URI.from_string("PYRO://h:1/rel")
        assert ns.list("") == [("relative", 1)]
        assert ns.fullName("relative") == ":Default.relative"
        ns.createGroup("rgroup")
        ns.register("rgroup.x", "PYRO://h:1/x")
        assert ns.list(":Default") == [("relative", 1), ("rgroup", 0)]
        with _raw(node) as raw:  # expanded by the node itself, too
            assert raw.call("resolve", "relative") == str(URI.from_string("PYRO://h:1/rel"))
            assert raw.call("resolve", "rgroup.x") == str(URI.from_string("PYRO://h:1/x"))

        # Metadata: any JSON value, on objects and groups; None until set.
        assert ns.getMeta(":Test.printer") is None
        assert ns.getMeta(":Test") is None
        for value in (
            {"floor": 2, "tags": ["a", "b"], "nested": {"x": [1, 2.5, None, True]}},
            [1, "two", 3.0],
            "plain text",
            42,
            -1.5,
            False,
            None,
        ):
            ns.setMeta(":Test.printer", value)
            assert ns.getMeta(":Test.printer") == value
        ns.setMeta(":Test", {"group": True})
        assert ns.getMeta(":Test") == {"group": True}
        ns.setMeta("relative", "via relative name")
        assert ns.getMeta(":Default.relative") == "via relative name"

        system = ns.getSystemMeta(":Test.printer")
        node_id = ns.status()["node_id"]
        assert system["owner"] == node_id
        assert isinstance(system["created"], float)
        assert system["created"] <= system["modified"] <= time.time() + 1
        assert abs(system["created"] - time.time()) < 60
        group_system = ns.getSystemMeta(":Test")
        assert group_system["owner"] == node_id

        # unregister / deleteGroup
        ns.unregister(":Test.printer")
        assert _naming_error(ns.resolve, ":Test.printer") == ("name not found", ":Test.printer")
        assert ns.list(":Test") == [("sub", 0)]
        ns.deleteGroup(":Test")
        assert _naming_error(ns.resolve, ":Test.sub.scanner")[0] == "name not found"
        assert _naming_error(ns.list, ":Test") == ("group not found", ":Test")
        assert ns.list(":") == [("Default", 0), ("Pyro", 0)]
        assert [name for name, _ in ns.flatlist()] == [
            ":Default.relative",
            ":Default.rgroup.x",
            ":Pyro.NameServer",
        ]


def test_every_naming_error_reaches_the_client_with_the_name(node: NodeProcess) -> None:
    with _ns(node) as ns, _raw(node) as raw:
        ns.createGroup(":G")
        ns.register(":G.obj", PRINTER)
        cases: list[tuple[Any, tuple[Any, ...], tuple[str, str]]] = [
            # register
            (ns.register, (":G.obj", PRINTER), ("name already exists", ":G.obj")),
            (ns.register, (":Nope.obj", PRINTER), ("(parent)group not found", ":Nope")),
            (ns.register, (":G.obj.x", PRINTER), ("parent is no group", ":G.obj")),
            (ns.register, (":G.bad", "not a uri"), ("invalid URI", ":G.bad")),
            (ns.register, (":G.bad", "PYRO://"), ("invalid URI", ":G.bad")),
            # resolve
            (ns.resolve, (":G.missing",), ("name not found", ":G.missing")),
            (ns.resolve, (":G",), ("attempt to resolve groupname", ":G")),
            (ns.resolve, (":G.obj.x",), ("group not found", ":G.obj.x")),
            # unregister
            (ns.unregister, (":G.missing",), ("name not found", ":G.missing")),
            (ns.unregister, (":G",), ("is a group, not an object", ":G")),
            # createGroup
            (ns.createGroup, (":G",), ("group already exists", ":G")),
            (ns.createGroup, (":Nope.g",), ("(parent)group not found", ":Nope")),
            (ns.createGroup, (":G.obj.g",), ("parent is no group", ":G.obj")),
            # deleteGroup
            (ns.deleteGroup, (":",), ("not allowed to delete root group", ":")),
            (ns.deleteGroup, (":Nope",), ("group not found", ":Nope")),
            (ns.deleteGroup, (":G.obj",), ("is no group", ":G.obj")),
            # list / meta
            (ns.list, (":Nope",), ("group not found", ":Nope")),
            (ns.list, (":G.obj",), ("is no group", ":G.obj")),
            (ns.getMeta, (":G.missing",), ("name not found", ":G.missing")),
            (ns.setMeta, (":G.missing", 1), ("name not found", ":G.missing")),
            (ns.getSystemMeta, (":G.missing",), ("name not found", ":G.missing")),
            # invalid names checked by the node itself (the raw proxy does not expand)
            (lambda n: raw.call("register", n, PRINTER), (":a..b",), ("invalid name", ":a..b")),
            (lambda n: raw.call("resolve", n), (":a.",), ("invalid name", ":a.")),
            (lambda n: raw.call("createGroup", n), (":a\\b",), ("", ":a\\b")),
            # ... and by the client proxy, with the same wording
            (ns.resolve, (":a..b",), ("invalid name", ":a..b")),
        ]
        for call, args, (message, name) in cases:
            got_message, got_name = _naming_error(call, *args)
            assert got_name == name, (args, got_message, got_name)
            if message:
                assert got_message == message, (args, got_message, got_name)
            else:
                assert got_message.startswith("invalid"), (args, got_message)
        # A refused call leaves the namespace as it was.
        assert ns.list(":G") == [("obj", 1)]
        assert ns.resolve(":G.obj") == URI.from_string(PRINTER)
        # Unknown methods and wrong argument counts are errors, never a crashed node.
        with pytest.raises(pairns.PairnsError):
            raw.call("no_such_method")
        with pytest.raises(pairns.PairnsError):
            raw.call("resolve", ":G.obj", "extra", "args")
        with pytest.raises(pairns.PairnsError):
            raw.call("_abs", ":G")
        assert ns.ping() is True


async def test_async_proxy_200_concurrent_resolves_on_one_connection(node: NodeProcess) -> None:
    count = 200
    with trio.fail_after(60):
        ns = await pairns.NameServerLocator().async_getNS(HOST, node.port, timeout=20)
        async with ns:
            await ns.createGroup(":Async")
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(ns.register, f":Async.n{i}", f"PYRO://h{i}:{1000 + i}/o{i}")
            results: dict[int, URI] = {}

            async def resolve(i: int) -> None:
                results[i] = await ns.resolve(f":Async.n{i}")

            started = time.monotonic()
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(resolve, i)
            elapsed = time.monotonic() - started
            # All of it went over one connection: the node has exactly one client.
            assert _established_to(node.port) in (None, 1)
            assert results == {
                i: URI.from_string(f"PYRO://h{i}:{1000 + i}/o{i}") for i in range(count)
            }
            print(f"200 concurrent async resolves: {elapsed * 1000:.1f} ms")
            assert len(await ns.list(":Async")) == count
            with pytest.raises(NamingError) as info:
                await ns.resolve(":Async.missing")
            assert (info.value.message, info.value.name) == ("name not found", ":Async.missing")


def test_blocking_proxy_shared_by_8_threads(node: NodeProcess) -> None:
    per_thread = 60
    errors: list[BaseException] = []
    with _ns(node) as ns:
        ns.createGroup(":Shared")
        barrier = threading.Barrier(8, timeout=20)

        def work(t: int) -> None:
            try:
                barrier.wait()
                for i in range(per_thread):
                    uri = f"PYRO://t{t}:{2000 + i}/obj{i}"
                    ns.register(f":Shared.t{t}_{i}", uri)
                    assert ns.resolve(f":Shared.t{t}_{i}") == URI.from_string(uri)
                    assert ns.getMeta(f":Shared.t{t}_{i}") is None
                    ns.setMeta(f":Shared.t{t}_{i}", {"t": t, "i": i})
                    assert ns.getMeta(f":Shared.t{t}_{i}") == {"t": t, "i": i}
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert len(ns.list(":Shared")) == 8 * per_thread


def test_proxy_reconnects_to_a_node_restarted_on_the_same_port(start_node: Any) -> None:
    first = start_node()
    port = first.port
    with _ns(first) as ns:
        ns.register("before", PRINTER)
        assert first.terminate() == 0
        # The node is gone: a call fails, and the proxy does not hang.
        with pytest.raises(pairns.ConnectionClosedError):
            ns.ping()
        second = start_node(port=port)
        assert second.port == port
        # Next use reconnects; the in-memory namespace started afresh.
        assert ns.ping() is True
        assert ns.resolve(":Pyro.NameServer") == URI.from_string(
            f"PYRO://{HOST}:{port}/Pyro.NameServer"
        )
        assert _naming_error(ns.resolve, "before") == ("name not found", ":Default.before")
        # A restart *while the proxy is idle and connected* is also survived.
        assert second.terminate() == 0
        start_node(port=port)
        assert ns.ping() is True


def test_pyroloc_and_pyroname_resolution(node: NodeProcess) -> None:
    own = URI.from_string(f"PYRO://{HOST}:{node.port}/Pyro.NameServer")
    assert pairns.resolve_uri(f"PYROLOC://{HOST}:{node.port}/:Pyro.NameServer") == own
    assert pairns.resolve_uri(f"PYRONAME://{HOST}:{node.port}/:Pyro.NameServer") == own
    with _ns(node) as ns:
        ns.register(":Default.printer", PRINTER)
    assert pairns.resolve_uri(f"PYRONAME://{HOST}:{node.port}/printer") == URI.from_string(PRINTER)
    assert pairns.resolve_uri(PRINTER) == URI.from_string(PRINTER)
    with pytest.raises(NamingError) as info:
        pairns.resolve_uri(f"PYRONAME://{HOST}:{node.port}/:Default.missing")
    assert info.value.name == ":Default.missing"
    with pytest.raises(pairns.PairnsError):
        pairns.resolve_uri(f"PYROLOC://{HOST}:{node.port}/:No.Such.Object")
    with pytest.raises(pairns.URIError):
        pairns.resolve_uri("PYROLOC://")
    # A proxy for the object behind a PYRONAME URI.
    with pairns.getProxyForURI(f"PYRONAME://{HOST}:{node.port}/:Pyro.NameServer") as proxy:
        assert proxy.call("ping") is True


async def test_async_pyroloc_and_pyroname_resolution(node: NodeProcess) -> None:
    own = URI.from_string(f"PYRO://{HOST}:{node.port}/Pyro.NameServer")
    with trio.fail_after(20):
        loc = await pairns.async_resolve_uri(f"PYROLOC://{HOST}:{node.port}/:Pyro.NameServer")
        name = await pairns.async_resolve_uri(f"PYRONAME://{HOST}:{node.port}/:Pyro.NameServer")
    assert loc == own
    assert name == own


def test_name_server_starter_in_process(tmp_path: Any) -> None:
    starter = pairns.NameServerStarter(host=HOST, port=0, storage=str(tmp_path))
    starter.start()
    try:
        assert starter.waitUntilStarted(timeout=20) is True
        assert starter.uri is not None
        host, port = starter.uri.address
        assert host == HOST and port > 0
        assert (tmp_path / "Pyro_NS_URI").read_text().strip() == str(starter.uri)
        with pairns.NameServerLocator().getNS(HOST, port, timeout=10) as ns:
            ns.register("in_process", PRINTER)
            assert ns.resolve("in_process") == URI.from_string(PRINTER)
            # A second starter on the same port fails, and says so.
            clash = pairns.NameServerStarter(host=HOST, port=port, storage=str(tmp_path))
            clash.start()
            assert clash.waitUntilStarted(timeout=20) is False
            assert clash.error is not None
            clash.shutdown(timeout=10)
    finally:
        starter.shutdown(timeout=10)
    assert starter._thread is not None and not starter._thread.is_alive()
    with pytest.raises(pairns.ConnectionClosedError):
        pairns.NameServerLocator().getNS(HOST, port, timeout=5)
