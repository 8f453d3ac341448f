"""The identification handshake, driven with bytes through a ConnectionPair."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pairns.errors import LocalProtocolError, RemoteProtocolError
from pairns.wire import (
    CLIENT,
    NEED_DATA,
    PAUSED,
    SERVER,
    Challenge,
    Connection,
    ConnectionClosed,
    Denied,
    ErrorCode,
    Reply,
    Request,
    Response,
    State,
    Welcome,
)
from pairns.wire.frames import MessageType
from pairns.wire.handshake import client_proof, server_proof
from pairns.wire.limits import (
    DEFAULT_CLIENT_MAX_FRAME_SIZE,
    MAX_HANDSHAKE_FRAME_SIZE,
    NONCE_SIZE,
    PIPELINED_REQUESTS,
)

from .helpers import KEY, ConnectionPair, counter_randomness, events, raw_frame


def test_proofs_are_hmac_sha256_over_labelled_nonces() -> None:
    ns, nc = b"s" * 32, b"c" * 32
    assert (
        client_proof(KEY, ns, nc)
        == hmac.new(KEY, b"pairns-client" + ns + nc, hashlib.sha256).digest()
    )
    assert (
        server_proof(KEY, nc, ns)
        == hmac.new(KEY, b"pairns-server" + nc + ns, hashlib.sha256).digest()
    )
    assert client_proof(KEY, ns, nc) != server_proof(KEY, nc, ns)


def test_mutual_identification_succeeds() -> None:
    pair = ConnectionPair(client_key=KEY, server_key=KEY)
    verdict = pair.handshake()
    assert type(verdict) is Welcome
    assert pair.client.state is State.OPEN and pair.server.state is State.OPEN
    assert pair.client.peer_authenticated is True
    assert pair.server.peer_authenticated is True
    assert pair.client.server_name == "pairns"


def test_the_passphrase_never_travels() -> None:
    pair = ConnectionPair(client_key=KEY, server_key=KEY)
    pair.handshake()
    wire = b"".join(pair.wire_bytes())
    assert KEY not in wire
    assert KEY.hex().encode() not in wire


def test_no_identification_anywhere() -> None:
    pair = ConnectionPair()
    assert type(pair.handshake()) is Welcome
    assert pair.client.peer_authenticated is False
    assert pair.server.peer_authenticated is False


def test_wrong_identification_is_denied() -> None:
    pair = ConnectionPair(client_key=b"wrong", server_key=KEY)
    verdict = pair.handshake()
    assert verdict == Denied("incorrect identification")
    assert pair.client.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    assert pair.client.next_event() == ConnectionClosed()


def test_missing_identification_is_denied() -> None:
    pair = ConnectionPair(server_key=KEY)
    assert pair.handshake() == Denied("identification required")


def test_client_with_identification_accepts_a_server_without_but_knows_it() -> None:
    pair = ConnectionPair(client_key=KEY)
    (challenge,) = pair.send(SERVER, pair.server.challenge())
    assert challenge.auth_required is False
    response = pair.client.response()
    assert response.mac is None  # no proof offered to a server that asks none
    pair.send(CLIENT, response)
    assert type(pair.send(SERVER, pair.server.verdict())[0]) is Welcome
    assert pair.client.peer_authenticated is False


def test_client_checks_the_servers_proof() -> None:
    pair = ConnectionPair(client_key=KEY, server_key=KEY)
    pair.send(SERVER, pair.server.challenge())
    pair.send(CLIENT, pair.client.response())
    # A server that does not know the key can only guess the proof.
    forged = raw_frame(
        MessageType.WELCOME, {"mac": "00" * 32, "max_frame_size": 4096, "max_in_flight": 8}
    )
    pair.client.receive_data(forged)
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.error_code_hint == ErrorCode.IDENTIFICATION_FAILED
    assert pair.client.state is State.ERROR


def test_client_refuses_a_welcome_without_proof_when_auth_was_required() -> None:
    pair = ConnectionPair(client_key=KEY, server_key=KEY)
    pair.send(SERVER, pair.server.challenge())
    pair.send(CLIENT, pair.client.response())
    pair.client.receive_data(
        raw_frame(MessageType.WELCOME, {"mac": None, "max_frame_size": 4096, "max_in_flight": 8})
    )
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.error_code_hint == ErrorCode.IDENTIFICATION_FAILED


def test_a_recorded_response_does_not_work_on_another_connection() -> None:
    first = ConnectionPair(client_key=KEY, server_key=KEY)
    first.send(SERVER, first.server.challenge())
    recorded = first.client.response()
    second = Connection(SERVER, identification=KEY, randomness=counter_randomness(99))
    second.send(second.challenge())
    # Replay the recorded response bytes against a fresh challenge.
    replay = raw_frame(
        MessageType.RESPONSE,
        {
            "nonce": recorded.nonce.hex(),
            "mac": recorded.mac.hex() if recorded.mac else None,
            "max_frame_size": recorded.max_frame_size,
        },
    )
    second.receive_data(replay)
    assert type(second.next_event()) is Response
    assert second.verdict() == Denied("incorrect identification")


def test_server_will_not_send_a_welcome_to_an_unverified_client() -> None:
    pair = ConnectionPair(client_key=b"wrong", server_key=KEY)
    pair.send(SERVER, pair.server.challenge())
    pair.send(CLIENT, pair.client.response())
    with pytest.raises(LocalProtocolError):
        pair.server.send(Welcome(b"\0" * 32, 4096, 1))
    assert pair.server.state is State.ERROR


def test_server_will_not_send_a_foreign_challenge() -> None:
    server = Connection(SERVER, identification=KEY)
    with pytest.raises(LocalProtocolError):
        server.send(Challenge(b"x" * NONCE_SIZE, True))


def test_handshake_helpers_belong_to_their_roles() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(CLIENT).challenge()
    with pytest.raises(LocalProtocolError):
        Connection(SERVER).response()
    with pytest.raises(LocalProtocolError):
        Connection(CLIENT).verdict()
    with pytest.raises(LocalProtocolError):
        Connection(CLIENT).response()  # no challenge received yet
    with pytest.raises(LocalProtocolError):
        Connection(SERVER).verdict()  # no response received yet
    server = Connection(SERVER)
    server.challenge()
    with pytest.raises(LocalProtocolError):
        server.challenge()  # one nonce per connection


def test_randomness_must_give_a_full_nonce() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(SERVER, randomness=lambda n: b"short").challenge()


def test_paused_until_it_is_our_turn() -> None:
    pair = ConnectionPair()
    assert pair.server.next_event() is PAUSED  # must send the challenge first
    assert pair.client.next_event() is NEED_DATA
    pair.send(SERVER, pair.server.challenge())
    assert pair.client.next_event() is PAUSED  # must answer first


def test_pipelined_request_waits_behind_the_verdict_then_is_read() -> None:
    pair = ConnectionPair(client_key=KEY, server_key=KEY)
    pair.send(SERVER, pair.server.challenge())
    got = pair.send(CLIENT, pair.client.response(), Request(1, "obj", "m", [1]))
    assert [type(e) for e in got] == [Response]  # the request stays buffered
    assert pair.server.next_event() is PAUSED
    pair.send(SERVER, pair.server.verdict())
    assert events(pair.server) == [Request(1, "obj", "m", [1])]
    assert pair.send(SERVER, Reply(1, "ok")) == [Reply(1, "ok")]


def test_only_one_request_may_be_pipelined_before_the_welcome() -> None:
    assert PIPELINED_REQUESTS == 1
    pair = ConnectionPair()
    pair.send(SERVER, pair.server.challenge())
    pair.send(CLIENT, pair.client.response(), Request(1, "o", "m"))
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send(Request(2, "o", "m"))
    assert info.value.error_code_hint == ErrorCode.TOO_MANY_IN_FLIGHT


def test_denied_client_drops_its_pipelined_request() -> None:
    pair = ConnectionPair(client_key=b"wrong", server_key=KEY)
    pair.send(SERVER, pair.server.challenge())
    pair.send(CLIENT, pair.client.response(), Request(1, "o", "m"))
    got = pair.send(SERVER, pair.server.verdict())
    assert got == [Denied("incorrect identification"), ConnectionClosed()]
    assert pair.server.next_event() == ConnectionClosed()


def test_welcome_tells_the_client_the_servers_limits() -> None:
    pair = ConnectionPair(server_kwargs={"max_frame_size": 8192, "max_in_flight": 3})
    pair.handshake()
    assert pair.client.peer_max_in_flight == 3
    assert pair.client.peer_max_frame_size == 8192
    # ...and the client's Response tells the server the largest reply it accepts.
    assert pair.server.peer_max_frame_size == DEFAULT_CLIENT_MAX_FRAME_SIZE


def test_handshake_frames_are_limited_before_authentication() -> None:
    server = Connection(SERVER, identification=KEY)
    server.send(server.challenge())
    big = {"nonce": "00" * 32, "mac": None, "max_frame_size": 4096, "pad": "x" * 5000}
    server.receive_data(raw_frame(MessageType.RESPONSE, big))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.error_code_hint == ErrorCode.FRAME_TOO_LARGE
    assert MAX_HANDSHAKE_FRAME_SIZE < 5000


def test_a_request_before_the_handshake_is_unexpected() -> None:
    server = Connection(SERVER)
    server.send(server.challenge())
    server.receive_data(raw_frame(MessageType.REQUEST, ["o", "m", [], None, None], 1))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.error_code_hint == ErrorCode.UNEXPECTED_MESSAGE
