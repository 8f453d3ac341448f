"""A served object with every kind of method, and helpers to start daemons in tests."""

from __future__ import annotations

from typing import Any

import trio

from pairns.errors import NamingError
from pairns.rpc import Daemon, DaemonLimits, current_request_id
from pairns.wire.frames import FrameDecoder, encode_frame, encode_json

KEY = "correct horse battery staple"


class Service:
    """Public methods of every kind, plus things that must not be callable."""

    attribute = 5

    def __init__(self) -> None:
        self.recorded: list[Any] = []
        self.property_reads = 0
        self.cancelled = trio.Event()

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    def add(self, a: int, b: int) -> int:
        return a + b

    def fail_naming(self, name: str) -> None:
        raise NamingError("name not found", name)

    def fail_value(self) -> None:
        raise ValueError("bad value")

    def fail_type_inside(self) -> None:
        raise TypeError("raised inside the method")

    def unencodable(self) -> Any:
        return {1, 2}

    def fail_unencodable(self) -> None:
        raise NamingError(123)  # type: ignore[arg-type]  # a message that is not text

    def fail_surrogate(self) -> None:
        raise ValueError("lone \ud800 surrogate")

    def big(self, size: int) -> str:
        return "x" * size

    def request_id(self) -> str | None:
        return current_request_id.get()

    def record(self, value: Any) -> None:
        self.recorded.append(value)

    def record_fail(self) -> None:
        raise RuntimeError("oneway failure")

    async def slow(self, seconds: float, value: Any = None) -> Any:
        await trio.sleep(seconds)
        return value

    async def async_request_id(self) -> str | None:
        await trio.sleep(0)
        return current_request_id.get()

    async def async_fail(self, name: str) -> None:
        await trio.sleep(0)
        raise NamingError("name not found", name)

    async def arecord(self, value: Any) -> None:
        await trio.sleep(0.01)
        self.recorded.append(value)

    async def until_cancelled(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.cancelled.set()

    def _private(self) -> str:
        return "secret"

    @property
    def prop(self) -> int:
        self.property_reads += 1
        return 1


async def start(
    nursery: trio.Nursery,
    *,
    identification: str | None = None,
    service: Service | None = None,
    **limits: Any,
) -> tuple[Daemon, Service, str, int]:
    """A daemon serving a Service as "svc" (name "svc-name") on 127.0.0.1, port 0."""
    daemon = Daemon(identification=identification, limits=DaemonLimits(**limits))
    service = service or Service()
    daemon.register(service, "svc", name="svc-name")
    host, port = await nursery.start(daemon.serve)
    return daemon, service, host, port


def frame(msg_type: int, value: Any, corr_id: int = 0) -> bytes:
    """A frame built by hand."""
    return encode_frame(int(msg_type), corr_id, encode_json(value))


async def read_frames(stream: trio.abc.ReceiveStream, limit: float = 5.0) -> list[tuple[int, Any]]:
    """Every frame the server sends until it closes the connection (within *limit* s)."""
    data = bytearray()
    with trio.fail_after(limit):
        while chunk := await stream.receive_some(65536):
            data += chunk
    decoder = FrameDecoder()
    decoder.feed(bytes(data))
    out = []
    while (f := decoder.next_frame(1 << 20)) is not None:
        out.append((f[0], f[2]))
    return out
