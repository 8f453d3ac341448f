"""``pairns-ctl``: control a running name server (Pyro 3 ``nsc`` commands).

Exit codes: 0 success, 1 naming error, 2 usage or configuration error (found before
anything is dialled), 3 cannot connect or denied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

import attrs

from pairns.config import CONNECT_HOST, CONNECT_PORT, GROUP, TIMEOUT, ConfigError, Origin
from pairns.errors import (
    ConnectionClosedError,
    ConnectionDeniedError,
    NamingError,
    PairnsError,
    ProtocolError,
    URIError,
)
from pairns.naming.locator import NameServerLocator
from pairns.naming.proxy import DEFAULT_TIMEOUT, NameServerProxy, failover_timeout_setting
from pairns.uri import DEFAULT_NS_PORT

EXIT_OK, EXIT_NAMING, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


class UsageError(Exception):
    """The command line is wrong (exit code 2)."""


class Output:
    """Writes results as human text or, with ``--json``, one JSON document."""

    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json = as_json
        self.stream = stream

    def result(self, human: str | list[str], data: Any) -> None:
        """Print *human* lines, or *data* as JSON."""
        if self.as_json:
            print(json.dumps(data, indent=None, sort_keys=True), file=self.stream)
        else:
            lines = [human] if isinstance(human, str) else human
            for line in lines:
                print(line, file=self.stream)


def _parse_meta(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def iter_dump(ns: NameServerProxy, page: int = 10_000) -> Iterator[dict[str, Any]]:
    """Every entry of the namespace, page by page, in name order."""
    after: str | None = None
    while True:
        chunk = ns.dump(after, page)
        yield from chunk["entries"]
        after = chunk["next"]
        if after is None:
            return


def cmd_ping(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.ping()
    out.result(f"name server at {ns.host}:{ns.port} is alive", {"alive": True})
    return EXIT_OK


def cmd_list(ns: NameServerProxy, args: list[str], out: Output) -> int:
    group = ns.fullName(args[0] if args else "")
    items = ns.list(group)
    human = [f"--- {group} ---"] + [
        f"{name} ({'group' if kind == 0 else 'object'})" for name, kind in items
    ]
    out.result(human, [{"name": n, "kind": "group" if k == 0 else "object"} for n, k in items])
    return EXIT_OK


def cmd_listall(ns: NameServerProxy, args: list[str], out: Output) -> int:
    entries = list(iter_dump(ns))
    human = [
        f"{e['name']} --> {e['uri']}" if e["kind"] == "object" else f"{e['name']} (group)"
        for e in entries
    ]
    out.result(human, entries)
    return EXIT_OK


def cmd_resolve(ns: NameServerProxy, args: list[str], out: Output) -> int:
    uri = ns.resolve(args[0])
    out.result(str(uri), {"name": ns.fullName(args[0]), "uri": str(uri)})
    return EXIT_OK


def cmd_register(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.register(args[0], args[1])
    out.result(f"registered {ns.fullName(args[0])}", {"registered": ns.fullName(args[0])})
    return EXIT_OK


def cmd_remove(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.unregister(args[0])
    out.result(f"removed {ns.fullName(args[0])}", {"removed": ns.fullName(args[0])})
    return EXIT_OK


def cmd_creategroup(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.createGroup(args[0])
    out.result(f"created group {ns.fullName(args[0])}", {"created": ns.fullName(args[0])})
    return EXIT_OK


def cmd_deletegroup(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.deleteGroup(args[0])
    out.result(f"deleted group {ns.fullName(args[0])}", {"deleted": ns.fullName(args[0])})
    return EXIT_OK


def cmd_showmeta(ns: NameServerProxy, args: list[str], out: Output) -> int:
    name = ns.fullName(args[0])
    meta = ns.getMeta(name)
    system = ns.getSystemMeta(name)
    human = [f"{name}", f"  meta: {json.dumps(meta)}"] + [
        f"  {key}: {value}" for key, value in sorted(system.items())
    ]
    out.result(human, {"name": name, "meta": meta, "system": system})
    return EXIT_OK


def cmd_setmeta(ns: NameServerProxy, args: list[str], out: Output) -> int:
    meta = _parse_meta(args[1])
    ns.setMeta(args[0], meta)
    out.result(
        f"metadata of {ns.fullName(args[0])} set", {"name": ns.fullName(args[0]), "meta": meta}
    )
    return EXIT_OK


def cmd_shutdown(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.shutdown()
    out.result("name server is shutting down", {"shutdown": True})
    return EXIT_OK


#: ``status`` fields shown first, in this order, with their labels; the rest follow sorted.
_STATUS_FIELDS = [
    ("uri", "URI"),
    ("node_id", "node id"),
    ("role", "role"),
    ("twin", "twin"),
    ("twin_node_id", "twin node id"),
    ("link", "link"),
    ("last_contact_seconds", "last contact (s ago)"),
    ("unacked_changes", "changes not acked by twin"),
    ("oldest_unacked_seconds", "oldest unacked (s)"),
    ("ack_mode", "ack mode"),
    ("degraded", "degraded"),
    ("entries", "entries"),
    ("digest", "digest"),
    ("conflicts", "conflicts"),
]


def format_status(status: dict[str, Any]) -> list[str]:
    """Human lines for a ``status()`` result: the pairing fields first, then the rest."""
    role = status.get("role")
    shown = dict(status)
    if role in (1, 2):
        shown["role"] = f"-{role} (paired mode)"
    lines = []
    for key, label in _STATUS_FIELDS:
        if key in shown:
            value = shown.pop(key)
            lines.append(f"{label}: {'-' if value is None else value}")
    for key in sorted(shown):
        lines.append(f"{key}: {shown[key]}")
    return lines


def cmd_status(ns: NameServerProxy, args: list[str], out: Output) -> int:
    status = ns.status()
    out.result(format_status(status), status)
    return EXIT_OK


def cmd_resync(ns: NameServerProxy, args: list[str], out: Output) -> int:
    ns.resync()
    out.result("full resync with the twin requested", {"resync": True})
    return EXIT_OK


def cmd_dump(ns: NameServerProxy, args: list[str], out: Output) -> int:
    count = 0
    target: TextIO = open(args[0], "w", encoding="utf-8") if args else out.stream  # noqa: SIM115
    try:
        for entry in iter_dump(ns):
            target.write(json.dumps(entry, sort_keys=True) + "\n")
            count += 1
    finally:
        if args:
            target.close()
    if args:
        out.result(f"dumped {count} entries to {args[0]}", {"dumped": count, "file": args[0]})
    return EXIT_OK


def _read_dump(path: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}:{number}: not JSON: {exc}") from None
                if (
                    not isinstance(entry, dict)
                    or not isinstance(entry.get("name"), str)
                    or entry.get("kind") not in ("group", "object")
                    or (entry["kind"] == "object" and not isinstance(entry.get("uri"), str))
                ):
                    raise UsageError(f"{path}:{number}: not a dump entry")
                entries.append(entry)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return entries


#: Entries per ``load`` call, and the JSON bytes one page may hold (well under the
#: node's default frame limit of 1 MiB).
LOAD_PAGE_ENTRIES = 1000
LOAD_PAGE_BYTES = 256 * 1024


def _pages(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        cost = len(json.dumps(entry))
        if page and (len(page) >= LOAD_PAGE_ENTRIES or size + cost > LOAD_PAGE_BYTES):
            yield page
            page, size = [], 0
        page.append(entry)
        size += cost
    if page:
        yield page


def cmd_load(ns: NameServerProxy, args: list[str], out: Output) -> int:
    entries = _read_dump(args[0])
    # Parents sort before their children, so groups exist before what they hold.
    entries.sort(key=lambda e: e["name"])
    created: list[str] = []
    existed: list[str] = []
    # The node's load (an admin call) creates a page at a time and leaves what exists.
    for page in _pages(entries):
        result = ns.load(page)
        created.extend(result.get("loaded", []))
        existed.extend(result.get("existed", []))
    human = [f"loaded {len(created)} entries from {args[0]}"]
    if existed:
        human.append(f"{len(existed)} already existed and were left as they are:")
        human.extend(f"  {name}" for name in existed)
    out.result(human, {"loaded": len(created), "existed": existed})
    return EXIT_OK


@attrs.frozen
class Command:
    """One ``pairns-ctl`` command: what it runs, its help line and how many arguments."""

    run: Callable[[NameServerProxy, list[str], Output], int]
    #: The help line: the arguments, then what the command does.
    usage: str
    min_args: int = 0
    max_args: int = 0

    def check_arity(self, args: list[str]) -> None:
        """Raise :class:`UsageError` unless *args* has an allowed length."""
        low, high = self.min_args, self.max_args
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise UsageError(f"expected {want} argument(s), got {len(args)}")


COMMANDS: dict[str, Command] = {
    "ping": Command(cmd_ping, "check that the name server answers"),
    "list": Command(cmd_list, "[GROUP]  list a group (default: the default group)", 0, 1),
    "listall": Command(cmd_listall, "list the whole namespace"),
    "resolve": Command(cmd_resolve, "NAME  show the URI registered under NAME", 1, 1),
    "register": Command(cmd_register, "NAME URI  register URI under NAME", 2, 2),
    "remove": Command(cmd_remove, "NAME  unregister NAME", 1, 1),
    "creategroup": Command(cmd_creategroup, "GROUP  create a group", 1, 1),
    "deletegroup": Command(cmd_deletegroup, "GROUP  delete a group and everything in it", 1, 1),
    "showmeta": Command(cmd_showmeta, "NAME  show user and system metadata", 1, 1),
    "setmeta": Command(cmd_setmeta, "NAME VALUE  set metadata (JSON, or a plain string)", 2, 2),
    "status": Command(cmd_status, "show the node's status (pairing, link, lag, digest)"),
    "resync": Command(cmd_resync, "force a full resync with the twin (paired nodes only)"),
    "dump": Command(cmd_dump, "[FILE]  write the namespace as JSON lines (default: stdout)", 0, 1),
    "load": Command(
        cmd_load, "FILE  register what a dump holds; report what already existed", 1, 1
    ),
    "shutdown": Command(cmd_shutdown, "stop the name server"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pairns-ctl`` (``-h`` is the host, as in Pyro's nsc)."""
    epilog = "commands:\n" + "\n".join(
        f"  {name:<12} {command.usage}" for name, command in COMMANDS.items()
    )
    p = argparse.ArgumentParser(
        prog="pairns-ctl",
        add_help=False,
        description="Control a pairns name server.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument(
        "-h", dest="host", metavar="HOST", help="name server host (default PYRO_NS_HOSTNAME)"
    )
    p.add_argument(
        "-p", dest="port", metavar="PORT", help="name server port (default PYRO_NS_PORT, 9090)"
    )
    p.add_argument(
        "-i",
        dest="identification",
        metavar="IDENT",
        help="identification (default PYRO_NS_IDENTIFICATION)",
    )
    p.add_argument(
        "--admin-ident",
        dest="admin_identification",
        metavar="IDENT",
        help="admin identification for shutdown, resync and load (default "
        "PYRO_NS_ADMIN_IDENTIFICATION; prefer the environment variable)",
    )
    p.add_argument(
        "--timeout",
        default=str(DEFAULT_TIMEOUT),
        help=f"seconds per call (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="connect with TLS, trusting this PEM CA (for a node started with --tls-cert)",
    )
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="connect with TLS, presenting this PEM client certificate (a node started "
        "with --tls-ca requires one)",
    )
    p.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the client certificate's PEM private key (default: in the --tls-cert file)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("command", metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    p.add_argument("args", nargs="*", metavar="ARG")
    return p


