"""A fault-injecting TCP proxy for loopback tests.

The proxy sits between a client and a loopback target and forwards bytes both ways until a
test tells it to misbehave:

* ``partition()`` / ``heal()`` - a black hole. Connections stay open, but every byte read
  from either side is dropped (counted in ``bytes_dropped``, never buffered for later).
  Connections accepted while partitioned are *accepted and held*: no upstream connection
  is made until ``heal()``, and bytes the client sends meanwhile are dropped. An EOF (half
  close) is not a byte: one seen during a partition is held and passed on after the heal.
* ``cut()`` - close every current connection on both sides (FIN, or RST with
  ``reset=True``). New connections are unaffected.
* ``set_delay(seconds)`` - every chunk is forwarded ``seconds`` after it was read, order
  preserved.
* ``set_drop_rate(p, seed)`` - drop each chunk with probability ``p``. This corrupts the
  byte stream, which is the point: it is for chaos tests of framing and recovery.
* ``refuse(True)`` - accept new connections and close them at once.

In-process use (everything lives in the proxy's nursery; leaving the block cancels and
closes it all)::

    async with open_fault_proxy(server_address) as proxy:
        stream = await trio.open_tcp_stream(*proxy.address)
        proxy.partition()

Between real processes, run ``python -m pairns.testing.faultproxy --listen 127.0.0.1:0
--target 127.0.0.1:PORT --control 127.0.0.1:0``, or use the blocking
:class:`FaultProxyProcess` helper, which drives the control port's line protocol.

The proxy only listens on and connects to loopback addresses (127.0.0.0/8 and ::1): it is
a test tool and must not become a way to reach real networks.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import random
import selectors
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, Self

import attrs
import trio

__all__ = [
    "FaultProxy",
    "FaultProxyProcess",
    "FaultProxyStatistics",
    "check_loopback",
    "main",
    "open_fault_proxy",
]

log = logging.getLogger("pairns.testing.faultproxy")

Address = tuple[str, int]

#: Bytes asked of the kernel per read. A chunk is the unit that is delayed or dropped.
RECV_SIZE: Final = 65536

#: Chunks read but not yet written, per direction. Bounded so that a peer that stops
#: reading pushes back on the sender (as TCP would) instead of growing proxy memory; large
#: enough that a delay does not throttle a test's traffic.
MAX_CHUNKS_IN_FLIGHT: Final = 256

#: Longest control-protocol line; commands are a few words, so more is a broken client.
MAX_CONTROL_LINE: Final = 1024

#: How long FaultProxyProcess waits for the child's "listening" line. A cold interpreter
#: importing trio takes well under a second; this allows for a loaded CI machine.
DEFAULT_STARTUP_TIMEOUT: Final = 15.0

#: How long FaultProxyProcess waits for a control reply.
DEFAULT_CONTROL_TIMEOUT: Final = 5.0


# --------------------------------------------------------------------------- addresses


def check_loopback(address: Address, *, what: str = "address", allow_port_zero: bool) -> Address:
    """Return ``address`` if its host is a loopback IP literal, else raise ``ValueError``.

    Only IP literals in 127.0.0.0/8 and ``::1`` pass; host names (even ``localhost``) are
    rejected, since resolving them could lead off the machine.
    """
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"faultproxy {what} {host!r} is not an IP literal; use 127.0.0.1 or ::1"
        ) from None
    if not ip.is_loopback:
        raise ValueError(
            f"faultproxy {what} {host!r} is not a loopback address (127.0.0.0/8 or ::1); "
            "the fault proxy is a test tool and only works on loopback"
        )
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValueError(f"faultproxy {what} port must be an int, got {port!r}")
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"faultproxy {what} port {port} is out of range {low}..65535")
    return (str(ip), port)


def format_address(address: Address) -> str:
    """``HOST:PORT``, with IPv6 hosts in brackets (``[::1]:PORT``)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> Address:
    """Parse ``HOST:PORT`` or ``[V6HOST]:PORT`` (no loopback check: see check_loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host, int(port))


# --------------------------------------------------------------------------- values


@attrs.frozen
class FaultProxyStatistics:
    """Counters of one proxy since it started.

    ``bytes_to_target`` and ``bytes_to_client`` count bytes written onwards;
    ``bytes_dropped`` counts bytes read but discarded (partition or drop rate), both
    directions together. ``connections_accepted`` includes refused ones.
    """

    connections_accepted: int
    connections_refused: int
    connections_open: int
    bytes_to_target: int
    bytes_to_client: int
    bytes_dropped: int

    def to_json(self) -> str:
        """One-line JSON object, as the control port's ``stats`` command answers."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FaultProxyStatistics:
        """Parse what :meth:`to_json` produced; raise ``ValueError`` on anything else."""
        data = json.loads(text)
        names = [f.name for f in attrs.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise ValueError(f"not faultproxy statistics: {text!r}")
        values = [data[name] for name in names]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"not faultproxy statistics: {text!r}")
        return cls(*values)


