"""``pairns``: start a name server node (Pyro 3 ``ns`` flags).

The command parses its flags into a :class:`~pairns.config.Config` and runs the node;
nothing else happens here.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import trio

from pairns import structured_log
from pairns._malloc import fix_mmap_threshold
from pairns.cli._util import first_leaf
from pairns.config import (
    DEFAULT_BC_ADDR,
    DEFAULT_BC_PORT,
    DEFAULT_NS2_BC_PORT,
    DEFAULT_NS2_PORT,
    Config,
    ConfigError,
    Kind,
    Origin,
    load_config,
    read_flag,
    resolve_pairing,
)
from pairns.errors import PairnsError
from pairns.naming.tombstones import grace_from_env
from pairns.node import Node, node_guard, open_node
from pairns.security.guard import NodeGuard
from pairns.tls import node_tls
from pairns.uri import DEFAULT_NS_PORT

log = logging.getLogger("pairns")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pairns``."""
    p = argparse.ArgumentParser(
        prog="pairns",
        description="Run a pairns name server node (Pyro 3 name server semantics).",
    )
    p.add_argument("-n", dest="host", metavar="HOST", help="hostname or address to listen on")
    p.add_argument("-p", dest="port", metavar="PORT", help="TCP port (0 = any free port)")
    p.add_argument(
        "-i",
        dest="identification",
        metavar="IDENT",
        help="identification (passphrase) clients and the twin must present",
    )
    p.add_argument(
        "-k",
        dest="refuse_shutdown",
        action="store_true",
        help="refuse shutdown requests from clients",
    )
    p.add_argument(
        "-d",
        dest="database",
        metavar="DIR",
        nargs="?",
        const="",
        help="persistent mode: keep the namespace on disk in DIR "
        "(default: Pyro_NS_database in PYRO_STORAGE)",
    )
    role = p.add_mutually_exclusive_group()
    role.add_argument(
        "-1",
        dest="first",
        metavar="HOST:PORT",
        nargs="?",
        const="",
        help="paired mode, first node; the twin serves at HOST:PORT "
        "(default PYRO_NS_TWIN, else PYRO_NS2_HOSTNAME:PYRO_NS2_PORT, i.e. this host, port "
        f"{DEFAULT_NS2_PORT})",
    )
    role.add_argument(
        "-2",
        dest="second",
        metavar="HOST:PORT",
        nargs="?",
        const="",
        help=f"paired mode, second node (listens on PYRO_NS2_PORT, {DEFAULT_NS2_PORT}, unless "
        "-p); the twin serves at HOST:PORT (default PYRO_NS_TWIN, else "
        "PYRO_NS_HOSTNAME:PYRO_NS_PORT, port "
        f"{DEFAULT_NS_PORT})",
    )
    p.add_argument(
        "--ack",
        choices=["local", "twin"],
        help="acknowledge writes once durable here (local, the default) or once the "
        "connected twin has applied them too (twin) - PYRO_NS_ACK",
    )
    p.add_argument(
        "--pair-secret",
        metavar="SECRET",
        help="the secret the twin must prove on the peer link (default: the -i "
        "identification) - PYRO_NS_PAIR_SECRET; prefer the environment variable, which "
        "other users cannot see in the process list",
    )
    p.add_argument(
        "--admin-ident",
        dest="admin_identification",
        metavar="IDENT",
        help="admin identification: shutdown, resync and load must prove it "
        "(PYRO_NS_ADMIN_IDENTIFICATION; prefer the environment variable)",
    )
    p.add_argument(
        "--allow",
        action="append",
        metavar="CIDR",
        help="only these addresses or networks may connect (repeatable; PYRO_NS_ALLOW)",
    )
    p.add_argument(
        "--allow-twin",
        action="append",
        metavar="CIDR",
        help="only these addresses or networks may act as the twin (repeatable; "
        "PYRO_NS_ALLOW_TWIN)",
    )
    p.add_argument(
        "-s",
        dest="security_plugin",
        metavar="MODULE",
        help="security plugin: a module name or a .py file with accept_host, "
        "accept_connection and/or answer_location (PYRO_NS_SECURITY_PLUGIN)",
    )
    p.add_argument(
        "-b",
        dest="bc_port",
        metavar="PORT",
        help="UDP port to answer discovery requests on (default PYRO_NS_BC_PORT, "
        f"{DEFAULT_BC_PORT}; for -2 PYRO_NS2_BC_PORT, {DEFAULT_NS2_BC_PORT})",
    )
    p.add_argument(
        "-c",
        dest="bc_addr",
        metavar="ADDRESS",
        help="address the discovery responder binds to, and where the start-up check "
        "looks for another name server (default: every interface, checked at "
        f"{DEFAULT_BC_ADDR}); a node listening on loopback answers only with -c",
    )
    p.add_argument(
        "-x", dest="no_responder", action="store_true", help="do not answer discovery requests"
    )
    p.add_argument(
        "-r",
        dest="dont_look",
        action="store_true",
        help="do not look for a name server already answering on the broadcast port",
    )
    p.add_argument(
        "-m",
        dest="allow_multiple",
        action="store_true",
        help="start even when another name server answers on the broadcast port",
    )
    p.add_argument(
        "--metrics",
        metavar="ADDRESS",
        help="serve Prometheus metrics at http://ADDRESS/metrics: PORT (on 127.0.0.1), "
        "HOST:PORT or [IPV6]:PORT (default PYRO_NS_METRICS; none)",
    )
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve TLS only with this PEM certificate (the URI becomes PYROSSL://; the "
        "twin link is TLS too) - PYRO_NS_TLS_CERT",
    )
    p.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's PEM private key (default: in the --tls-cert file) "
        "- PYRO_NS_TLS_KEY",
    )
    p.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="require from clients and the twin a certificate signed by this PEM CA "
        "(mutual TLS); the twin's certificate is checked against it (default: the "
        "system's trust store) - PYRO_NS_TLS_CA",
    )
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose logging (INFO)")
    p.add_argument(
        "--log-format",
        choices=structured_log.LOG_FORMATS,
        help="human lines (the default) or one JSON object per line, for log shippers "
        "- PYRO_NS_LOG_FORMAT",
    )
    p.add_argument(
        "--log-file",
        metavar="PATH",
        help="append the log to PATH instead of stderr (reopened when rotated away) "
        "- PYRO_NS_LOG_FILE",
    )
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (PYRO_* keys)")
    return p