def _where(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, int, float]:
    """Host, port and timeout from the flags, else ``PYRO_NS_HOSTNAME``/``PYRO_NS_PORT``.

    ``PYRO_NS_DEFAULTGROUP`` is checked too (the proxy reads it). Raises
    :class:`ConfigError` naming the flag or variable that holds a bad value.
    """
    if args.host is not None:
        host = CONNECT_HOST.read(args.host, Origin.flag("-h"))
    else:
        host = env.get("PYRO_NS_HOSTNAME") or "localhost"
    if args.port is not None:
        port = CONNECT_PORT.read(args.port, Origin.flag("-p"))
    elif env.get("PYRO_NS_PORT"):
        port = CONNECT_PORT.read(env["PYRO_NS_PORT"], Origin.environment("PYRO_NS_PORT"))
    else:
        port = DEFAULT_NS_PORT
    timeout = TIMEOUT.read(args.timeout, Origin.flag("--timeout"))
    if "PYRO_NS_DEFAULTGROUP" in env:  # the proxy expands relative names with it
        GROUP.read(env["PYRO_NS_DEFAULTGROUP"], Origin.environment("PYRO_NS_DEFAULTGROUP"))
    if "PYRO_NS_FAILOVER_TIMEOUT" in env:  # the proxy reads it when it is made
        try:
            failover_timeout_setting()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return host, port, timeout


