"""Shared helpers of the name-server benchmarks: servers, a client process pool, figures.

Nothing here fails on timing. Every loop is bounded in count and in time, every process
it starts is stopped by its own pid, and everything listens on 127.0.0.1 only.

Servers
    :func:`start_pairns` runs the ``pairns`` command (in memory, or persistent with a
    database directory) and :func:`start_pyro5` runs ``python -m Pyro5.nameserver`` (in
    memory, or with ``sql:FILE`` storage), each in its own process on an ephemeral port;
    :class:`Server` reads that process's CPU time and resident memory with psutil.

Clients
    :class:`ClientPool` starts N worker processes once (``spawn``), before any timing.
    For each phase the coordinator hands a :class:`Phase` to the first n workers; each
    connects and pings, reports ready, and all start at the same monotonic instant, run
    for a fixed duration (or until a count) and report their operation count,
    per-call latencies and their own CPU time (``os.times``). The server's CPU time is
    read just before the start instant and after the last worker reports.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Names pre-registered in every server before resolve phases (same count, same shape).
N_PRELOAD = 1000


def pairns_name(i: int) -> str:
    return f":Default.obj{i:06d}"


def pyro5_name(i: int) -> str:
    # Pyro5 has flat names; the same characters minus the leading root colon.
    return f"Default.obj{i:06d}"


def pairns_uri(i: int) -> str:
    return f"PYRO://127.0.0.1:9999/{i:032x}"


def pyro5_uri(i: int) -> str:
    # Same length of object id as the pairns URI.
    return f"PYRO:{i:032x}@127.0.0.1:9999"


def reg_name(kind: str, tag: str, worker: int, i: int) -> str:
    """A unique name for register phases (*tag* differs per phase)."""
    base = f"Default.r{tag}w{worker}n{i}"
    return ":" + base if kind == "pairns" else base


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    kind: str  # "pairns" | "pyro5"
    proc: subprocess.Popen[bytes]
    port: int
    startup_s: float
    workdir: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """User + system CPU seconds the server has used so far, its live child
        processes included (a persistent pairns node's SQLite writer)."""
        import psutil

        total = 0.0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        """Resident memory of the server and its live child processes."""
        import psutil

        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def _tree(self) -> list[Any]:
        import psutil

        main = psutil.Process(self.pid)
        return [main, *main.children(recursive=True)]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM this server (by its pid), then SIGKILL if it does not exit in time.

        Removes its scratch directory (URI file; not a database given by the caller).
        """
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn_and_wait(
    argv: list[str], pattern: str, *, cwd: str, env: dict[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], re.Match[str], float]:
    """Start *argv*, return once a stdout line matches *pattern* (and the elapsed time)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    seen: list[str] = []
    deadline = t0 + timeout
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or (proc.poll() is not None and not sel.select(0)):
                break
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                seen.append(text)
                m = re.search(pattern, text)
                if m:
                    elapsed = time.perf_counter() - t0
                    _drain(proc)
                    return proc, m, elapsed
    finally:
        sel.close()
    # Failed: stop it and say what it printed.
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    raise RuntimeError(
        f"server {argv!r} did not print {pattern!r} within {timeout}s; output:\n"
        + "\n".join([*seen, buf.decode(errors="replace")])
    )


def _drain(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading the server's output in a daemon thread so its pipe never fills."""

    def run() -> None:
        assert proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            while proc.stdout.read(65536):
                pass

    threading.Thread(target=run, daemon=True).start()


def _bin(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


def start_pairns(
    label: str = "pairns",
    database: str | None = None,
    timeout: float = 60.0,
    extra: Sequence[str] = (),
) -> Server:
    """A ``pairns`` node on 127.0.0.1, in memory or (``database``) persistent; *extra*
    flags are added to its command line."""
    workdir = tempfile.mkdtemp(prefix="pairns-bench-")
    env = dict(os.environ, PYRO_STORAGE=workdir, PYTHONUNBUFFERED="1")
    argv = [_bin("pairns"), "-n", "127.0.0.1", "-p", "0", *extra]
    if database is not None:
        argv += ["-d", database]
    proc, m, elapsed = _spawn_and_wait(
        argv,
        r"pairns name server listening on 127\.0\.0\.1:(\d+)",
        cwd=workdir,
        env=env,
        timeout=timeout,
    )
    return Server(label, "pairns", proc, int(m.group(1)), elapsed, workdir)


def pyro5_available() -> bool:
    try:
        import Pyro5.api  # noqa: F401
    except ImportError:
        return False
    return True


def start_pyro5(label: str = "Pyro5", storage: str | None = None, timeout: float = 60.0) -> Server:
    """Pyro5's name server on 127.0.0.1 (no broadcast server), default in-memory storage."""
    workdir = tempfile.mkdtemp(prefix="pyro5-bench-")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "Pyro5.nameserver", "-n", "127.0.0.1", "-p", "0", "-x"]
    if storage is not None:
        argv += ["-s", storage]
    proc, m, elapsed = _spawn_and_wait(
        argv,
        r"URI = PYRO:Pyro\.NameServer@127\.0\.0\.1:(\d+)",
        cwd=workdir,
        env=env,
        timeout=timeout,
    )
    return Server(label, "pyro5", proc, int(m.group(1)), elapsed, workdir)


def locator(tls: TLSFiles | None = None) -> Any:
    """A pairns locator, with a TLS client context when *tls* (CA, cert, key) is given."""
    import pairns

    if tls is None:
        return pairns.NameServerLocator()
    from pairns.tls import client_context

    return pairns.NameServerLocator(ssl_context=client_context(*tls))


def preload(server: Server, n: int = N_PRELOAD, tls: TLSFiles | None = None) -> None:
    """Register the same *n* names (pairns_name/pyro5_name) in *server*."""
    if server.kind == "pairns":
        with locator(tls).getNS("127.0.0.1", server.port) as ns:
            for i in range(n):
                ns.register(pairns_name(i), pairns_uri(i))
    else:
        with pyro5_proxy(server.port) as ns:
            for i in range(n):
                ns.register(pyro5_name(i), pyro5_uri(i))


def pyro5_proxy(port: int, timeout: float = 10.0) -> Any:
    import Pyro5.api
    from Pyro5 import config

    config.COMMTIMEOUT = timeout
    proxy = Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@127.0.0.1:{port}")
    proxy._pyroTimeout = timeout
    return proxy


def raise_nofile(want: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit toward *want*; return the new limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- client workers ----------------------------------------------------------------------


#: A TLS client's files: the CA, and the client certificate and key (or None).
TLSFiles = tuple[str, str | None, str | None]


@dataclass
class Phase:
    """What each worker of one phase does."""

    kind: str  # "pairns" | "pyro5"
    port: int
    op: str  # "resolve" | "register"
    mode: str = "blocking"  # "blocking" | "async" (pairns only)
    inflight: int = 1  # async tasks per worker (one connection)
    duration: float = 3.0
    max_ops: int = 10_000_000  # per worker
    tag: str = "x"  # makes register names unique per phase
    tls: TLSFiles | None = None  # pairns only: connect with TLS


@dataclass
class WorkerResult:
    ops: int
    elapsed: float
    cpu: float
    lat: list[float]
    errors: int
    first_error: str


def _worker_main(index: int, conn: Any) -> None:
    """Worker process: run phases handed over *conn* until told to stop (or orphaned)."""
    while True:
        if not conn.poll(600):  # bounded: a forgotten worker exits by itself
            return
        msg = conn.recv()
        if msg is None:
            return
        phase: Phase = msg
        try:
            if phase.mode == "async":
                result = _run_async(index, phase, conn)
            else:
                result = _run_blocking(index, phase, conn)
        except BaseException as exc:  # report, never hang the coordinator
            with contextlib.suppress(Exception):
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("done", result))


def _wait_go(conn: Any) -> float:
    conn.send(("ready", None))
    if not conn.poll(120):
        raise TimeoutError("no start signal")
    _, t0 = conn.recv()
    now = time.monotonic()
    if t0 > now:
        time.sleep(t0 - now)
    return float(t0)


def _run_blocking(index: int, phase: Phase, conn: Any) -> WorkerResult:
    n_pre = N_PRELOAD
    offset = index * 37
    if phase.kind == "pairns":
        ns: Any = locator(phase.tls).getNS("127.0.0.1", phase.port, timeout=30)
        if phase.op == "resolve":
            names = [pairns_name(i) for i in range(n_pre)]
            call = ns.resolve
        else:
            call = ns.register
            mkname, mkuri = reg_name, pairns_uri
    else:
        ns = pyro5_proxy(phase.port, timeout=30)
        ns._pyroBind()
        ns.ping()
        if phase.op == "resolve":
            names = [pyro5_name(i) for i in range(n_pre)]
            call = ns.lookup
        else:
            call = ns.register
            mkname, mkuri = reg_name, pyro5_uri
    lat: list[float] = []
    errors = 0
    first_error = ""
    n = 0
    try:
        t0 = _wait_go(conn)
        pc = time.perf_counter
        start = pc()
        end = start + max(0.0, t0 + phase.duration - time.monotonic())
        c0 = os.times()
        resolve = phase.op == "resolve"
        kind = phase.kind
        tag = phase.tag
        while n < phase.max_ops:
            a = pc()
            if a >= end:
                break
            try:
                if resolve:
                    call(names[(n + offset) % n_pre])
                else:
                    call(mkname(kind, tag, index, n), mkuri(n))
            except Exception as exc:
                errors += 1
                if not first_error:
                    first_error = f"{type(exc).__name__}: {exc}"
                if errors >= 100:
                    break
            lat.append(pc() - a)
            n += 1
        c1 = os.times()
        elapsed = pc() - start
    finally:
        if phase.kind == "pairns":
            ns.close()
        else:
            ns._pyroRelease()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return WorkerResult(n, elapsed, cpu, lat, errors, first_error)


def _run_async(index: int, phase: Phase, conn: Any) -> WorkerResult:
    import trio

    state: dict[str, Any] = {"n": 0, "errors": 0, "first_error": "", "lat": []}
    out: dict[str, Any] = {}

    async def main() -> None:
        ns = await locator(phase.tls).async_getNS("127.0.0.1", phase.port, timeout=30)
        async with ns:
            t0 = _wait_go(conn)  # blocks the loop briefly: nothing is in flight
            pc = time.perf_counter
            start = pc()
            end = start + max(0.0, t0 + phase.duration - time.monotonic())
            names = [pairns_name(i) for i in range(N_PRELOAD)]
            lat: list[float] = state["lat"]
            c0 = os.times()
            base, extra = divmod(phase.max_ops, phase.inflight)

            async def task(k: int) -> None:
                i = 0
                quota = base + (1 if k < extra else 0)
                while i < quota:
                    a = pc()
                    if a >= end:
                        return
                    try:
                        if phase.op == "resolve":
                            await ns.resolve(names[(i * phase.inflight + k + index) % N_PRELOAD])
                        else:
                            j = i * phase.inflight + k
                            await ns.register(
                                reg_name("pairns", phase.tag, index, j), pairns_uri(j)
                            )
                    except Exception as exc:
                        state["errors"] += 1
                        if not state["first_error"]:
                            state["first_error"] = f"{type(exc).__name__}: {exc}"
                        if state["errors"] >= 100:
                            return
                    lat.append(pc() - a)
                    i += 1
                    state["n"] += 1

            async with trio.open_nursery() as nursery:
                for k in range(phase.inflight):
                    nursery.start_soon(task, k)
            c1 = os.times()
            out["elapsed"] = pc() - start
            out["cpu"] = (c1.user - c0.user) + (c1.system - c0.system)

    trio.run(main)
    return WorkerResult(
        state["n"], out["elapsed"], out["cpu"], state["lat"], state["errors"], state["first_error"]
    )


@dataclass
class PhaseResult:
    ops: int
    seconds: float
    ops_per_s: float
    p50_us: float
    p99_us: float
    server_cpu_us: float  # server CPU per op
    client_cpu_us: float  # client CPU per op (sum over workers / ops)
    errors: int = 0
    first_error: str = ""


class ClientPool:
    """*size* worker processes, started once, before any timing."""

    def __init__(self, size: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        for i in range(size):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(i, child), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.send(None)
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.join(5)

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, n: int, phase: Phase, server: Server) -> PhaseResult:
        conns = self.conns[:n]
        for c in conns:
            c.send(phase)
        for c in conns:
            tag, payload = _recv(c, 120)
            if tag != "ready":
                raise RuntimeError(f"worker failed before start: {payload}")
        t0 = time.monotonic() + 0.2
        for c in conns:
            c.send(("go", t0))
        time.sleep(max(0.0, t0 - time.monotonic()))
        cpu0 = server.cpu()
        results: list[WorkerResult] = []
        failures: list[str] = []
        for c in conns:
            tag, payload = _recv(c, phase.duration + 300)
            if tag == "done":
                results.append(payload)
            else:
                failures.append(str(payload))
        cpu1 = server.cpu()
        if failures:
            raise RuntimeError(f"worker failed: {failures[0]}")
        ops = sum(r.ops for r in results)
        seconds = max(r.elapsed for r in results)
        lat = sorted(x for r in results for x in r.lat)
        return PhaseResult(
            ops=ops,
            seconds=seconds,
            ops_per_s=ops / seconds if seconds > 0 else 0.0,
            p50_us=percentile(lat, 50) * 1e6,
            p99_us=percentile(lat, 99) * 1e6,
            server_cpu_us=(cpu1 - cpu0) / ops * 1e6 if ops else float("nan"),
            client_cpu_us=sum(r.cpu for r in results) / ops * 1e6 if ops else float("nan"),
            errors=sum(r.errors for r in results),
            first_error=next((r.first_error for r in results if r.first_error), ""),
        )


def _recv(conn: Any, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError("a worker did not answer in time")
    msg: tuple[str, Any] = conn.recv()
    return msg


# -- figures -----------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def median(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    if value != value:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "meets" if ok else "MISSES"


@dataclass
class Collector:
    """PhaseResults per key over rounds; medians on demand."""

    data: dict[tuple[Any, ...], list[PhaseResult]] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...], r: PhaseResult) -> None:
        self.data.setdefault(key, []).append(r)

    def med(self, key: tuple[Any, ...], attr: str) -> float:
        return median([getattr(r, attr) for r in self.data.get(key, [])])

    def errors(self, key: tuple[Any, ...]) -> str:
        rs = self.data.get(key, [])
        n = sum(r.errors for r in rs)
        first = next((r.first_error for r in rs if r.first_error), "")
        return f"{n} errors, first: {first}" if n else ""

    def row(self, key: tuple[Any, ...], label: str) -> list[str]:
        """A phase-table row: *label*, then ops/s, p50, p99, server and client CPU."""
        return [
            label,
            fmt(self.med(key, "ops_per_s")),
            fmt(self.med(key, "p50_us")),
            fmt(self.med(key, "p99_us")),
            fmt(self.med(key, "server_cpu_us"), 1),
            fmt(self.med(key, "client_cpu_us"), 1),
        ]

    def print_table(self, first: str, rate: str, rows: list[list[str]]) -> None:
        """The phase table (rows from :meth:`row`), then any errors the phases saw."""
        headers = [first, rate, "p50 us", "p99 us", "srv CPU us/op", "cli CPU us/call"]
        print_table(headers, rows)
        for key in self.data:
            errors = self.errors(key)
            if errors:
                print(f"  note: {key}: {errors}")


def fmt(v: float, digits: int = 0) -> str:
    if v != v:
        return "-"
    return f"{v:,.{digits}f}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def machine_line() -> str:
    import platform

    return (
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load avg {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
