"""The HTTP endpoint that serves ``/metrics``: a small sans-IO request reader and a Trio
server around it.

Only what a Prometheus scraper needs: ``GET`` (or ``HEAD``) ``/metrics``, one request
per connection, answered and closed. A request head longer than
:data:`MAX_HEAD` bytes, or one not complete within :data:`READ_TIMEOUT` seconds, gets
no answer; at most :data:`MAX_SCRAPES` connections are served at once (more are closed
at once), so a slow or hostile client cannot hold the node's resources.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import attrs
import trio

log = logging.getLogger("pairns.metrics")

#: Longest request head read (request line and headers).
MAX_HEAD: Final = 8192
#: Seconds a client has to send its request head.
READ_TIMEOUT: Final = 5.0
#: Seconds a client has to take the answer.
WRITE_TIMEOUT: Final = 10.0
#: Connections served at once.
MAX_SCRAPES: Final = 8
#: The content type of the Prometheus text format.
TEXT_FORMAT: Final = "text/plain; version=0.0.4; charset=utf-8"


@attrs.frozen
class Response:
    """What to send back: a status line's code and reason, a content type, a body."""

    status: int
    reason: str
    content_type: str
    body: bytes
    #: HEAD: the headers only.
    head_only: bool = False

    def to_bytes(self) -> bytes:
        """The whole HTTP/1.1 response (the connection closes after it)."""
        head = (
            f"HTTP/1.1 {self.status} {self.reason}\r\n"
            f"Content-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")
        return head if self.head_only else head + self.body


def _text(status: int, reason: str, text: str) -> Response:
    return Response(status, reason, "text/plain; charset=utf-8", text.encode())


def head_complete(data: bytes) -> bool:
    """Whether *data* holds a whole request head (it ends with an empty line)."""
    return b"\r\n\r\n" in data or b"\n\n" in data


def respond(head: bytes, render: Callable[[], bytes]) -> Response:
    """The response to the request whose head is *head*; *render* makes the metrics."""
    line = head.split(b"\n", 1)[0].strip()
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _text(400, "Bad Request", "not an HTTP request\n")
    method, target = parts[0], parts[1]
    if method not in (b"GET", b"HEAD"):
        return _text(405, "Method Not Allowed", "only GET and HEAD\n")
    path = target.split(b"?", 1)[0]
    if path not in (b"/metrics", b"/metrics/"):
        return _text(404, "Not Found", "the metrics are at /metrics\n")
    return Response(200, "OK", TEXT_FORMAT, render(), head_only=method == b"HEAD")


@attrs.define(eq=False)
class MetricsEndpoint:
    """Serves ``render()`` at ``http://host:port/metrics`` (*bind*; port 0: any free)."""

    bind: tuple[str, int]
    render: Callable[[], bytes]
    #: ``(host, port)`` once listening.
    address: tuple[str, int] | None = None
    _slots: trio.Semaphore = attrs.field(init=False, factory=lambda: trio.Semaphore(MAX_SCRAPES))

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report ``(host, port)`` through *task_status*, serve until cancelled."""
        host, port = self.bind
        try:
            listeners = await trio.open_tcp_listeners(port, host=host or None)
        except OSError as exc:
            shown = f"[{host}]" if ":" in host else host
            raise OSError(
                exc.errno, f"cannot serve metrics on {shown}:{port}: {exc.strerror or exc}"
            ) from None
        bound = listeners[0].socket.getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        log.info("metrics: serving http://%s:%d/metrics", *self.address)
        task_status.started(self.address)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                return  # too many scrapes at once: close this one
            try:
                await self._answer(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                log.debug("metrics: a scrape failed: %s", exc)
            finally:
                self._slots.release()

    async def _answer(self, stream: trio.SocketStream) -> None:
        head = b""
        with trio.move_on_after(READ_TIMEOUT):
            while not head_complete(head) and len(head) <= MAX_HEAD:
                data = await stream.receive_some(MAX_HEAD)
                if not data:
                    return
                head += data
        if not head_complete(head) or len(head) > MAX_HEAD:
            return
        response = respond(head, self.render)
        with trio.move_on_after(WRITE_TIMEOUT):
            await stream.send_all(response.to_bytes())
