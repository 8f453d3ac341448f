"""Helpers for driving wire connections with bytes only (h11's ConnectionPair idea)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from pairns.wire import CLIENT, NEED_DATA, PAUSED, SERVER, Connection, Event
from pairns.wire.frames import encode_frame, encode_json

KEY = b"correct horse battery staple"


def counter_randomness(seed: int) -> Callable[[int], bytes]:
    """Deterministic 'random' bytes: different for every call, same for every run."""
    counter = itertools.count()

    def randomness(n: int) -> bytes:
        i = next(counter)
        return bytes((seed * 31 + i * 7 + k) % 256 for k in range(n))

    return randomness


def events(conn: Connection) -> list[Any]:
    """Every event available now (stops at NEED_DATA or PAUSED, which are not included)."""
    out: list[Any] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return out
        out.append(event)
        if type(event).__name__ == "ConnectionClosed":
            return out


def raw_frame(msg_type: int, value: Any, corr_id: int = 0, checksum: bool = False) -> bytes:
    """A frame built by hand (bypassing every check of Connection.send)."""
    return encode_frame(msg_type, corr_id, encode_json(value), checksum)


class ConnectionPair:
    """A client and a server Connection joined by a fake wire (no sockets).

    ``pair.send(role, event)`` sends an event from one side and delivers the bytes to
    the other; ``pair.handshake()`` runs the identification handshake.
    """

    def __init__(
        self,
        *,
        client_key: bytes | None = None,
        server_key: bytes | None = None,
        client_kwargs: dict[str, Any] | None = None,
        server_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.client = Connection(
            CLIENT,
            identification=client_key,
            randomness=counter_randomness(1),
            **(client_kwargs or {}),
        )
        self.server = Connection(
            SERVER,
            identification=server_key,
            randomness=counter_randomness(2),
            **(server_kwargs or {}),
        )
        #: Every chunk of bytes that crossed the wire, as (sender role, bytes).
        self.wire: list[tuple[Any, bytes]] = []

    def conn(self, role: Any) -> Connection:
        return self.client if role is CLIENT else self.server

    def other(self, role: Any) -> Connection:
        return self.server if role is CLIENT else self.client

    def send(self, role: Any, *evs: Event) -> list[Any]:
        """Send events from *role*; return the events the other side then produces."""
        data = b"".join(self.conn(role).send(e) for e in evs)
        self.wire.append((role, data))
        other = self.other(role)
        other.receive_data(data)
        return events(other)

    def handshake(self) -> Any:
        """Challenge, Response, verdict; returns the verdict event the client got."""
        (_challenge,) = self.send(SERVER, self.server.challenge())
        (_response,) = self.send(CLIENT, self.client.response())
        # After a Denied the client also reports ConnectionClosed.
        return self.send(SERVER, self.server.verdict())[0]

    def wire_bytes(self) -> Iterator[bytes]:
        return (data for _, data in self.wire)
