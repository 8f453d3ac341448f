"""``make fuzz``: a coverage-guided campaign over the wire codec with atheris.

Each input is fed to a server :class:`~pairns.wire.Connection` twice: as the bytes that
follow its challenge (the handshake, what an unauthenticated peer reaches) and as the
bytes that follow a completed handshake (frames, the message layer); the first byte
of the input picks the chunking. ``next_event`` may raise ``RemoteProtocolError`` and
nothing else; any other exception, a hang or a crash is a finding (atheris saves the
input). The corpus starts from the live fuzz test's generator
(``pairns.testing.wirefuzz``). Run: ``make fuzz`` (``FUZZ_RUNS=N``, ``FUZZ_SECONDS=N``).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pairns.errors import RemoteProtocolError
    from pairns.testing.wirefuzz import fuzz_frame, valid_frame
    from pairns.wire import (
        CLIENT,
        NEED_DATA,
        PAUSED,
        SERVER,
        Connection,
        ConnectionClosed,
        Request,
        State,
    )

KEY = b"fuzz key"


def _randomness(n: int) -> bytes:
    return b"\x01" * n


def _opened_server() -> Connection:
    server = Connection(SERVER, identification=KEY, randomness=_randomness)
    challenge = server.send(server.challenge())
    client = Connection(CLIENT, identification=KEY, randomness=_randomness)
    client.receive_data(challenge)
    client.next_event()
    server.receive_data(client.send(client.response()))
    server.next_event()
    server.send(server.verdict())
    return server


def _fresh_server() -> Connection:
    server = Connection(SERVER, identification=KEY, randomness=_randomness)
    server.send(server.challenge())
    return server


def _drive(server: Connection, data: bytes, step: int) -> None:
    try:
        for i in range(0, len(data), step):
            server.receive_data(data[i : i + step])
            for _ in range(10_000):
                event = server.next_event()
                if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
                    break
                if type(event) is Request and server.state is State.OPEN:
                    server.reply(event.corr_id, None)
            else:
                raise AssertionError("next_event never stopped")
            if server.state in (State.CLOSED, State.ERROR):
                return
        server.receive_data(b"")
        server.next_event()
    except RemoteProtocolError:
        assert server.state is State.ERROR


def test_one_input(data: bytes) -> None:
    """The fuzz target."""
    if not data:
        return
    step = max(1, data[0] % 64) if data[0] >= 64 else len(data)
    body = data[1:]
    _drive(_fresh_server(), body, step)
    _drive(_opened_server(), body, step)


def seed_corpus(directory: Path, count: int = 200) -> None:
    """Write *count* inputs from the live fuzz generator (once)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    rng = random.Random(22)
    for i in range(count):
        frame = valid_frame(rng) if i % 3 == 0 else fuzz_frame(rng)
        (directory / f"seed-{i:04d}").write_bytes(bytes([rng.randrange(256)]) + frame)


def main() -> None:
    corpus = Path(os.environ.get("FUZZ_CORPUS", ".fuzz-corpus/codec"))
    seed_corpus(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
