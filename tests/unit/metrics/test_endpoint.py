"""The metrics endpoint: the request reader (no IO) and the Trio server."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pairns.metrics import endpoint
from pairns.metrics.endpoint import MetricsEndpoint, head_complete, respond


def render() -> bytes:
    return b"pairns_entries 3.0\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", 200),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
        (b"garbage\r\n\r\n", 400),
        (b"GET /metrics SMTP\r\n\r\n", 400),
    ],
)
def test_responses(head: bytes, status: int) -> None:
    response = respond(head, render)
    assert response.status == status
    data = response.to_bytes()
    assert data.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close\r\n" in data
    if status == 200 and head.startswith(b"GET"):
        assert data.endswith(b"\r\n\r\npairns_entries 3.0\n")
        assert b"Content-Type: text/plain; version=0.0.4" in data
    if head.startswith(b"HEAD"):
        assert data.endswith(b"\r\n\r\n")
        assert b"Content-Length: 19\r\n" in data


def test_a_head_is_complete_at_its_empty_line() -> None:
    assert not head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    assert head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head_complete(b"GET /metrics HTTP/1.0\n\n")


async def _get(address: tuple[str, int], request: bytes) -> bytes:
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def test_the_server_answers_and_survives_slow_and_silent_clients(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = MetricsEndpoint(("127.0.0.1", 0), render)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        assert server.address == address
        # A client that never sends its request is dropped after the read timeout.
        silent = await trio.open_tcp_stream(*address)
        # One that sends a head longer than allowed gets nothing.
        huge = await trio.open_tcp_stream(*address)
        await huge.send_all(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * endpoint.MAX_HEAD)
        answer = await _get(address, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert answer.endswith(b"pairns_entries 3.0\n")
        assert await huge.receive_some(100) == b""
        await trio.sleep(endpoint.READ_TIMEOUT + 1)
        assert await silent.receive_some(100) == b""
        await silent.aclose()
        await huge.aclose()
        nursery.cancel_scope.cancel()


async def test_scrapes_over_the_limit_are_closed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = MetricsEndpoint(("127.0.0.1", 0), render)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        held = [await trio.open_tcp_stream(*address) for _ in range(endpoint.MAX_SCRAPES)]
        await trio.sleep(0.1)
        assert await _get(address, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
        for stream in held:
            await stream.aclose()
        await trio.sleep(0.1)
        answer = await _get(address, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK")
        nursery.cancel_scope.cancel()
