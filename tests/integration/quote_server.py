"""A user-object server for the integration tests: the Pyro manual's quote example,
plus a slow method, a oneway one and a failing one.

``python quote_server.py --ns-port N --name :Test.quotegen [--port P] [--persistent]``
prints ``URI: PYRO://...`` once it serves, then serves until its ``control`` object's
``stop()`` is called (or it is killed). Loopback only.
"""

from __future__ import annotations

import argparse
import threading
import time

import pairns

HOST = "127.0.0.1"


class QuoteGen:
    """The served object."""

    def __init__(self) -> None:
        self.memory: list[str] = []
        self.released = threading.Event()

    def getQuote(self) -> str:
        return "Give me a lever long enough and I shall move the world."

    def slow(self) -> str:
        """Blocks its worker thread until release() is called (at most 10 s)."""
        return "slow done" if self.released.wait(10.0) else "never released"

    def release(self) -> None:
        self.released.set()

    @pairns.oneway
    def remember(self, text: str, seconds: float) -> None:
        time.sleep(min(float(seconds), 10.0))
        self.memory.append(text)

    def recalled(self) -> list[str]:
        return list(self.memory)

    def fail(self) -> None:
        raise ValueError("no quote today")


class Control:
    """Stops the server the way a program would: shutdown() from a remote call."""

    def __init__(self, daemon: pairns.Daemon) -> None:
        self.daemon = daemon

    @pairns.oneway
    def stop(self) -> None:
        self.daemon.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns-port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--persistent", action="store_true")
    args = parser.parse_args()
    ns = pairns.NameServerLocator().getNS(HOST, args.ns_port, timeout=10)
    daemon = pairns.Daemon(HOST, args.port, ns=ns)
    quotes = QuoteGen()
    if args.persistent:
        uri = daemon.connectPersistent(quotes, args.name)
    else:
        uri = daemon.connect(quotes, args.name)
    daemon.register(Control(daemon), "control", threaded=True)
    print(f"URI: {uri}", flush=True)
    try:
        daemon.requestLoop()
    finally:
        daemon.shutdown()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
