"""How close the RPC layer gets to a bare Trio loop: calls/s and server CPU per call.

Prints figures, never fails on timing::

    .venv/bin/python benchmarks/rpc_floor.py [--seconds 3] [--repeat 3] [--only daemon|floor]

The server runs in its own process with a trivial object whose ``resolve(name)`` is a
dict lookup (what a name server lookup costs at the bottom). Its CPU time is read from
``/proc/PID/stat`` just before the clients (connected and warmed up) get their "go"
and after they finish, so "server CPU per call" is the whole process: Trio, sockets,
framing, JSON, dispatch. The daemon and the floor phases alternate over ``--repeat``
rounds, so a noisy neighbour hurts both alike; the best and the median are shown.

Phases, each against the pairns ``Daemon``:

- ``blocking x1`` / ``blocking x4``: 1 or 4 client processes, each with a blocking
  ``Proxy`` (one call in flight per connection).
- ``async 16 in flight``: one client process, one ``AsyncProxy``, 16 tasks.
- ``raw 16 in flight``: one client process speaking the protocol with the sans-IO
  ``Connection`` on a plain socket, keeping 16 requests in flight (a cheaper client,
  so the server rather than the client is the bottleneck).

and the same shapes against ``floor``: a bare Trio server reading 4-byte length
prefixed JSON requests and answering each from a dict with ``json.loads`` and
``json.dumps`` (the floor described in the design notes), with raw socket clients.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.abspath(__file__)
NAMES = {f":Default.obj{i}": f"PYRO://127.0.0.1:9999/{i:032x}" for i in range(1000)}
KEY = ":Default.obj42"


# -- servers ----------------------------------------------------------------------------


class Bench:
    """The object served by the daemon."""

    def resolve(self, name: str) -> str | None:
        return NAMES.get(name)


def serve_daemon() -> None:
    import trio

    from pairns.rpc import Daemon

    async def main() -> None:
        daemon = Daemon("127.0.0.1", 0)
        daemon.register(Bench(), "bench")
        async with trio.open_nursery() as nursery:
            _, port = await nursery.start(daemon.serve)
            print(port, flush=True)

    trio.run(main)


def serve_floor() -> None:
    import trio

    async def handler(stream: trio.SocketStream) -> None:
        buf = bytearray()
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
                out = []
                pos = 0
                while len(buf) - pos >= 4:
                    n = int.from_bytes(buf[pos : pos + 4], "big")
                    if len(buf) - pos - 4 < n:
                        break
                    request = json.loads(buf[pos + 4 : pos + 4 + n])
                    pos += 4 + n
                    body = json.dumps(NAMES.get(request["args"][0])).encode()
                    out.append(len(body).to_bytes(4, "big") + body)
                del buf[:pos]
                if out:
                    await stream.send_all(b"".join(out))
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, handler, 0)
            print(listeners[0].socket.getsockname()[1], flush=True)

    trio.run(main)


# -- clients ----------------------------------------------------------------------------


def ready() -> None:
    """Connected and warmed up: tell the driver, wait for its go (one line on stdin)."""
    print("ready", flush=True)
    sys.stdin.readline()


def client_blocking(port: int, seconds: float) -> int:
    from pairns.rpc import Proxy

    with Proxy.for_address("127.0.0.1", port, "bench") as proxy:
        proxy.resolve(KEY)
        ready()
        calls = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(100):
                proxy.resolve(KEY)
            calls += 100
    return calls


def client_async(port: int, seconds: float, tasks: int = 16) -> int:
    import trio

    from pairns.rpc import AsyncProxy

    calls = 0

    async def worker(proxy: Any, end: float) -> None:
        nonlocal calls
        while time.perf_counter() < end:
            await proxy.resolve(KEY)
            calls += 1

    async def main() -> None:
        async with AsyncProxy.for_address("127.0.0.1", port, "bench") as proxy:
            await proxy.resolve(KEY)
            await trio.to_thread.run_sync(ready)
            end = time.perf_counter() + seconds
            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(worker, proxy, end)

    trio.run(main)
    return calls


def client_raw(port: int, seconds: float, depth: int = 16) -> int:
    """Keep *depth* requests in flight with the sans-IO Connection on a plain socket."""
    from pairns.wire import CLIENT, NEED_DATA, Connection, Reply, Request

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(CLIENT)

    def next_event() -> Any:
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(sock.recv(65536))
        return event

    next_event()  # Challenge
    sock.sendall(conn.send(conn.response()))
    next_event()  # Welcome
    depth = min(depth, conn.peer_max_in_flight)
    ready()
    corr = 0
    calls = 0
    sock.sendall(b"".join(conn.send(Request(i, "bench", "resolve", [KEY])) for i in range(depth)))
    corr = depth
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.receive_data(sock.recv(65536))
        out = []
        while (event := conn.next_event()) is not NEED_DATA:
            assert type(event) is Reply
            calls += 1
            corr = (corr + 1) & 0xFFFFFFFF
            out.append(conn.send(Request(corr, "bench", "resolve", [KEY])))
        if out:
            sock.sendall(b"".join(out))
    sock.close()
    return calls


def client_floor(port: int, seconds: float, depth: int = 1) -> int:
    """Length-prefixed JSON over a plain socket, *depth* requests in flight."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = json.dumps({"method": "resolve", "args": [KEY]}).encode()
    frame = len(body).to_bytes(4, "big") + body
    ready()
    sock.sendall(frame * depth)
    buf = bytearray()
    calls = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        buf += sock.recv(65536)
        pos = 0
        answered = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos : pos + 4], "big")
            if len(buf) - pos - 4 < n:
                break
            json.loads(buf[pos + 4 : pos + 4 + n])
            pos += 4 + n
            answered += 1
        del buf[:pos]
        calls += answered
        if answered:
            sock.sendall(frame * answered)
    sock.close()
    return calls