def _identification(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """``-i``, else ``PYRO_NS_IDENTIFICATION`` (empty means none, as for the server).

    The environment keeps the identification out of the process list, where a flag
    shows (a container's healthcheck runs ``pairns-ctl ping`` with the node's variable).
    """
    if args.identification is not None:
        return str(args.identification)
    return env.get("PYRO_NS_IDENTIFICATION") or None


def _tls_context(args: argparse.Namespace) -> Any:
    """The client TLS context ``--tls-ca/--tls-cert/--tls-key`` ask for (None: plain).

    Raises :class:`ConfigError` naming the flag whose file is missing or unusable.
    """
    if args.tls_ca is None and args.tls_cert is None and args.tls_key is None:
        return None  # plain TCP: ssl is not even imported
    if args.tls_key is not None and args.tls_cert is None:
        raise ConfigError("--tls-key needs --tls-cert (the certificate it belongs to)")
    import ssl

    from pairns.tls import check_readable, client_context

    for flag, path in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert)):
        check_readable(path, flag)
    try:
        context = client_context(args.tls_ca)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"--tls-ca: not a PEM CA certificate ({args.tls_ca}): {exc}") from None
    if args.tls_cert is not None:
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            flag = "--tls-key" if args.tls_key is not None else "--tls-cert"
            raise ConfigError(
                f"{flag}: not a PEM certificate with its matching private key: {exc}"
            ) from None
    return context


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    """Entry point of ``pairns-ctl``; returns the exit code."""
    out_stream = stdout if stdout is not None else sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    out = Output(args.json, out_stream)
    command = COMMANDS.get(args.command)
    if command is None:
        print(f"pairns-ctl: unknown command {args.command!r}; try --help", file=sys.stderr)
        return EXIT_USAGE
    # Everything the command line says is checked before anything is dialled, so a
    # usage error is exit code 2 whether or not a name server is running.
    try:
        command.check_arity(args.args)
    except UsageError as exc:
        print(f"pairns-ctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        host, port, timeout = _where(args, os.environ)
    except ConfigError as exc:
        print(f"pairns-ctl: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ssl_context = _tls_context(args)
    except ConfigError as exc:
        print(f"pairns-ctl: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        admin = args.admin_identification or os.environ.get("PYRO_NS_ADMIN_IDENTIFICATION") or None
        locator = NameServerLocator(
            _identification(args, os.environ),
            ssl_context=ssl_context,
            admin_identification=admin,
        )
        ns = locator.getNS(host, port, timeout=timeout)
    except (ConnectionDeniedError, ConnectionClosedError, ProtocolError, OSError) as exc:
        print(f"pairns-ctl: cannot connect: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    try:
        with ns:
            return command.run(ns, args.args, out)
    except BrokenPipeError:
        # The reader went away (`pairns-ctl listall | head`): stop quietly, as cat does,
        # and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        print(f"pairns-ctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (NamingError, URIError) as exc:
        if args.json:
            out.result("", {"error": type(exc).__name__, "message": str(exc)})
        print(f"pairns-ctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_NAMING
    except (ConnectionDeniedError, ConnectionClosedError, ProtocolError) as exc:
        print(f"pairns-ctl {args.command}: connection failed: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except PairnsError as exc:
        print(f"pairns-ctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_NAMING


if __name__ == "__main__":
    sys.exit(main())
