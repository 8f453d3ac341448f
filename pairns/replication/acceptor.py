"""The answering side of the peer link: :class:`PeerEndpoint` and :class:`Acceptor`.

Both nodes serve the endpoint (as :data:`PEER_OBJECT_ID`): it answers challenges and
hellos, proving who the caller is (see :mod:`pairns.replication.auth`). On the ``-1``
node a hello from the dialling twin starts a :class:`Session`: its link then takes the
twin's pushes and answers its polls, until it fails or the twin reconnects. On the
``-2`` node a hello is always a probe: it only tells the dialler the twin is back.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from pairns import _collector as collector
from pairns.errors import NamingError, PairnsError
from pairns.replication import auth
from pairns.replication.messages import Batch, Hello
from pairns.replication.pairing import IDENT_MISMATCH, LIVE_STATES, Pairing, Refused
from pairns.replication.session import Link, LinkFailed, link_error
from pairns.replication.state import LinkEvent, LinkState
from pairns.rpc.context import ConnectionInfo, current_connection

__all__ = ["PEER_OBJECT_ID", "Acceptor", "PeerEndpoint", "Session"]

log = logging.getLogger("pairns.replication")

#: The daemon object id of the peer endpoint (a sibling of ``Pyro.NameServer``).
PEER_OBJECT_ID: Final = "Pyro.NameServer.Peer"

#: Key of the per-connection state the peer endpoint keeps (ConnectionInfo.attributes).
_AUTH_KEY: Final = "pairns.twin"


@attrs.define(eq=False)
class Session:
    """The ``-1`` side of one connection: the link plus the poll handshake."""

    id: str
    link: Link
    polling: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)


class Acceptor:
    """Answers the twin's calls; on the ``-1`` node, runs the session they start.

    *on_probed* is called when the twin reached this ``-2`` node (its dialler then
    dials at once).
    """

    def __init__(
        self,
        pairing: Pairing,
        *,
        pair_key: bytes | None,
        on_probed: Callable[[], None] | None = None,
        twin_guard: Callable[[tuple[str, int] | None], bool] | None = None,
    ) -> None:
        self.pairing = pairing
        self.pair_key = pair_key
        self._on_probed = on_probed
        #: ``--allow-twin``: may a connection from this address act as the twin?
        self._twin_guard = twin_guard
        self._session: Session | None = None
        self._new_session = trio.Event()
        # Addresses the twin may connect from when there is no secret to prove.
        self._twin_ips: frozenset[str] | None = None

    def has_session(self) -> bool:
        """True while a session runs (the twin is linked, or being linked)."""
        return self._session is not None and not self._session.done.is_set()

    # -- -1: run sessions ------------------------------------------------------------

    async def run(self) -> None:
        """Run each session the twin starts, one at a time, until cancelled."""
        while True:
            session = self._session
            if session is None or session.done.is_set():
                self._new_session = trio.Event()
                await self._new_session.wait()
                continue
            await self._run_session(session)

    async def _run_session(self, session: Session) -> None:
        pairing = self.pairing
        link = session.link
        try:
            async with trio.open_nursery() as nursery:
                link.cancel_scope = nursery.cancel_scope
                nursery.start_soon(link.watchdog)
                nursery.start_soon(link.persister)
        except BaseExceptionGroup as group:
            error = link_error(group)
            link.error = link.error or str(error)
            if not isinstance(error, PairnsError):
                log.error("peer link failed unexpectedly", exc_info=error)
        finally:
            await pairing.end_link(link)
            session.done.set()
        # Only the current session's end is the link's news; a replaced one's is not
        # (the hello that replaced it reported it).
        if self._session is session:
            self._session = None
            pairing.down(link.error or "link closed", 1)
            pairing.fire(LinkEvent.DIAL, "waiting for the twin to reconnect")

    # -- hellos ----------------------------------------------------------------------

    async def accept_hello(self, info: ConnectionInfo, raw: Any, proof: Any) -> dict[str, Any]:
        """The ``hello`` call: start a session (or answer a probe)."""
        pairing = self.pairing
        try:
            theirs = Hello.from_wire(raw)
        except ValueError as exc:
            raise NamingError(f"refused: invalid hello ({exc})") from None
        try:
            pairing.check_twin(theirs)
        except Refused as exc:
            pairing.refuse_other(exc)
            raise NamingError(f"refused: {exc}") from None
        await self._prove_caller(info, proof)
        if theirs.probe or pairing.role == 2:
            if pairing.role == 2 and self._on_probed is not None:
                self._on_probed()  # the -1 node reached us: dial it now
            return {"hello": pairing.my_hello(full=False, probe=True).to_wire(), "session": ""}
        old = self._session
        if old is not None:
            old.link.fail("the twin reconnected")
            with trio.move_on_after(pairing.peer_timeout):
                await old.done.wait()
        newer = self._session
        if newer is not None and newer is not old:
            newer.link.fail("the twin reconnected")  # another hello got in meanwhile
        full = pairing.full_requested or theirs.full or pairing.full_reason(theirs) is not None
        pairing.full_requested = False
        their_applied = 0 if full else theirs.applied
        if pairing.machine.state in LIVE_STATES:
            # The link this hello replaces has not reported its end (its session did
            # not finish within the peer timeout): report it now, as this one starts.
            pairing.fire(LinkEvent.FAILED, "the twin reconnected")
        if pairing.machine.state is not LinkState.CONNECTING:
            pairing.fire(LinkEvent.DIAL, "the twin is connecting")
        pairing.fire(LinkEvent.CONNECTED, "the twin connected")
        # The claim this node makes on the twin's feed names the twin's run it was
        # reached in, not the run that is dialling now (start_link records that one).
        claimed_in = pairing.stored.twin_incarnation
        link = pairing.start_link(theirs, their_applied=their_applied, full=full)
        mine = attrs.evolve(pairing.my_hello(full=full, probe=False), expect_incarnation=claimed_in)
        session = Session(uuid.uuid4().hex, link)
        self._session = session
        self._new_session.set()
        return {"hello": mine.to_wire(), "session": session.id}

    # -- push and poll ---------------------------------------------------------------

    def _current(self, session_id: str) -> Session:
        session = self._session
        if session is None or session.id != session_id or session.link.closed:
            raise NamingError("peer session closed; reconnect")
        return session

    def on_push(self, session_id: str, raw: Any) -> None:
        """A batch pushed by the twin on *session_id* (a stale session's is dropped)."""
        try:
            session = self._current(session_id)
        except NamingError:
            return  # a stale connection: the dialler finds out on its next poll
        link = session.link
        try:
            with collector.paused():
                batch = Batch.from_wire(raw)
                link.receive(batch)
        except (LinkFailed, ValueError) as exc:
            link.fail(f"bad batch from the twin: {exc}")
            return
        link.hold_gc(batch.more)
        self.pairing.last_contact = trio.current_time()

    async def on_poll(self, session_id: str, ack: Any, wait: Any) -> dict[str, Any]:
        """The twin's poll: its ack, then the next batch after at most *wait* seconds."""
        pairing = self.pairing
        session = self._current(session_id)
        link = session.link
        if session.polling:
            raise NamingError("one poll at a time")
        if not isinstance(ack, int) or not isinstance(wait, int | float):
            raise NamingError("invalid poll")
        session.polling = True
        try:
            link.contact()
            pairing.last_contact = trio.current_time()
            if link.positions.on_ack(ack):
                pairing.acked_moved(link)
            wait = min(max(0.0, float(wait)), pairing.peer_timeout)
            try:
                with trio.move_on_after(wait):
                    while not link.has_news() and not link.closed:
                        await pairing.kicked()
            except trio.Cancelled:
                # The daemon cancels calls whose connection closed: the twin is gone.
                link.fail("the twin closed the connection")
                raise
            if link.closed:
                raise NamingError("peer session closed; reconnect")
            link.contact()
            with collector.paused():  # garbage once encoded (see the note in session.py)
                return link.next_batch().to_wire()
        finally:
            session.polling = False

    # -- proving who the twin is (see pairns.replication.auth) -------------------------

    def answer_challenge(self, info: ConnectionInfo, nonce: Any, has_secret: Any) -> dict[str, Any]:
        """The ``challenge`` call: a fresh nonce for this connection, and this node's
        proof of the secret."""
        self._check_twin_address(info)
        try:
            client_nonce = auth.parse_nonce(nonce)
        except ValueError:
            raise NamingError("refused: invalid challenge") from None
        key = self.pair_key
        if bool(has_secret) != (key is not None):
            mine, theirs = ("none", "one") if key is None else ("one", "none")
            refusal = Refused(
                IDENT_MISMATCH,
                f"this node has {mine} identification (or pair secret), the twin {theirs}",
            )
            self._refuse_caller(refusal)
            raise NamingError(f"refused: {refusal}")
        server_nonce = auth.new_nonce()
        info.attributes[_AUTH_KEY] = {"client": client_nonce, "server": server_nonce}
        proof = None
        if key is not None:
            proof = auth.server_proof(key, self.pairing.role, client_nonce, server_nonce)
        return {"nonce": server_nonce, "proof": proof, "has_secret": key is not None}

    def _check_twin_address(self, info: ConnectionInfo) -> None:
        """Refuse a caller whose address ``--allow-twin`` does not hold (logged by the
        guard, counted here)."""
        if self._twin_guard is not None and not self._twin_guard(info.peer):
            self.pairing.counters.refused_peer_calls += 1
            raise NamingError("refused: this address may not act as the twin (--allow-twin)")

    async def _prove_caller(self, info: ConnectionInfo, proof: Any) -> None:
        """Mark *info*'s connection as the twin's, or raise the refusal."""
        self._check_twin_address(info)
        state = info.attributes.get(_AUTH_KEY)
        key = self.pair_key
        role = self.pairing.role
        if key is not None:
            if not isinstance(state, dict) or "server" not in state:
                raise NamingError("refused: twin proof failed: no challenge on this connection")
            expected = auth.client_proof(key, 3 - role, state["server"], state["client"])
            if not auth.proofs_equal(expected, proof):
                refusal = Refused(
                    "twin proof failed",
                    f"a connection from {_address_text(info.peer)} does not know the pair's secret",
                )
                self._refuse_caller(refusal)
                raise NamingError(f"refused: {refusal}")
        elif not await self._from_twin_address(info):
            self.pairing.counters.refused_peer_calls += 1
            host = self.pairing.twin[0]
            log.warning(
                "refused a peer hello from %s: without an identification or pair secret, "
                "only the twin's address (%s) may pair",
                _address_text(info.peer),
                host,
            )
            raise NamingError(
                f"refused: not the twin's address (without a pair secret only {host} may pair)"
            )
        info.attributes[_AUTH_KEY] = {"proven": True}

    def _refuse_caller(self, refusal: Refused) -> None:
        """A connection failed to prove it is the twin: counted, and shown as the link's
        state unless a link is live (see :meth:`Pairing.refuse_other`)."""
        self.pairing.counters.refused_peer_calls += 1
        self.pairing.refuse_other(refusal)

    def proven(self, info: ConnectionInfo, what: str) -> bool:
        """True if *info*'s connection proved it is the twin (else counted, logged)."""
        state = info.attributes.get(_AUTH_KEY)
        if isinstance(state, dict) and state.get("proven") is True:
            return True
        self.pairing.counters.refused_peer_calls += 1
        log.warning(
            "refused a peer %s from %s: the connection has not proved it is the twin",
            what,
            _address_text(info.peer),
        )
        return False

    async def _from_twin_address(self, info: ConnectionInfo) -> bool:
        if info.peer is None:
            return False
        if self._twin_ips is None:
            host = self.pairing.twin[0]
            try:
                found = await trio.socket.getaddrinfo(host, None)
            except OSError as exc:
                log.warning("cannot resolve the twin's host %s: %s", host, exc)
                return False
            self._twin_ips = frozenset(_plain_ip(str(item[4][0])) for item in found)
        return _plain_ip(info.peer[0]) in self._twin_ips


class PeerEndpoint:
    """The remote object the twin calls (served as :data:`PEER_OBJECT_ID`, registered
    ``with_connection=True``: it judges each call by the connection it came on).

    A connection reaches ``push`` and ``poll`` only once it proved it is the twin:
    ``challenge`` then ``hello`` with the proof (see :mod:`pairns.replication.auth`),
    or, in a pair with no secret at all, a ``hello`` from the twin's own address.
    """

    def __init__(self, acceptor: Acceptor) -> None:
        self._acceptor = acceptor

    def challenge(self, nonce: Any, has_secret: Any) -> dict[str, Any]:
        """First step of the proof: returns this node's nonce and its own proof."""
        return self._acceptor.answer_challenge(_connection(), nonce, has_secret)

    async def hello(self, hello: Any, proof: Any = None) -> dict[str, Any]:
        """Start a link (or answer a probe); returns ``{"hello": ..., "session": id}``."""
        return await self._acceptor.accept_hello(_connection(), hello, proof)

    def push(self, session: str, batch: Any) -> None:
        """A batch from the dialling twin (oneway; applied in arrival order)."""
        if self._acceptor.proven(_connection(), "push"):
            self._acceptor.on_push(session, batch)

    async def poll(self, session: str, ack: int, wait: float) -> dict[str, Any]:
        """The next batch for the dialling twin, after at most *wait* seconds."""
        if not self._acceptor.proven(_connection(), "poll"):
            raise NamingError("refused: this connection has not proved it is the twin")
        return await self._acceptor.on_poll(session, ack, wait)


def _connection() -> ConnectionInfo:
    info = current_connection.get()
    if info is None:  # served without with_connection=True: refuse everything
        return ConnectionInfo(None, False)
    return info


def _plain_ip(address: str) -> str:
    """*address* without an IPv4-mapped IPv6 prefix or a zone (for comparing)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _address_text(peer: tuple[str, int] | None) -> str:
    if peer is None:
        return "an unknown address"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