@attrs.define(eq=False)
class _Link:
    """One proxied connection: the client stream and, once made, the upstream one."""

    client: trio.SocketStream
    upstream: trio.SocketStream | None = None
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    reset: bool = False


# --------------------------------------------------------------------------- the proxy


class FaultProxy:
    """A running proxy; obtain one from :func:`open_fault_proxy`.

    The fault controls are plain (non-async) methods and take effect at once for reads and
    writes that happen after the call.
    """

    def __init__(self, target: Address, address: Address) -> None:
        self._target = target
        self._address = address
        self._links: set[_Link] = set()
        self._partitioned = False
        self._healed = trio.Event()
        self._healed.set()
        self._refusing = False
        self._delay = 0.0
        self._drop_rate = 0.0
        self._random = random.Random()
        self._accepted = 0
        self._refused = 0
        self._to_target = 0
        self._to_client = 0
        self._dropped = 0

    @property
    def address(self) -> Address:
        """The (host, port) the proxy listens on; connect here instead of the target."""
        return self._address

    @property
    def target(self) -> Address:
        """The (host, port) the proxy forwards to."""
        return self._target

    def partition(self) -> None:
        """Black-hole all traffic: connections stay open, bytes read are dropped.

        New connections are accepted and held without an upstream connection until
        :meth:`heal`; bytes they send meanwhile are dropped.
        """
        if not self._partitioned:
            self._partitioned = True
            self._healed = trio.Event()

    def heal(self) -> None:
        """End a partition; bytes read from now on flow again (dropped ones are gone)."""
        if self._partitioned:
            self._partitioned = False
            self._healed.set()

    @property
    def partitioned(self) -> bool:
        """Whether a partition is in force."""
        return self._partitioned

    def cut(self, *, reset: bool = False) -> None:
        """Close every current connection on both sides.

        With ``reset=True`` the sockets are closed with SO_LINGER 0, so peers see a
        connection reset (RST) rather than an orderly EOF (FIN). Closing happens in the
        connection tasks, promptly after this returns; later connections are unaffected.
        """
        for link in self._links:
            link.reset = link.reset or reset
            link.cancel_scope.cancel()

    def set_delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read (0 for none); order is kept."""
        if math.isnan(seconds) or seconds < 0 or math.isinf(seconds):
            raise ValueError(f"delay must be a finite number >= 0, got {seconds!r}")
        self._delay = float(seconds)

    def set_drop_rate(self, probability: float, seed: int | None = None) -> None:
        """Drop each chunk with ``probability`` (0 to 1), from a generator seeded ``seed``.

        Dropping chunks breaks the byte stream; use it to test framing and recovery.
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"drop probability must be within 0..1, got {probability!r}")
        self._drop_rate = float(probability)
        self._random = random.Random(seed)

    def refuse(self, on: bool = True) -> None:
        """While on, accept new connections and close them at once (existing ones live)."""
        self._refusing = bool(on)

    def statistics(self) -> FaultProxyStatistics:
        """The counters so far, as a frozen value."""
        return FaultProxyStatistics(
            connections_accepted=self._accepted,
            connections_refused=self._refused,
            connections_open=len(self._links),
            bytes_to_target=self._to_target,
            bytes_to_client=self._to_client,
            bytes_dropped=self._dropped,
        )

    # ----------------------------------------------------------------- connection tasks

    async def _wait_healed(self) -> None:
        while self._partitioned:
            await self._healed.wait()

    async def _handle(self, client: trio.SocketStream) -> None:
        self._accepted += 1
        if self._refusing:
            self._refused += 1
            await trio.aclose_forcefully(client)
            return
        link = _Link(client)
        self._links.add(link)
        try:
            with link.cancel_scope:
                await self._run_link(link)
        except Exception as exc:
            # The connection's own boundary: a peer going away is routine; anything else
            # is logged, and only this connection is lost.
            if _is_io_failure(exc):
                log.debug("faultproxy connection ended: %r", exc)
            else:
                log.exception("faultproxy connection failed")
        finally:
            self._links.discard(link)
            for stream in (link.client, link.upstream):
                if stream is None:
                    continue
                if link.reset:
                    _set_linger_zero(stream)
                await trio.aclose_forcefully(stream)

    async def _run_link(self, link: _Link) -> None:
        to_target_tx, to_target_rx = trio.open_memory_channel[tuple[float, bytes]](
            MAX_CHUNKS_IN_FLIGHT
        )
        to_client_tx, to_client_rx = trio.open_memory_channel[tuple[float, bytes]](
            MAX_CHUNKS_IN_FLIGHT
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_side, link.client, to_target_tx)
            await self._wait_healed()
            upstream = await trio.open_tcp_stream(*self._target)
            link.upstream = upstream
            nursery.start_soon(self._write_side, upstream, to_target_rx, True)
            nursery.start_soon(self._read_side, upstream, to_client_tx)
            nursery.start_soon(self._write_side, link.client, to_client_rx, False)

    async def _read_side(
        self, stream: trio.SocketStream, tx: trio.MemorySendChannel[tuple[float, bytes]]
    ) -> None:
        async with tx:
            while True:
                chunk = await stream.receive_some(RECV_SIZE)
                if not chunk:
                    # b"" travels the channel as the EOF marker, behind the data.
                    await tx.send((trio.current_time() + self._delay, b""))
                    return
                if self._partitioned:
                    self._dropped += len(chunk)
                    continue
                await tx.send((trio.current_time() + self._delay, chunk))

    async def _write_side(
        self,
        stream: trio.SocketStream,
        rx: trio.MemoryReceiveChannel[tuple[float, bytes]],
        to_target: bool,
    ) -> None:
        async with rx:
            async for deadline, chunk in rx:
                await trio.sleep_until(deadline)
                if not chunk:
                    await self._wait_healed()
                    await stream.send_eof()
                    continue
                if self._partitioned or (
                    self._drop_rate and self._random.random() < self._drop_rate
                ):
                    self._dropped += len(chunk)
                    continue
                # Counted before the write, so that once a peer has the bytes the counters
                # already show them (a failed write ends the connection anyway).
                if to_target:
                    self._to_target += len(chunk)
                else:
                    self._to_client += len(chunk)
                await stream.send_all(chunk)