def client_floor1(port: int, seconds: float) -> int:
    return client_floor(port, seconds, 1)


def client_floor16(port: int, seconds: float) -> int:
    return client_floor(port, seconds, 16)


CLIENTS: dict[str, Callable[[int, float], int]] = {
    "blocking": client_blocking,
    "async": client_async,
    "raw": client_raw,
    "floor1": client_floor1,
    "floor16": client_floor16,
}


# -- driver -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def start(kind: str) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, HERE, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    return server, port


PHASES = {
    "daemon": [("blocking", 1), ("blocking", 4), ("async", 1), ("raw", 1)],
    "floor": [("floor1", 1), ("floor1", 4), ("floor16", 1)],
}


def phase(pid: int, port: int, client: str, procs: int, seconds: float) -> tuple[float, float]:
    """Run *procs* clients at once for *seconds*; returns (calls/s, server µs per call)."""
    command = [sys.executable, HERE, "--client", client, "--port", str(port)]
    clients = [
        subprocess.Popen(
            [*command, "--seconds", str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    for c in clients:  # all connected and warmed up
        assert c.stdout is not None and c.stdout.readline().strip() == "ready"
    cpu0 = cpu_seconds(pid)
    for c in clients:
        assert c.stdin is not None
        c.stdin.write("go\n")
        c.stdin.flush()
    total = sum(int(c.communicate()[0].split()[-1]) for c in clients)
    cpu1 = cpu_seconds(pid)
    return total / seconds, (cpu1 - cpu0) / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", choices=["daemon", "floor"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", choices=["daemon", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "daemon":
        serve_daemon()
        return
    if args.serve == "floor":
        serve_floor()
        return
    if args.client:
        print(CLIENTS[args.client](args.port, args.seconds))
        return
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.seconds:g} s per "
        f"phase, {args.repeat} rounds (daemon and floor alternate; best and median shown)"
    )
    kinds = [args.only] if args.only else ["daemon", "floor"]
    servers = {kind: start(kind) for kind in kinds}
    results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.repeat):
            for kind in kinds:
                server, port = servers[kind]
                for client, procs in PHASES[kind]:
                    result = phase(server.pid, port, client, procs, args.seconds)
                    results.setdefault((kind, client, procs), []).append(result)
    finally:
        for server, _ in servers.values():
            server.kill()
            server.wait()
    for kind in kinds:
        print("pairns Daemon:" if kind == "daemon" else "bare Trio floor (4-byte length + JSON):")
        for client, procs in PHASES[kind]:
            runs = results[(kind, client, procs)]
            cpus = sorted(cpu for _, cpu in runs)
            rates = sorted(rate for rate, _ in runs)
            print(
                f"  {client:>8} x{procs}: {rates[-1]:9,.0f} calls/s (median "
                f"{statistics.median(rates):,.0f})   server CPU {cpus[0]:6.1f} µs/call "
                f"(median {statistics.median(cpus):.1f})"
            )


if __name__ == "__main__":
    main()
