"""The admin identification: refused without, accepted with, a replay refused (issue 22).

Nodes run in-process on 127.0.0.1 (``open_node``, port 0).
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import trio

from pairns.config import Config
from pairns.errors import ConnectionDeniedError, NamingError
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming.proxy import AsyncNameServerProxy
from pairns.node import open_node
from pairns.rpc.aproxy import AsyncProxy
from pairns.security.admin import MAX_OUTSTANDING, AdminGate, AdminRefused, admin_proof

HOST = "127.0.0.1"
ADMIN = "adm1n-s3cret"
ENTRIES = [{"name": ":Loaded", "kind": "group"}, {"name": ":Loaded.x", "kind": "object",
           "uri": "PYRO://h:1/x", "meta": {"a": 1}}]


def config(**kw: Any) -> Config:
    return attrs.evolve(
        Config(host=HOST, port=0, responder=False, storage="."), **kw
    )


# -- the gate alone (no IO) -------------------------------------------------------------


def test_gate_accepts_a_fresh_proof_once() -> None:
    gate = AdminGate(b"k")
    conn: dict[str, Any] = {}
    nonce = gate.challenge(conn)
    proof = {"nonce": nonce, "proof": admin_proof(b"k", nonce, "resync")}
    gate.check(conn, "resync", proof)
    with pytest.raises(AdminRefused, match="unknown or used"):
        gate.check(conn, "resync", proof)  # replayed on the same connection
    with pytest.raises(AdminRefused, match="unknown or used"):
        gate.check({}, "resync", proof)  # replayed on another connection
    assert gate.refused == 2


@pytest.mark.parametrize(
    "admin",
    [None, "x", {"nonce": 1, "proof": "p"}, {"proof": "p"}, [1, 2]],
)
def test_gate_refuses_what_is_not_a_proof(admin: Any) -> None:
    gate = AdminGate(b"k")
    conn: dict[str, Any] = {}
    gate.challenge(conn)
    with pytest.raises(AdminRefused):
        gate.check(conn, "shutdown", admin)


def test_a_proof_is_for_one_method_and_one_key() -> None:
    gate = AdminGate(b"k")
    conn: dict[str, Any] = {}
    nonce = gate.challenge(conn)
    with pytest.raises(AdminRefused, match="incorrect"):
        gate.check(conn, "shutdown", {"nonce": nonce, "proof": admin_proof(b"k", nonce, "load")})
    nonce = gate.challenge(conn)
    with pytest.raises(AdminRefused, match="incorrect"):
        gate.check(conn, "load", {"nonce": nonce, "proof": admin_proof(b"K", nonce, "load")})


def test_a_connection_keeps_a_bounded_number_of_nonces() -> None:
    gate = AdminGate(b"k")
    conn: dict[str, Any] = {}
    first = gate.challenge(conn)
    for _ in range(MAX_OUTSTANDING):
        gate.challenge(conn)
    with pytest.raises(AdminRefused, match="unknown or used"):
        gate.check(conn, "load", {"nonce": first, "proof": admin_proof(b"k", first, "load")})


def test_without_a_key_no_proof_is_asked() -> None:
    AdminGate(None).check(None, "shutdown", None)


# -- on a node --------------------------------------------------------------------------


async def test_admin_calls_are_refused_without_the_admin_identification() -> None:
    async with open_node(config(admin_identification=ADMIN)) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port) as plain:
            for call in (plain.resync(), plain.shutdown(), plain.load(ENTRIES)):
                with pytest.raises(ConnectionDeniedError, match="admin identification required"):
                    await call
            assert await plain.resolve(":Pyro.NameServer")  # other calls are untouched
        async with AsyncNameServerProxy(host, port, admin_identification="wrong") as wrong:
            with pytest.raises(ConnectionDeniedError, match="incorrect admin identification"):
                await wrong.load(ENTRIES)
        status = node.service.status()
        assert status["admin_refusals"] == 4
        assert status["admin_identification_required"] is True
        with pytest.raises(NamingError):
            node.namespace.resolve(":Loaded.x")


async def test_admin_calls_are_accepted_with_it() -> None:
    async with open_node(config(admin_identification=ADMIN)) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port, admin_identification=ADMIN) as admin:
            assert await admin.load(ENTRIES) == {"loaded": [":Loaded", ":Loaded.x"], "existed": []}
            assert await admin.load(ENTRIES) == {"loaded": [], "existed": [":Loaded", ":Loaded.x"]}
            assert await admin.getMeta(":Loaded.x") == {"a": 1}
            with pytest.raises(NamingError, match="not paired"):
                await admin.resync()  # authorised; a single node has nothing to resync
            assert await admin.shutdown() is True
        with trio.fail_after(5):
            await node.wait_stopped()
        assert node.service.admin_refusals == 0


async def test_a_replayed_admin_call_is_refused() -> None:
    """A recorded admin call (its ``admin`` argument) is worthless: on the connection it
    was made on its nonce is used up, on any other it was never issued."""
    async with open_node(config(admin_identification=ADMIN)) as node:
        host, port = node.address
        key = ADMIN.encode()
        async with AsyncProxy.for_address(host, port, NAMESERVER_OBJECT_ID) as first:
            nonce = await first.call("adminChallenge")
            recorded = {"nonce": nonce, "proof": admin_proof(key, nonce, "load")}
            assert (await first.call("load", ENTRIES, admin=recorded))["loaded"]
            with pytest.raises(ConnectionDeniedError, match="unknown or used"):
                await first.call("load", ENTRIES, admin=recorded)
            with pytest.raises(ConnectionDeniedError):  # another method, same proof
                nonce2 = await first.call("adminChallenge")
                await first.call(
                    "shutdown", admin={"nonce": nonce2, "proof": admin_proof(key, nonce2, "load")}
                )
        async with AsyncProxy.for_address(host, port, NAMESERVER_OBJECT_ID) as second:
            await second.call("adminChallenge")  # a nonce of its own does not help
            with pytest.raises(ConnectionDeniedError, match="unknown or used"):
                await second.call("load", ENTRIES, admin=recorded)
        assert node.service.admin_refusals == 3


async def test_the_secret_never_travels() -> None:
    """What a client sends for an admin call holds the proof, never the secret."""
    key = ADMIN.encode()
    nonce = "ab" * 32
    wire = json.dumps({"nonce": nonce, "proof": admin_proof(key, nonce, "resync")})
    assert ADMIN not in wire


async def test_shutdown_stays_refused_with_k_even_for_the_admin() -> None:
    async with open_node(config(admin_identification=ADMIN, allow_shutdown=False)) as node:
        host, port = node.address
        async with AsyncNameServerProxy(host, port, admin_identification=ADMIN) as admin:
            with pytest.raises(NamingError, match="-k"):
                await admin.shutdown()
            assert await admin.ping()
