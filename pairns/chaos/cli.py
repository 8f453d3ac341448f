"""``pairns-chaos``: run one chaos campaign against a real pair and check it.

Exit status: 0 when the checker found nothing (with ``--no-check``: when every
checkpoint converged), 1 when it found violations or the campaign was aborted, 2 for
usage errors, 130 when interrupted. See ``docs/chaos.md``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pairns.chaos.runner import CampaignOptions, check_run, load_run, run_campaign
from pairns.chaos.schedule import KINDS, parse_kinds

__all__ = ["build_parser", "main", "options_from_args"]


def _kinds(text: str) -> tuple[str, ...]:
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _range(text: str) -> tuple[float, float]:
    """``4`` -> (4, 4); ``3-6`` or ``3:6`` -> (3, 6)."""
    for sep in ("-", ":"):
        if sep in text.strip().lstrip("-"):
            low, _, high = text.partition(sep)
            break
    else:
        low = high = text
    try:
        values = (float(low), float(high))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or MIN-MAX, got {text!r}") from None
    if not 0.5 <= values[0] <= values[1] <= 3600:
        raise argparse.ArgumentTypeError(f"round length must be within 0.5..3600 s: {text!r}")
    return values


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pairns-chaos``."""
    p = argparse.ArgumentParser(
        prog="pairns-chaos",
        description="Run a chaos campaign: two real pairns nodes forming a pair, client "
        "processes doing random operations against both, faults from a seeded schedule, "
        "and a checker over the recorded histories.",
    )
    p.add_argument("--seed", type=int, default=1, help="schedule and client seed (default 1)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--rounds", type=int, help="number of rounds (default 10)")
    length.add_argument("--duration", type=_positive, help="seconds of traffic (rounds fill it)")
    p.add_argument(
        "--faults",
        type=_kinds,
        default=None,
        help=f"comma-separated fault kinds, or all/none (kinds: {','.join(KINDS)}; "
        "default: every kind possible here)",
    )
    p.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    p.add_argument(
        "--failover-clients",
        type=int,
        default=2,
        metavar="N",
        help="client processes besides --clients that call through a failover name server "
        "proxy, preferring node 1, 2, 1, ... (default 2)",
    )
    p.add_argument(
        "--failover-timeout",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="the failover clients' failover timeout (default 1 s, PYRO_NS_FAILOVER_TIMEOUT's)",
    )
    p.add_argument(
        "--round-seconds",
        type=_range,
        default=(3.0, 6.0),
        metavar="S|MIN-MAX",
        help="round length, fixed or a range (default 3-6)",
    )
    p.add_argument(
        "--bound",
        type=_positive,
        default=5.0,
        help="seconds the pair gets to converge after a heal (default 5)",
    )
    p.add_argument(
        "--clock-mode",
        choices=["injected", "faketime"],
        default="injected",
        help="how clock faults skew a node's wall clock: PAIRNS_CLOCK_OFFSET (injected, "
        "default) or libfaketime (for builds that do not read it)",
    )
    p.add_argument("--topology", choices=["loopback", "netns"], default="loopback")
    p.add_argument(
        "--pairns-path",
        type=Path,
        help="run the nodes from the pairns checkout in DIR (e.g. a git worktree of an "
        "older commit); the runner, clients and checker run from this one",
    )
    p.add_argument("--out", type=Path, help="output directory (default /tmp/pairns-chaos/...)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the node databases and old copies even when the run passes",
    )
    p.add_argument("--no-check", action="store_true", help="do not run the checker")
    p.add_argument(
        "--client-timeout", type=_positive, default=2.0, help="client call timeout (default 2 s)"
    )
    p.add_argument(
        "--client-rate",
        type=float,
        default=0.0,
        metavar="OPS",
        help="operations a second per client (default 0: as fast as the nodes answer); "
        "long campaigns pace their clients so the history stays a size the checker can hold",
    )
    p.add_argument(
        "--time-limit",
        type=_positive,
        metavar="SECONDS",
        help="abort the campaign (cleanly, at a round's start) after this long",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    p.add_argument(
        "--recheck",
        type=Path,
        metavar="DIR",
        help="run no campaign: run the checker again over the records in DIR",
    )
    return p


def options_from_args(args: argparse.Namespace) -> CampaignOptions:
    """The campaign options the parsed flags ask for."""
    return CampaignOptions(
        seed=args.seed,
        rounds=args.rounds,
        duration=args.duration,
        faults=args.faults,
        clients=args.clients,
        failover_clients=args.failover_clients,
        failover_timeout=args.failover_timeout,
        round_seconds=args.round_seconds,
        bound=args.bound,
        clock_mode=args.clock_mode,
        topology=args.topology,
        pairns_path=None if args.pairns_path is None else args.pairns_path.resolve(),
        out=args.out,
        keep=args.keep,
        check=not args.no_check,
        client_timeout=args.client_timeout,
        client_rate=args.client_rate,
        quiet=args.quiet,
        time_limit=args.time_limit,
    )


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, so the campaign cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _recheck(out: Path, bound: float) -> int:
    """``--recheck DIR``: the checker's report over a finished run's records."""
    if not (out / "events.jsonl").is_file():
        print(f"pairns-chaos: {out} holds no events.jsonl", file=sys.stderr)
        return 2
    seed = None
    try:
        seed = json.loads((out / "summary.json").read_text())["seed"]
    except (OSError, ValueError, KeyError):
        pass
    report = check_run(load_run(out), seed=seed, bound=bound)
    print(report.format())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pairns-chaos``; the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds is not None and not 1 <= args.rounds <= 10_000:
        parser.error("--rounds must be within 1..10000")
    if args.recheck is not None:
        return _recheck(args.recheck, args.bound)
    try:
        options = options_from_args(args)
        with _terminate_as_interrupt():
            summary = run_campaign(options)
    except ValueError as exc:
        print(f"pairns-chaos: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pairns-chaos: interrupted (everything started was stopped)", file=sys.stderr)
        return 130
    if summary.report is not None and summary.ok is False:
        print(summary.report)
    print(summary.table())
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