def config_from_args(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Parse *argv* into a :class:`Config` (defaults < TOML < environment < flags)."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.identification is not None:
        overrides["identification"] = args.identification
    if args.refuse_shutdown:
        overrides["allow_shutdown"] = False
    if args.database is not None:
        overrides["persistent"] = True
        if args.database:
            overrides["database"] = args.database
    if args.verbose:
        overrides["verbose"] = True
    # -1/-2 without an address keep PYRO_NS_TWIN (from the file or the environment).
    if args.first is not None:
        overrides["role"] = 1
        if args.first:
            overrides["twin"] = args.first
        flags["role"] = flags["twin"] = "-1"
    elif args.second is not None:
        overrides["role"] = 2
        if args.second:
            overrides["twin"] = args.second
        flags["role"] = flags["twin"] = "-2"
    if args.log_format is not None:
        overrides["log_format"] = args.log_format
    if args.log_file is not None:
        overrides["log_file"] = args.log_file
    for field in ("tls_cert", "tls_key", "tls_ca"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    if args.ack is not None:
        overrides["ack"] = args.ack
    if args.pair_secret is not None:
        overrides["pair_secret"] = args.pair_secret
    if args.admin_identification is not None:
        overrides["admin_identification"] = args.admin_identification
    if args.allow:
        overrides["allow"] = read_flag("allow", ",".join(args.allow), "--allow")
    if args.allow_twin:
        overrides["allow_twin"] = read_flag("allow_twin", ",".join(args.allow_twin), "--allow-twin")
    if args.security_plugin is not None:
        overrides["security_plugin"] = args.security_plugin
    if args.bc_port is not None:
        overrides["bc_port"] = read_flag("bc_port", args.bc_port, "-b")
    if args.bc_addr is not None:
        overrides["bc_addr"] = read_flag("bc_addr", args.bc_addr, "-c")
    if args.no_responder:
        overrides["responder"] = False
    if args.metrics is not None:
        overrides["metrics"] = read_flag("metrics", args.metrics, "--metrics")
    if args.dont_look:
        overrides["look_for_others"] = False
    if args.allow_multiple:
        overrides["allow_multiple"] = True
    # -p is read first (a bad one is reported before anything else is looked at) and
    # applied last: for a -2 node PYRO_NS_PORT names where its twin serves.
    port = None if args.port is None else read_flag("port", args.port, "-p")
    config = load_config(args.config, env=env, overrides=overrides, flags=_FLAGS | flags)
    return resolve_pairing(config, listen_port=port, listen_flag="-p")


#: The flag that sets each :class:`Config` field (for error messages).
_FLAGS = {
    "host": "-n",
    "identification": "-i",
    "allow_shutdown": "-k",
    "persistent": "-d",
    "database": "-d",
    "verbose": "-v",
    "ack": "--ack",
    "pair_secret": "--pair-secret",
    "admin_identification": "--admin-ident",
    "allow": "--allow",
    "allow_twin": "--allow-twin",
    "security_plugin": "-s",
    "bc_port": "-b",
    "bc_addr": "-c",
    "responder": "-x",
    "look_for_others": "-r",
    "allow_multiple": "-m",
    "log_format": "--log-format",
    "log_file": "--log-file",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "tls_ca": "--tls-ca",
}


#: A testing hook: seconds added to this node's wall clock (stamps, times, the skew
#: bound), so tests and the chaos suite can run a node whose clock is wrong.
CLOCK_OFFSET_ENV = "PAIRNS_CLOCK_OFFSET"


_OFFSET = Kind(
    "a finite number of seconds (negative: behind)",
    float,
    lambda value: isinstance(value, float) and math.isfinite(value),
)


def clock_offset(env: dict[str, str] | os._Environ[str] | None = None) -> float:
    """The wall-clock offset :data:`CLOCK_OFFSET_ENV` asks for (0 when unset)."""
    text = (os.environ if env is None else env).get(CLOCK_OFFSET_ENV, "")
    if not text:
        return 0.0
    value: float = _OFFSET.read(text, Origin.environment(CLOCK_OFFSET_ENV))
    return value


async def _serve(
    config: Config,
    offset: float = 0.0,
    log_handler: logging.Handler | None = None,
    guard: NodeGuard | None = None,
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        # The node owns the collector policy (pairns.node): start-up paused, then what
        # is alive frozen once it listens, as for an embedded node.
        wall_clock = None if not offset else (lambda: time.time() + offset)
        async with open_node(config, wall_clock=wall_clock, guard=guard) as node:
            if log_handler is not None:
                structured_log.set_context(log_handler, node=node.node_id)
            await _run(config, node, signals, offset)
    print("pairns name server stopped", flush=True)


async def _run(
    config: Config, node: Node, signals: AsyncIterator[int], offset: float = 0.0
) -> None:
    host, port = node.address
    mode = f"persistent ({config.database_path})" if config.persistent else "in memory"
    lines = [
        f"pairns name server listening on {host}:{port}",
        f"URI: {node.uri}",
        f"namespace: {mode}, node id {node.node_id}",
        "identification: required"
        if config.identification
        else "identification: NOT required (anyone may connect; use -i to require one)",
        _shutdown_line(config),
        _tls_line(config),
        *_guard_lines(config),
        _pairing_line(config),
        _discovery_line(config, node),
        _metrics_line(node),
        *_peer_trust_lines(config),
        *(
            [f"wall clock: offset by {offset:+g} s ({CLOCK_OFFSET_ENV}, a testing hook)"]
            if offset
            else []
        ),
        f"URI file: {config.uri_path.resolve()}",
    ]
    # The banner goes to stdout only: the log handler (stderr, with -v) would repeat it.
    for line in lines:
        print(line, flush=True)
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                node.shutdown()
                return

        nursery.start_soon(on_signal)
        await node.wait_stopped()
        nursery.cancel_scope.cancel()


def _shutdown_line(config: Config) -> str:
    if not config.allow_shutdown:
        return "shutdown requests: refused (-k)"
    if config.admin_identification is not None:
        return "shutdown requests: allowed with the admin identification"
    return "shutdown requests: allowed"


def _guard_lines(config: Config) -> list[str]:
    lines = []
    if config.admin_identification is not None:
        lines.append("admin calls (shutdown, resync, load): need the admin identification")
    if config.allow:
        lines.append(f"connections allowed from: {', '.join(config.allow)}")
    if config.allow_twin:
        lines.append(f"twin allowed from: {', '.join(config.allow_twin)}")
    if config.security_plugin:
        lines.append(f"security plugin: {config.security_plugin}")
    return lines


def _discovery_line(config: Config, node: Node) -> str:
    if node.responders:
        places = ", ".join(r.describe() for r in node.responders)
        return f"discovery: answering 'location' on {places}"
    if not config.responder:
        return "discovery: off (-x)"
    return "discovery: off (listening on loopback only; -c ADDRESS answers there)"


def _tls_line(config: Config) -> str:
    if config.tls_cert is None:
        return "TLS: off (plain TCP; --tls-cert FILE serves TLS)"
    clients = (
        "clients and the twin must present a certificate signed by --tls-ca"
        if config.tls_ca is not None
        else "no client certificate required"
    )
    twin = "" if config.role == 0 else "; the twin link is TLS"
    return f"TLS: on ({clients}{twin})"


def _metrics_line(node: Node) -> str:
    if node.metrics is None or node.metrics.address is None:
        return "metrics: off (--metrics HOST:PORT serves them)"
    host, port = node.metrics.address
    shown = f"[{host}]" if ":" in host else host
    return f"metrics: http://{shown}:{port}/metrics"


def _pairing_line(config: Config) -> str:
    if config.role == 0:
        return "pairing: single node (use -1/-2 for a pair)"
    return (
        f"pairing: -{config.role} node, twin at {config.twin}, ack {config.ack}, "
        f"peer timeout {config.peer_timeout:g} s"
    )


def _peer_trust_lines(config: Config) -> list[str]:
    if config.role == 0:
        return []
    if config.pair_secret is not None:
        return ["peer link: the twin must prove the pair secret (PYRO_NS_PAIR_SECRET)"]
    if config.identification is not None:
        return ["peer link: the twin must prove the identification"]
    # No secret: the node itself warns (for embedded nodes too) that anyone who can
    # connect from the twin's address is trusted; the banner would say it a second time.
    return []


def configure_logging(config: Config) -> logging.Handler:
    """Install the log handler *config* asks for (``-v``, ``--log-format``,
    ``--log-file``); :class:`ConfigError` naming the setting if the file cannot be
    opened."""
    try:
        return structured_log.configure(
            log_format=config.log_format,
            log_file=config.log_file,
            level=logging.INFO if config.verbose else logging.WARNING,
        )
    except OSError as exc:
        origin = config.origin_of("log_file")
        raise ConfigError(
            f"{origin.label}: cannot open the log file {config.log_file}: "
            f"{exc.strerror or exc} (from {origin.source})"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pairns``; returns the exit code."""
    try:
        config = config_from_args(argv)
        offset = clock_offset()
        node_tls(config)  # unreadable or mismatched certificate files: exit 2, now
        guard = node_guard(config)  # imports the -s plugin: a bad one is exit code 2
        grace_from_env(paired=config.role != 0)  # PAIRNS_TOMBSTONE_GRACE: exit code 2
    except ConfigError as exc:
        print(f"pairns: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        handler = configure_logging(config)
    except ConfigError as exc:
        print(f"pairns: configuration error: {exc}", file=sys.stderr)
        return 2
    # Large blocks freed and made again (the request-id table's) stay out of the heap.
    fix_mmap_threshold()
    try:
        trio.run(_serve, config, offset, handler, guard)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        cause = first_leaf(exc)
        if isinstance(cause, PairnsError):
            print(f"pairns: {cause}", file=sys.stderr)
            return 1
        if isinstance(cause, OSError):
            print(f"pairns: cannot start: {cause}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
