"""The calling side of the peer link: the ``-2`` node dials, the ``-1`` node probes.

* :class:`Dialer` - the ``-2`` node's loop: dial the twin, prove who it is, exchange
  hellos, then push its feed and poll the twin's over the one connection until that
  fails; then again, with backoff (at most 5 s).
* :class:`Prober` - while unpaired, the ``-1`` node checks its twin's address with a
  short ``hello`` (``probe``), only to report a twin it cannot pair with.
* :func:`call_hello` - the proof (see :mod:`pairns.replication.auth`) and the hello.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Final

import trio

from pairns import _collector as collector
from pairns.errors import (
    ConnectionClosedError,
    ConnectionDeniedError,
    NamingError,
    PairnsError,
    StorageError,
    TLSError,
)
from pairns.replication import auth
from pairns.replication.acceptor import PEER_OBJECT_ID, Acceptor
from pairns.replication.messages import Batch, Hello
from pairns.replication.pairing import IDENT_MISMATCH, Pairing, Refused
from pairns.replication.session import Link, LinkFailed, link_error
from pairns.replication.state import Backoff, LinkEvent, LinkState
from pairns.rpc import AsyncProxy

__all__ = ["PROBE_MAX_BACKOFF", "Dialer", "Prober", "call_hello", "parse_answer"]

log = logging.getLogger("pairns.replication")

#: What status shows when the twin link's TLS connection fails (the detail says why:
#: the twin's certificate, or this node's, was refused).
TLS_FAILED: Final = "TLS failed"

#: Longest pause of the ``-1`` node's probes of an absent twin: they find a twin that
#: came back (and wake its dialling) within about this long.
PROBE_MAX_BACKOFF: Final = 1.0


class Dialer:
    """The ``-2`` node's side of the link: dials, and runs each connection it gets."""

    def __init__(
        self,
        pairing: Pairing,
        *,
        identification: str | None,
        pair_key: bytes | None,
        max_frame_size: int | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.pairing = pairing
        self.identification = identification
        self.pair_key = pair_key
        self.max_frame_size = max_frame_size
        #: The twin is dialled over TLS with this (None: plain TCP).
        self.ssl_context = ssl_context
        # Set by a probe from the -1 node: dial at once instead of after the backoff
        # (the twin is reachable again).
        self._dial_now = trio.Event()

    def wake(self) -> None:
        """The twin reached this node: dial it now rather than after the backoff."""
        if not self._dial_now.is_set():
            self._dial_now.set()

    async def run(self) -> None:
        """Dial until cancelled; each failure shows as the link's state."""
        pairing = self.pairing
        attempts = 0
        while True:
            attempts += 1
            if pairing.machine.state is not LinkState.REFUSED:  # shows until it ends
                pairing.fire(LinkEvent.DIAL, "dialling the twin")
            try:
                await self.connect_and_run()
            except Refused as exc:
                pairing.refuse(exc)
            except (LinkFailed, ConnectionClosedError, NamingError, StorageError) as exc:
                pairing.down(str(exc), attempts)
            except Exception as exc:
                log.exception("peer link failed unexpectedly")
                pairing.down(f"internal error: {exc!r}", attempts)
            else:  # pragma: no cover - connect_and_run only returns by raising
                pairing.down("link closed", attempts)
            if pairing.full_requested:
                continue  # resync() asked: reconnect at once
            self._dial_now = trio.Event()
            with trio.move_on_after(pairing.backoff.next()):
                await self._dial_now.wait()  # a probe from the twin: it is back

    async def connect_and_run(self) -> None:
        """One connection: hellos, then the link until it fails (always raises)."""
        pairing = self.pairing
        host, port = pairing.twin
        proxy = AsyncProxy.for_address(
            host,
            port,
            PEER_OBJECT_ID,
            identification=self.identification,
            timeout=pairing.peer_timeout + pairing.heartbeat,
            max_frame_size=self.max_frame_size,
            ssl_context=self.ssl_context,
        )
        async with proxy:
            full = pairing.full_requested
            hello = pairing.my_hello(full=full, probe=False)
            answer = await call_hello(proxy, hello, pairing, self.pair_key)
            pairing.fire(LinkEvent.CONNECTED, "the twin answered")
            theirs, session = parse_answer(answer)
            pairing.check_twin(theirs)
            reason = pairing.full_reason(theirs)
            if not theirs.full and reason is not None:
                # The -1 node accepted an incremental resync, but from this side it must
                # be a full one (say its claim on this node's feed is one this node's
                # history cannot have given): ask again, in full, both ways.
                pairing.full_requested = True
                raise LinkFailed(f"a full resync is needed ({reason}); asking for one")
            pairing.full_requested = False
            full = full or theirs.full
            link = pairing.start_link(theirs, their_applied=theirs.applied, full=full)
            try:
                async with trio.open_nursery() as nursery:
                    link.cancel_scope = nursery.cancel_scope
                    nursery.start_soon(self._pusher, proxy, session, link)
                    nursery.start_soon(self._poller, proxy, session, link)
                    nursery.start_soon(link.watchdog)
                    nursery.start_soon(link.persister)
            except BaseExceptionGroup as group:
                raise link_error(group) from None
            finally:
                await pairing.end_link(link)
            raise LinkFailed(link.error or "link closed")

    async def _pusher(self, proxy: AsyncProxy, session: str, link: Link) -> None:
        heartbeat = self.pairing.heartbeat
        while True:
            await link.wait_news(heartbeat)
            _still_connected(proxy)
            with collector.paused():  # garbage once encoded (see the note in session.py)
                batch = link.next_batch()
                wire = batch.to_wire()
            await proxy.oneway("push", session, wire)
            if batch.more:
                await trio.lowlevel.checkpoint()

    async def _poller(self, proxy: AsyncProxy, session: str, link: Link) -> None:
        """Fetch the -1 node's batches; the next poll is in flight while one is merged.

        Batches still apply strictly in order (one merger, a channel of one): the
        overlap only lets the twin build batch k+1 while this node merges batch k.
        """
        pairing = self.pairing
        send, receive = trio.open_memory_channel[Any](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._merger, receive, link)
            async with send:
                while True:
                    _still_connected(proxy)
                    try:
                        reply = await proxy.call(
                            "poll", session, link.positions.applied, pairing.heartbeat
                        )
                    except NamingError as exc:
                        raise LinkFailed(f"the twin closed the link: {exc}") from None
                    pairing.last_contact = trio.current_time()
                    link.contact()
                    await send.send(reply)

    @staticmethod
    async def _merger(receive: trio.MemoryReceiveChannel[Any], link: Link) -> None:
        async with receive:
            async for reply in receive:
                with collector.paused():
                    try:
                        batch = Batch.from_wire(reply)
                    except ValueError as exc:
                        raise LinkFailed(f"the twin sent an invalid batch: {exc}") from None
                    link.receive(batch)
                link.hold_gc(batch.more)
                await trio.lowlevel.checkpoint()


class Prober:
    """The ``-1`` node's probes of its twin's address while no session runs."""

    def __init__(
        self,
        pairing: Pairing,
        acceptor: Acceptor,
        *,
        identification: str | None,
        pair_key: bytes | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.pairing = pairing
        self.acceptor = acceptor
        self.identification = identification
        self.pair_key = pair_key
        self.ssl_context = ssl_context

    async def run(self) -> None:
        """While unpaired, check the twin's address: report mismatches, log progress."""
        pairing = self.pairing
        backoff = Backoff(initial=0.25, maximum=PROBE_MAX_BACKOFF)
        while True:
            await trio.sleep(backoff.next())
            if self.acceptor.has_session():
                backoff.reset()
                continue
            host, port = pairing.twin
            proxy = AsyncProxy.for_address(
                host,
                port,
                PEER_OBJECT_ID,
                identification=self.identification,
                timeout=pairing.peer_timeout,
                ssl_context=self.ssl_context,
            )
            try:
                async with proxy:
                    answer = await call_hello(
                        proxy, pairing.my_hello(full=False, probe=True), pairing, self.pair_key
                    )
                theirs, _ = parse_answer(answer)
                pairing.check_twin(theirs)
            except Refused as exc:
                # A session that started meanwhile is the news, not this probe.
                pairing.refuse_other(exc)
            except (PairnsError, ValueError) as exc:
                if pairing.machine.state is LinkState.REFUSED:
                    continue
                log.info("still looking for the twin at %s: %s", pairing.twin_address, exc)
            else:
                if pairing.machine.state is LinkState.REFUSED:
                    pairing.fire(LinkEvent.DIAL, "the twin can now be paired with")


async def call_hello(proxy: AsyncProxy, hello: Hello, pairing: Pairing, key: bytes | None) -> Any:
    """Prove this node is the twin, then send *hello*; the answer as it came.

    Raises :class:`Refused` for every reason pairing is impossible (identification
    or secret mismatch, a twin that cannot prove the secret, its refusal).
    """
    nonce = auth.new_nonce()
    try:
        answer = await proxy.call("challenge", nonce, key is not None)
        their_nonce, their_proof, their_secret = auth.parse_challenge_answer(answer)
        if key is not None and not their_secret:
            raise Refused(
                IDENT_MISMATCH,
                "this node has an identification (or pair secret) and the twin none",
            )
        if key is None and their_secret:
            raise Refused(
                IDENT_MISMATCH,
                "the twin has an identification (or pair secret) and this node none",
            )
        proof = None
        if key is not None:
            expected = auth.server_proof(key, 3 - pairing.role, nonce, their_nonce)
            if not auth.proofs_equal(expected, their_proof):
                raise Refused(
                    "twin proof failed",
                    f"the node at {pairing.twin_address} does not know the pair's secret "
                    "(a different -i or PYRO_NS_PAIR_SECRET, or not the twin)",
                )
            proof = auth.client_proof(key, pairing.role, their_nonce, nonce)
        return await proxy.call("hello", hello.to_wire(), proof)
    except TLSError as exc:
        raise Refused(TLS_FAILED, str(exc)) from None
    except ConnectionDeniedError as exc:
        raise Refused(IDENT_MISMATCH, str(exc)) from None
    except NamingError as exc:
        raise _refusal(exc) from None
    except ValueError as exc:
        raise LinkFailed(f"invalid answer from the twin: {exc}") from None


def parse_answer(answer: Any) -> tuple[Hello, str]:
    """The twin's answer to a hello: its hello and the session id."""
    if not isinstance(answer, dict) or not isinstance(answer.get("session"), str):
        raise LinkFailed(f"invalid hello answer: {answer!r}")
    try:
        return Hello.from_wire(answer.get("hello")), answer["session"]
    except ValueError as exc:
        raise LinkFailed(f"invalid hello answer: {exc}") from None


def _still_connected(proxy: AsyncProxy) -> None:
    """Fail the link rather than let the proxy reconnect: a link is one connection (the
    twin proved itself on it), and a new one would be refused anyway."""
    if not proxy.connected:
        raise LinkFailed("the connection to the twin was lost")


def _refusal(exc: NamingError) -> Refused:
    """The twin's refusal of our hello (``"refused: <reason>: <detail>"``) as a value."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if text.startswith("refused: "):
        reason, _, detail = text[len("refused: ") :].partition(": ")
        return Refused(reason, detail)
    return Refused("refused by the twin", text)
