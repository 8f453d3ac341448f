"""The chaos client: a process doing random name-server calls against both nodes.

Run as ``python -m pairns.chaos.client --client NAME --seed N --nodes H:P1,H:P2
--out FILE``. It prints ``ready`` once started, then obeys commands on stdin, one per
line: ``run`` (do operations), ``pause`` (finish the operation in flight, with its
retries, stop, and print ``paused``), ``exit`` (end; so does the end of stdin). Every
attempt of every call is appended to *FILE* as an :class:`~pairns.chaos.history.Op`
line, flushed at once, so a client killed mid-run leaves at most one torn line.

Operations are drawn from a ``random.Random`` seeded with the seed and the client's
name (:func:`choose_op`); a call with no answer (timeout, connection refused, reset or
closed) is retried with the same request id, on the same node or the other one, up to
three attempts.

With ``--failover N`` the client is a *failover client*: it makes every call through
one failover :class:`~pairns.naming.proxy.NameServerProxy` whose preferred node is node
*N* (the other is given as its twin), and never retries by itself. The proxy's own
attempts are recorded, each as an ``Op`` (``failover`` set), through the RPC proxies it
was given (:class:`_TappedProxy`); when the call failed, its last attempt carries the
error the call raised. :class:`ClientProcess` is the runner's handle on one process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Final

import attrs

from pairns.chaos.history import WRITE_OPS, Op, Status, write_jsonl
from pairns.errors import ConnectionClosedError, PairnsError
from pairns.names import NAMESERVER_OBJECT_ID
from pairns.naming.failover import DEFAULT_FAILOVER_TIMEOUT
from pairns.naming.proxy import NameServerProxy
from pairns.rpc.proxy import Proxy

__all__ = [
    "BUILTINS",
    "FRESH_GROUP",
    "FRESH_KEEP",
    "GROUPS",
    "MAX_ATTEMPTS",
    "OBJECTS",
    "OP_WEIGHTS",
    "ClientProcess",
    "Worker",
    "choose_op",
    "main",
]

#: The groups clients create and delete (the runner creates them all at setup).
GROUPS: Final = tuple(f":chaos.g{k}" for k in range(4))
#: The objects clients register, unregister and resolve.
OBJECTS: Final = tuple(f"{g}.o{j}" for g in GROUPS for j in range(5)) + tuple(
    f":chaos.o{j}" for j in range(5)
)
#: Built-in names whose metadata is set now and then.
BUILTINS: Final = (":", ":Pyro", ":Default")
#: Where each client registers names of its own, one per op, that nobody else ever
#: writes: a change lost on one node cannot be hidden there by a later overwrite (the
#: shared names above are rewritten many times a second), so it shows for good. The
#: runner creates the group at setup; clients never delete it.
FRESH_GROUP: Final = ":chaos.fresh"
#: Fresh names a client keeps registered; past this it unregisters its oldest instead.
FRESH_KEEP: Final = 100
#: Where each client churns a few names of its own: registered, unregistered,
#: registered again, many times over. Every unregister leaves a tombstone that the
#: nodes collect during the campaign, so collection interleaves with the faults; a
#: name that came back after its deletion was collected is a lost unregister (one
#: writer, so the checker knows what the name must show). Created by the runner.
CHURN_GROUP: Final = ":chaos.churn"
#: Names each client churns (``:chaos.churn.<client>-c<k>``).
CHURN_NAMES: Final = 4
#: Groups that ``list`` lists.
LISTED: Final = (":chaos", *GROUPS, FRESH_GROUP, CHURN_GROUP)

#: The operation mix (relative weights). ``setMetaBuiltin`` is a setMeta on a built-in
#: name; a client does one at most every :data:`BUILTIN_PAUSE` seconds (else it becomes
#: a plain setMeta), so that the last one often lies long before a later fault: 1 % of
#: ~1,500 operations a second would rewrite the built-ins every few milliseconds.
OP_WEIGHTS: Final = (
    ("register", 20),
    ("unregister", 12),
    ("setMeta", 11),
    ("setMetaBuiltin", 1),
    ("createGroup", 5),
    ("deleteGroup", 3),
    ("resolve", 25),
    ("list", 10),
    ("getMeta", 8),
    ("flatlist", 1),
    ("fresh", 10),
    ("resolveFresh", 5),
    ("churn", 10),
)
_OP_NAMES: Final = tuple(name for name, _ in OP_WEIGHTS)
_OP_CUM: Final = tuple(
    sum(weight for _, weight in OP_WEIGHTS[: i + 1]) for i in range(len(OP_WEIGHTS))
)

#: Attempts of one operation (the first and two retries).
MAX_ATTEMPTS: Final = 3
#: Seconds (drawn from this range) a client waits between two setMetas on built-ins.
BUILTIN_PAUSE: Final = (5.0, 20.0)


def choose_op(
    rng: random.Random,
    op_id: str,
    *,
    builtins: bool = True,
    fresh: list[str] | None = None,
    churn: tuple[str, set[str]] | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """Draw the next operation and its arguments (names absolute). Register URIs and
    setMeta values carry *op_id*, so every write is unique. With ``builtins=False`` a
    setMeta drawn for a built-in name goes to a chaos name instead.

    *fresh* is the client's list of its registered fresh names (oldest first; see
    :data:`FRESH_GROUP`): ``fresh`` registers ``:chaos.fresh.<op_id>``, or, with
    :data:`FRESH_KEEP` of them registered, unregisters the oldest; ``resolveFresh``
    resolves one of them. The caller keeps the list (:meth:`Worker.run_one`).

    *churn* is ``(client name, the churn names it believes registered)`` (see
    :data:`CHURN_GROUP`): ``churn`` picks one of the client's churn names and
    unregisters it if registered, else registers it.
    """
    kind = rng.choices(_OP_NAMES, cum_weights=_OP_CUM)[0]
    if kind == "setMetaBuiltin" and not builtins:
        kind = "setMeta"
    meta_targets = OBJECTS + GROUPS
    mine = fresh if fresh is not None else []
    match kind:
        case "churn" if churn is not None:
            client, registered = churn
            name = f"{CHURN_GROUP}.{client}-c{rng.randrange(CHURN_NAMES)}"
            if name in registered:
                return "unregister", (name,)
            return "register", (name, f"PYRO://127.0.0.1:1/{op_id}")
        case "churn":
            return "resolve", (rng.choice(OBJECTS),)
        case "fresh":
            if len(mine) >= FRESH_KEEP:
                return "unregister", (mine[0],)
            return "register", (f"{FRESH_GROUP}.{op_id}", f"PYRO://127.0.0.1:1/{op_id}")
        case "resolveFresh":
            if not mine:
                return "resolve", (rng.choice(OBJECTS),)
            return "resolve", (rng.choice(mine),)
        case "register":
            return "register", (rng.choice(OBJECTS), f"PYRO://127.0.0.1:1/{op_id}")
        case "unregister" | "resolve":
            return kind, (rng.choice(OBJECTS),)
        case "setMeta":
            return "setMeta", (rng.choice(meta_targets), {"op": op_id})
        case "setMetaBuiltin":
            return "setMeta", (rng.choice(BUILTINS), {"op": op_id})
        case "createGroup" | "deleteGroup":
            return kind, (rng.choice(GROUPS),)
        case "list":
            return "list", (rng.choice(LISTED),)
        case "getMeta":
            targets = BUILTINS if rng.random() < 0.1 else meta_targets
            return "getMeta", (rng.choice(targets),)
        case _:
            return "flatlist", ()


def _plain(value: Any) -> Any:
    """A result as JSON shapes it (tuples become lists), so the record round-trips."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Worker:
    """The client's state: its proxies (one connection per node), its random stream and
    the commands the stdin thread passed on. :meth:`loop` does the work."""

    def __init__(
        self,
        name: str,
        seed: int,
        nodes: Sequence[tuple[str, int]],
        out: Path,
        *,
        timeout: float = 2.0,
        max_seconds: float = 3600.0,
        max_ops: int | None = None,
        rate: float = 0.0,
        stdout: IO[str] | None = None,
        failover: int | None = None,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
    ) -> None:
        self.name = name
        self.rng = random.Random(f"{seed}:{name}")
        self.out = out
        self.proxies = {
            i + 1: Proxy.for_address(host, port, NAMESERVER_OBJECT_ID, timeout=timeout)
            for i, (host, port) in enumerate(nodes)
        }
        #: A failover client's name server proxy (preferring node *failover*); None
        #: for a plain client. *timeout* is then its call timeout.
        self.ns: _FailoverNameServer | None = None
        if failover is not None:
            self.ns = _FailoverNameServer(
                nodes, failover, self._tapped, timeout=timeout, failover_timeout=failover_timeout
            )
        self.failover = failover
        #: The failover call in progress (op_id, op, args) and its attempts so far; the
        #: last one is held back until the call ends (it may get the call's error).
        self._current: tuple[str, str, tuple[Any, ...]] | None = None
        self._tries = 0
        self._held: Op | None = None
        self.max_seconds = max_seconds
        self.max_ops = max_ops
        #: Operations a second at most (0: as fast as the nodes answer).
        self.rate = rate
        self.stdout = stdout if stdout is not None else sys.stdout
        self.ops_done = 0
        #: When this client may next set metadata on a built-in name.
        self.builtin_after = time.monotonic() + self.rng.uniform(0.0, 3.0)
        #: The fresh names this client registered and has not unregistered yet.
        self.fresh: list[str] = []
        #: The churn names this client believes registered (see :data:`CHURN_GROUP`).
        self.churned: set[str] = set()
        self._cond = threading.Condition()
        self._running = False
        self._pauses = 0
        self._exit = False

    # -- commands (from the stdin thread) --------------------------------------------

    def command(self, line: str) -> None:
        """Apply one command line: ``run``, ``pause``, ``exit`` (others are ignored)."""
        word = line.strip()
        with self._cond:
            if word == "run":
                self._running = True
            elif word == "pause":
                self._running = False
                self._pauses += 1
            elif word == "exit":
                self._exit = True
            else:
                print(f"chaos client {self.name}: unknown command {word!r}", file=sys.stderr)
            self._cond.notify_all()

    def read_commands(self, stream: IO[str]) -> None:
        """Apply every line of *stream*; its end means ``exit``."""
        try:
            for line in stream:
                self.command(line)
        finally:
            self.command("exit")

    # -- the work loop ---------------------------------------------------------------

    def loop(self) -> None:
        """Do operations while running, answer pauses, return at ``exit``. Past
        *max_seconds* or *max_ops* it does no more operations but still answers."""
        deadline = time.monotonic() + self.max_seconds
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = 0.0
        self._say("ready")
        while True:
            with self._cond:
                while True:
                    if self._pauses:
                        for _ in range(self._pauses):
                            self._say("paused")
                        self._pauses = 0
                    if self._exit:
                        return
                    done = time.monotonic() > deadline or (
                        self.max_ops is not None and self.ops_done >= self.max_ops
                    )
                    if self._running and not done:
                        break
                    self._cond.wait(0.5)
            if interval:
                now = time.monotonic()
                # Paced: an operation every *interval*; after a pause or a slow call it
                # starts again from now rather than catching up in a burst.
                next_at = max(next_at + interval, now)
                if next_at > now:
                    time.sleep(next_at - now)
            if not self.run_one(self.ops_done + 1):
                # No answer at all: both nodes may be away; do not spin.
                time.sleep(self.rng.uniform(0.05, 0.1))

    def _say(self, word: str) -> None:
        self.stdout.write(word + "\n")
        self.stdout.flush()

    def run_one(self, n: int) -> bool:
        """Operation *n*, with its retries; False if no attempt got an answer."""
        self.ops_done = n
        op_id = f"{self.name}-{n}"
        now = time.monotonic()
        op, args = choose_op(
            self.rng,
            op_id,
            builtins=now >= self.builtin_after,
            fresh=self.fresh,
            churn=(self.name, self.churned),
        )
        if op == "setMeta" and args[0] in BUILTINS:
            self.builtin_after = now + self.rng.uniform(*BUILTIN_PAUSE)
        if self.ns is not None:
            record = self._call_failover(op_id, op, args)
        else:
            record = self._call_plain(op_id, op, args)
        if args[:1] and isinstance(args[0], str) and args[0].startswith(FRESH_GROUP + "."):
            self._track_fresh(op, args[0], record)
        if args[:1] and isinstance(args[0], str) and args[0].startswith(CHURN_GROUP + "."):
            self._track_churn(op, args[0], record)
        return record.status != "unknown"

    def _call_plain(self, op_id: str, op: str, args: tuple[Any, ...]) -> Op:
        """A plain client's call: up to :data:`MAX_ATTEMPTS` attempts, each on a node
        drawn at random; the last attempt's record."""
        rid = uuid.uuid4().hex if op in WRITE_OPS else None
        node = self.rng.choice((1, 2))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            record = self.attempt(op_id, attempt, node, op, args, rid)
            write_jsonl(self.out, [record])
            if record.status != "unknown":
                break
            if attempt < MAX_ATTEMPTS:
                time.sleep(self.rng.uniform(0.05, 0.2))
                if self.rng.random() >= 0.5:
                    node = 3 - node
        return record

    def _call_failover(self, op_id: str, op: str, args: tuple[Any, ...]) -> Op:
        """A failover client's call: one call of the proxy, whose attempts
        :meth:`_tapped` records; the last attempt's record (with the call's error if
        it failed)."""
        assert self.ns is not None and self.failover is not None
        self._current, self._tries, self._held = (op_id, op, args), 0, None
        failure: BaseException | None = None
        start = time.monotonic()
        try:
            getattr(self.ns, op)(*args)
        except PairnsError as exc:
            failure = exc
        except Exception as exc:
            # Not a reply we understand: start afresh (as a plain client does).
            failure = exc
            self.ns.close()
        finally:
            self._current = None
        last, self._held = self._held, None
        if last is None:  # refused before anything was sent
            status, error = _outcome(failure)
            last = Op(
                client=self.name,
                op_id=op_id,
                attempt=1,
                node=self.failover,
                op=op,
                args=args,
                start=start,
                end=time.monotonic(),
                status="error" if status == "ok" else status,
                error=error,
                failover=True,
            )
        elif failure is not None and last.status == "unknown":
            last = attrs.evolve(last, error=_describe(failure))
        write_jsonl(self.out, [last])
        return last

    def _tapped(
        self,
        node: int,
        method: str,
        start: float,
        rid: str | None,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        """One attempt the failover proxy made (see :class:`_TappedProxy`): recorded
        if it belongs to the call in progress (not a ``twin()`` or a ``status()``
        probe)."""
        current = self._current
        if current is None or method != current[1]:
            return
        if self._held is not None:
            write_jsonl(self.out, [self._held])
        self._tries += 1
        op_id, op, args = current
        status, error = _outcome(exc)
        self._held = Op(
            client=self.name,
            op_id=op_id,
            attempt=self._tries,
            node=node,
            op=op,
            args=args,
            start=start,
            end=time.monotonic(),
            status=status,
            rid=rid,
            result=_plain(result) if status == "ok" else None,
            error=error,
            failover=True,
        )

    def _track_churn(self, op: str, name: str, last: Op) -> None:
        """Keep :attr:`churned` to what the client's churn names show: an answer says
        it (``name already exists``: registered; ``name not found``: not); without
        one the belief stays, and the next call on the name corrects it."""
        message = (last.error or {}).get("message", "")
        if last.status == "ok":
            registered = op == "register"
        elif "name already exists" in message:
            registered = True
        elif "name not found" in message:
            registered = False
        else:
            return
        if registered:
            self.churned.add(name)
        else:
            self.churned.discard(name)

    def _track_fresh(self, op: str, name: str, last: Op) -> None:
        """Keep :attr:`fresh` to the fresh names that may exist: a register that failed
        for sure made nothing; an unregister that did not answer, or failed otherwise
        than "name not found" (a full disk), is tried again later. Without this, names
        whose removal failed piled up, and with them every flatlist's result."""
        if op == "register" and last.status != "error":
            self.fresh.append(name)  # kept even if unanswered: it may exist
        elif op == "unregister" and name in self.fresh:
            gone = last.status == "ok" or (
                last.status == "error" and "name not found" in (last.error or {}).get("message", "")
            )
            if gone:
                self.fresh.remove(name)

    def attempt(
        self, op_id: str, attempt: int, node: int, op: str, args: tuple[Any, ...], rid: str | None
    ) -> Op:
        """One call of *op* on *node*, as an :class:`Op` record."""
        proxy = self.proxies[node]
        result: Any = None
        error: dict[str, str] | None = None
        status: Status
        start = time.monotonic()
        try:
            result = _plain(proxy.call(op, *args, request_id=rid))
            status = "ok"
        except Exception as exc:
            status, error = _outcome(exc)
            if not isinstance(exc, PairnsError):
                # Not a reply we understand: the call's fate is unknown; start afresh.
                proxy.close()
        end = time.monotonic()
        return Op(
            client=self.name,
            op_id=op_id,
            attempt=attempt,
            node=node,
            op=op,
            args=args,
            start=start,
            end=end,
            status=status,
            rid=rid,
            result=result if status == "ok" else None,
            error=error,
        )

    def close(self) -> None:
        """Close every connection."""
        for proxy in self.proxies.values():
            proxy.close()
        if self.ns is not None:
            self.ns.close()


def _describe(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def _outcome(exc: BaseException | None) -> tuple[Status, dict[str, str] | None]:
    """An attempt's status and error: no exception is ``ok``; a closed, refused, reset
    or timed-out connection ``unknown``; any other pairns error is the node's answer
    (``error``); anything else (an OSError, a reply we do not understand) ``unknown``."""
    if exc is None:
        return "ok", None
    if isinstance(exc, ConnectionClosedError):
        return "unknown", _describe(exc)
    if isinstance(exc, PairnsError):
        return "error", _describe(exc)
    return "unknown", _describe(exc)


#: What a :class:`_TappedProxy` reports: (node, method, start, request id, result,
#: exception or None).
Tap = Callable[[int, str, float, "str | None", Any, "BaseException | None"], None]


class _TappedProxy(Proxy):
    """A failover client's RPC proxy for one node: the name server proxy makes its
    attempts through it, and it reports each to :attr:`tap`."""

    node: int = 0
    tap: Tap | None = None

    def call_within(
        self,
        timeout: float | None,
        method: str,
        /,
        *args: Any,
        request_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """:meth:`Proxy.call_within`, reported to :attr:`tap`."""
        start = time.monotonic()
        try:
            result = super().call_within(timeout, method, *args, request_id=request_id, **kwargs)
        except BaseException as exc:
            if self.tap is not None:
                self.tap(self.node, method, start, request_id, None, exc)
            raise
        if self.tap is not None:
            self.tap(self.node, method, start, request_id, result, None)
        return result


class _FailoverNameServer(NameServerProxy):
    """The failover proxy of a failover client: preferring node *prefer* of *nodes*,
    with the other given as its twin (in the loopback topology a node's ``twin()`` names
    the link's fault proxy, which a client must not go through), and making its
    attempts through :class:`_TappedProxy` objects that report to *tap*."""

    def __init__(
        self,
        nodes: Sequence[tuple[str, int]],
        prefer: int,
        tap: Tap,
        *,
        timeout: float,
        failover_timeout: float,
    ) -> None:
        self._node_of = {(host, port): i + 1 for i, (host, port) in enumerate(nodes)}
        self._tap = tap
        (host, port), (twin_host, twin_port) = nodes[prefer - 1], nodes[2 - prefer]
        super().__init__(
            host,
            port,
            timeout=timeout,
            failover_timeout=failover_timeout,
            twin=(twin_host, twin_port),
        )

    def _connect_to(
        self, host: str, port: int, identification: str | None, timeout: float | None
    ) -> None:
        proxy = _TappedProxy.for_address(
            host, port, NAMESERVER_OBJECT_ID, identification=identification, timeout=timeout
        )
        proxy.node = self._node_of[(host, port)]
        proxy.tap = self._tap
        if not hasattr(self, "_proxies"):
            self._proxies = [proxy]
        else:
            self._proxies = [self._proxies[0], proxy]


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _nodes(text: str) -> list[tuple[str, int]]:
    nodes = [_address(part) for part in text.split(",") if part.strip()]
    if len(nodes) != 2:
        raise argparse.ArgumentTypeError(f"expected two HOST:PORT addresses, got {text!r}")
    return nodes


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m pairns.chaos.client``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m pairns.chaos.client",
        description="A chaos-campaign client: random calls against both nodes of a pair.",
    )
    parser.add_argument("--client", required=True, help="this client's name")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nodes", type=_nodes, required=True, help="H:P1,H:P2")
    parser.add_argument("--out", type=Path, required=True, help="ops JSONL file (appended)")
    parser.add_argument("--timeout", type=float, default=2.0, help="call timeout (s)")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--max-ops", type=int, default=None)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="operations a second at most (0: no limit)"
    )
    parser.add_argument(
        "--failover",
        type=int,
        choices=(1, 2),
        default=None,
        metavar="N",
        help="a failover client: every call through one failover name server proxy "
        "preferring node N (--timeout is then its call timeout)",
    )
    parser.add_argument(
        "--failover-timeout",
        type=float,
        default=DEFAULT_FAILOVER_TIMEOUT,
        help="the failover proxy's failover timeout (s)",
    )
    args = parser.parse_args(argv)
    if "-" in args.client or not args.client:
        parser.error("--client must be a non-empty name without '-'")
    worker = Worker(
        args.client,
        args.seed,
        args.nodes,
        args.out,
        timeout=args.timeout,
        rate=args.rate,
        max_seconds=args.max_seconds,
        max_ops=args.max_ops,
        failover=args.failover,
        failover_timeout=args.failover_timeout,
    )
    reader = threading.Thread(
        target=worker.read_commands, args=(sys.stdin,), name="commands", daemon=True
    )
    reader.start()
    try:
        worker.loop()
    except KeyboardInterrupt:
        return 130
    finally:
        worker.close()
    return 0


# --------------------------------------------------------------------------- the runner's side


class ClientProcess:
    """The runner's handle on one client process (started with :meth:`start`)."""

    def __init__(
        self,
        name: str,
        *,
        seed: int,
        nodes: Sequence[tuple[str, int]],
        out: Path,
        log: Path,
        env: dict[str, str],
        prefix: Sequence[str] = (),
        timeout: float = 2.0,
        max_seconds: float = 3600.0,
        rate: float = 0.0,
        failover: int | None = None,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
    ) -> None:
        self.name = name
        #: The node a failover client prefers (None: a plain client).
        self.failover = failover
        self.out = out
        self.log = log
        self.argv = [
            *prefix,
            sys.executable,
            "-m",
            "pairns.chaos.client",
            "--client",
            name,
            "--seed",
            str(seed),
            "--nodes",
            ",".join(f"{h}:{p}" for h, p in nodes),
            "--out",
            str(out),
            "--timeout",
            repr(float(timeout)),
            "--max-seconds",
            repr(float(max_seconds)),
            "--rate",
            repr(float(rate)),
        ]
        if failover is not None:
            self.argv += [
                "--failover",
                str(failover),
                "--failover-timeout",
                repr(float(failover_timeout)),
            ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self.lost = False

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return None if self.proc is None else self.proc.pid

    def start(self) -> int:
        """Start the process (its stderr goes to *log*); its pid. See :meth:`expect`."""
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=self.env,
            )
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def send(self, command: str) -> bool:
        """Write one command line; False if the process is gone."""
        if self.proc is None or self.proc.stdin is None or self.lost:
            return False
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def expect(self, word: str, deadline: float) -> bool:
        """Read stdout lines until one is *word*; False at EOF or past *deadline*."""
        if self.proc is None or self.proc.stdout is None or self.lost:
            return False
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                raw, _, rest = bytes(self._buffer).partition(b"\n")
                self._buffer[:] = rest
                if raw.decode("utf-8", "replace").strip() == word:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return False
            self._buffer += chunk

    def stop(self, timeout: float = 5.0) -> None:
        """``exit``, wait up to *timeout* s, then SIGKILL by pid; reap."""
        proc = self.proc
        if proc is None:
            return
        self.send("exit")
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL by pid (a client that stopped answering) and reap."""
        self.lost = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5.0)


if __name__ == "__main__":
    sys.exit(main())