def _is_io_failure(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_io_failure(e) for e in exc.exceptions)
    return isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | OSError)


def _set_linger_zero(stream: trio.SocketStream) -> None:
    try:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, trio.ClosedResourceError):
        pass


@asynccontextmanager
async def open_fault_proxy(
    target: Address, *, listen: Address = ("127.0.0.1", 0)
) -> AsyncIterator[FaultProxy]:
    """Run a fault proxy from ``listen`` to ``target`` for the duration of the block.

    Both addresses must be loopback IP literals (``ValueError`` otherwise); ``listen``
    may use port 0 for a kernel-chosen port, read back from ``proxy.address``. The proxy
    is accepting when the block starts. Every task lives in the proxy's own nursery, so
    leaving the block cancels all of them and closes every connection.
    """
    target = check_loopback(target, what="target", allow_port_zero=False)
    listen = check_loopback(listen, what="listen address", allow_port_zero=True)
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(listen[1], host=listen[0])
        sockname = listeners[0].socket.getsockname()
        proxy = FaultProxy(target, (str(sockname[0]), int(sockname[1])))
        await nursery.start(trio.serve_listeners, proxy._handle, listeners)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- control port


class _Quit(Exception):
    """The control client asked the process to stop."""


def execute_command(proxy: FaultProxy, line: str) -> str:
    """Apply one control-protocol command to ``proxy`` and return the reply line.

    Replies are ``ok``, a JSON object (``stats``) or ``error <reason>``. ``quit`` raises
    an internal exception that the control server turns into ``ok`` and a shutdown.
    """
    words = line.split()
    match words:
        case ["partition"]:
            proxy.partition()
        case ["heal"]:
            proxy.heal()
        case ["cut"]:
            proxy.cut()
        case ["cut", "reset"]:
            proxy.cut(reset=True)
        case ["delay", seconds]:
            try:
                proxy.set_delay(float(seconds))
            except ValueError as exc:
                return f"error {exc}"
        case ["drop", rate, *rest] if len(rest) <= 1:
            try:
                seed = int(rest[0]) if rest else None
                proxy.set_drop_rate(float(rate), seed)
            except ValueError as exc:
                return f"error {exc}"
        case ["refuse", "on" | "off" as state]:
            proxy.refuse(state == "on")
        case ["stats"]:
            return proxy.statistics().to_json()
        case ["quit"]:
            raise _Quit
        case _:
            return f"error unknown command {line.strip()!r}"
    return "ok"


async def _serve_control_client(
    proxy: FaultProxy, stream: trio.SocketStream, quit_scope: trio.CancelScope
) -> None:
    buffer = bytearray()
    try:
        while True:
            while b"\n" not in buffer:
                if len(buffer) > MAX_CONTROL_LINE:
                    await stream.send_all(b"error line too long\n")
                    return
                data = await stream.receive_some(MAX_CONTROL_LINE)
                if not data:
                    return
                buffer += data
            raw, _, rest = bytes(buffer).partition(b"\n")
            buffer = bytearray(rest)
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                reply = execute_command(proxy, line)
            except _Quit:
                await stream.send_all(b"ok\n")
                quit_scope.cancel()
                return
            await stream.send_all(reply.encode() + b"\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("faultproxy control client went away: %r", exc)
    finally:
        await trio.aclose_forcefully(stream)


async def serve_fault_proxy(
    listen: Address,
    target: Address,
    control: Address,
    *,
    task_status: trio.TaskStatus[tuple[Address, Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a proxy and its control port until a ``quit`` command or cancellation.

    Calls ``task_status.started((proxy_address, control_address))`` once both listen.
    """
    control = check_loopback(control, what="control address", allow_port_zero=True)
    with trio.CancelScope() as quit_scope:
        async with open_fault_proxy(target, listen=listen) as proxy, trio.open_nursery() as n:
            listeners = await trio.open_tcp_listeners(control[1], host=control[0])
            sockname = listeners[0].socket.getsockname()
            control_address = (str(sockname[0]), int(sockname[1]))

            async def handler(stream: trio.SocketStream) -> None:
                await _serve_control_client(proxy, stream, quit_scope)

            await n.start(trio.serve_listeners, handler, listeners)
            task_status.started((proxy.address, control_address))


def _address_arg(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pairns.testing.faultproxy``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m pairns.testing.faultproxy",
        description="Fault-injecting TCP proxy for loopback tests.",
    )
    parser.add_argument("--listen", type=_address_arg, default=("127.0.0.1", 0))
    parser.add_argument("--target", type=_address_arg, required=True)
    parser.add_argument("--control", type=_address_arg, default=("127.0.0.1", 0))
    args = parser.parse_args(argv)
    try:
        check_loopback(args.listen, what="listen address", allow_port_zero=True)
        check_loopback(args.target, what="target", allow_port_zero=False)
        check_loopback(args.control, what="control address", allow_port_zero=True)
    except ValueError as exc:
        parser.error(str(exc))

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            proxy_address, control_address = await nursery.start(
                serve_fault_proxy, args.listen, args.target, args.control
            )
            print(
                f"faultproxy listening on {format_address(proxy_address)} "
                f"control {format_address(control_address)}",
                flush=True,
            )

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 130
    return 0


# --------------------------------------------------------------------------- subprocess


class FaultProxyProcess:
    """A fault proxy in a child process, driven with blocking calls (for sync tests).

    ::

        with FaultProxyProcess(("127.0.0.1", server_port)) as fp:
            connect_to(fp.address)
            fp.partition()

    Each control call opens a short TCP connection to the child's control port and raises
    ``RuntimeError`` if the reply is not ``ok``. :meth:`stop` kills the child by PID.
    *prefix* is put before the child's command line (the chaos runner uses ``setpriv
    --pdeathsig KILL`` so the child dies with it).
    """

    def __init__(
        self,
        target: Address,
        *,
        listen: Address = ("127.0.0.1", 0),
        control: Address = ("127.0.0.1", 0),
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        control_timeout: float = DEFAULT_CONTROL_TIMEOUT,
        prefix: Sequence[str] = (),
    ) -> None:
        self.target = check_loopback(target, what="target", allow_port_zero=False)
        self._prefix = list(prefix)
        self._listen = check_loopback(listen, what="listen address", allow_port_zero=True)
        self._control = check_loopback(control, what="control address", allow_port_zero=True)
        self._startup_timeout = startup_timeout
        self._control_timeout = control_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._address: Address | None = None
        self._control_address: Address | None = None

    @property
    def address(self) -> Address:
        """Where the child proxy listens (after :meth:`start`)."""
        if self._address is None:
            raise RuntimeError("FaultProxyProcess is not started")
        return self._address

    @property
    def control_address(self) -> Address:
        """The child's control port (after :meth:`start`)."""
        if self._control_address is None:
            raise RuntimeError("FaultProxyProcess is not started")
        return self._control_address

    @property
    def pid(self) -> int:
        """The child's process id (after :meth:`start`)."""
        if self._process is None:
            raise RuntimeError("FaultProxyProcess is not started")
        return self._process.pid

    def start(self) -> Self:
        """Start the child and wait for its ``listening`` line; return ``self``."""
        if self._process is not None:
            raise RuntimeError("FaultProxyProcess already started")
        argv = [
            *self._prefix,
            sys.executable,
            "-m",
            "pairns.testing.faultproxy",
            "--listen",
            format_address(self._listen),
            "--target",
            format_address(self.target),
            "--control",
            format_address(self._control),
        ]
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            line = self._read_first_line(self._process, self._startup_timeout)
            words = line.split()
            if words[:3] != ["faultproxy", "listening", "on"] or len(words) != 6:
                raise RuntimeError(f"faultproxy child printed an unexpected line: {line!r}")
            self._address = parse_address(words[3])
            self._control_address = parse_address(words[5])
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _read_first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"faultproxy child did not start within {timeout} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    status = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                    raise RuntimeError(f"faultproxy child exited with status {status}")
                data += chunk
        return data.partition(b"\n")[0].decode("utf-8", "replace")

    def command(self, line: str) -> str:
        """Send one control line and return the reply line (``ok``, JSON or ``error ...``)."""
        with socket.create_connection(self.control_address, timeout=self._control_timeout) as s:
            s.sendall(line.encode() + b"\n")
            reply = b""
            while b"\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError(f"faultproxy control closed without replying to {line!r}")
                reply += chunk
        return reply.partition(b"\n")[0].decode("utf-8", "replace")

    def _ok(self, line: str) -> None:
        reply = self.command(line)
        if reply != "ok":
            raise RuntimeError(f"faultproxy {line!r} failed: {reply}")

    def partition(self) -> None:
        """Black-hole traffic (see :meth:`FaultProxy.partition`)."""
        self._ok("partition")

    def heal(self) -> None:
        """End a partition."""
        self._ok("heal")

    def cut(self, *, reset: bool = False) -> None:
        """Close every current connection (RST with ``reset=True``)."""
        self._ok("cut reset" if reset else "cut")

    def set_delay(self, seconds: float) -> None:
        """Delay each forwarded chunk by ``seconds``."""
        self._ok(f"delay {float(seconds)!r}")

    def set_drop_rate(self, probability: float, seed: int | None = None) -> None:
        """Drop each chunk with ``probability``."""
        self._ok(f"drop {float(probability)!r}" + ("" if seed is None else f" {int(seed)}"))

    def refuse(self, on: bool = True) -> None:
        """Refuse (accept and close) new connections while on."""
        self._ok("refuse on" if on else "refuse off")

    def statistics(self) -> FaultProxyStatistics:
        """The child's counters."""
        reply = self.command("stats")
        if reply.startswith("error"):
            raise RuntimeError(f"faultproxy 'stats' failed: {reply}")
        return FaultProxyStatistics.from_json(reply)

    def quit(self) -> None:
        """Ask the child to exit cleanly and wait for it (``stop`` kills instead)."""
        self._ok("quit")
        if self._process is not None:
            self._process.wait(timeout=self._control_timeout)
        self.stop()

    def stop(self) -> None:
        """Kill the child by PID and reap it; safe to call more than once."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=self._control_timeout)
        finally:
            if process.stdout is not None:
                process.stdout.close()

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has ended, else ``None``."""
        return None if self._process is None else self._process.poll()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "not started" if self._address is None else format_address(self._address)
        return f"<FaultProxyProcess {where} -> {format_address(self.target)}>"


if __name__ == "__main__":
    sys.exit(main())
