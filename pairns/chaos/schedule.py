"""The seeded fault schedule of a chaos campaign: a pure function of its options.

:func:`make_schedule` turns a seed, a fault mix and a length (a number of rounds or a
duration) into a :class:`Schedule`: rounds of a few seconds, each with 1-4 faults at
random offsets, and the database copies that later ``old-copy`` faults restore. The
same arguments always give the same schedule (``random.Random(seed)``, nothing else),
so a failing campaign is replayed with the same ``--seed``. No IO, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "KINDS",
    "LINK_KINDS",
    "NODE_KINDS",
    "PlannedCopy",
    "PlannedFault",
    "PlannedRound",
    "Schedule",
    "make_schedule",
    "parse_kinds",
]

#: Every fault kind the runner knows, in a fixed order (the order choices are made in).
KINDS: Final = (
    "kill",
    "stop",
    "partition",
    "delay",
    "cut",
    "old-copy",
    "wipe",
    "clock",
    "disk-full",
    "netns",
)
#: Faults of the link between the nodes (``PlannedFault.node`` is 0).
LINK_KINDS: Final = frozenset({"partition", "delay", "cut", "netns"})
#: Faults of one node (``PlannedFault.node`` is 1 or 2).
NODE_KINDS: Final = frozenset(KINDS) - LINK_KINDS

#: Bounds that keep a schedule (and the campaign that runs it) finite.
MAX_ROUNDS: Final = 10_000
MAX_DURATION: Final = 7 * 24 * 3600.0
#: Faults start in the first part of a round, so most end inside it.
OFFSET_SHARE: Final = 0.8
#: An old copy is taken at the start of this round or of one up to this many before.
COPY_LOOKBACK: Final = 3


#: Largest wall-clock offset a ``clock`` fault gives a node (seconds, either way). The
#: pair promises to converge while the two clocks - and the stamps each node has seen,
#: which its hybrid clock never falls below - stay within ``PYRO_NS_MAX_CLOCK_SKEW``
#: (60 s) of each other; beyond it the link refuses batches by design (tested on its
#: own in ``tests/unit/replication/test_pair_promise.py``). +-25 s keeps any two offsets
#: within 50 s.
MAX_CLOCK_OFFSET = 25.0

@attrs.frozen
class PlannedFault:
    """One fault of the schedule: *kind* on *node* (0 for the link) at *offset* seconds
    into round *round*, healed *duration* seconds later (for ``kill``: the delay before
    the restart; 0 for instant faults). *detail* holds the kind's parameters:
    ``delay`` (seconds, for ``delay``), ``reset`` (``cut``), ``offset`` and ``previous``
    (the wall-clock offsets of ``clock``), ``copy`` (the :class:`PlannedCopy` id an
    ``old-copy`` restores), ``side`` (the namespace whose link goes down, ``netns``),
    ``fresh`` (``disk-full``: restart the node cleanly first, so that it needs space)."""

    round: int
    offset: float
    kind: str
    node: int
    duration: float = 0.0
    detail: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PlannedCopy:
    """A copy of *node*'s database directory, taken at the start of round *round*;
    *copy* is the id an ``old-copy`` fault names it by."""

    round: int
    node: int
    copy: int


@attrs.frozen
class PlannedRound:
    """Round *index*: *length* seconds of client traffic; *copies* are taken at its
    start, *faults* (sorted by offset) are injected during it."""

    index: int
    length: float
    copies: tuple[PlannedCopy, ...]
    faults: tuple[PlannedFault, ...]


@attrs.frozen
class Schedule:
    """A whole campaign's plan: the seed and fault mix it came from, and its rounds."""

    seed: int
    kinds: tuple[str, ...]
    rounds: tuple[PlannedRound, ...]

    def faults(self) -> Iterator[PlannedFault]:
        """Every planned fault, round by round, in offset order."""
        for rnd in self.rounds:
            yield from rnd.faults

    @property
    def seconds(self) -> float:
        """The rounds' total length (without heals and checkpoints)."""
        return sum(rnd.length for rnd in self.rounds)

    def counts(self) -> dict[str, int]:
        """Planned faults by kind."""
        counts: dict[str, int] = {}
        for fault in self.faults():
            counts[fault.kind] = counts.get(fault.kind, 0) + 1
        return counts


def parse_kinds(text: str) -> tuple[str, ...]:
    """``"kill,stop"`` -> ``("kill", "stop")`` in :data:`KINDS` order; ``"all"`` is every
    kind, ``""``/``"none"`` none. Raises ``ValueError`` naming an unknown kind."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words in ([], ["none"]):
        return ()
    if words == ["all"]:
        return KINDS
    unknown = sorted(set(words) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kind(s): {', '.join(unknown)} (known: {', '.join(KINDS)})")
    return tuple(k for k in KINDS if k in words)


def make_schedule(
    seed: int,
    kinds: Iterable[str],
    *,
    rounds: int | None = None,
    duration: float | None = None,
    round_seconds: tuple[float, float] = (3.0, 6.0),
    faults_per_round: tuple[int, int] = (1, 4),
) -> Schedule:
    """The schedule for *seed*: *rounds* rounds, or as many as fill *duration* seconds.

    Each round lasts ``uniform(*round_seconds)`` and holds ``randint(*faults_per_round)``
    faults of the kinds in *kinds* (none when *kinds* is empty), each at a random offset
    in the first 80 % of the round. Kinds are drawn from a shuffled bag, so every kind
    appears once before any appears twice. Raises ``ValueError`` for bad arguments.
    """
    chosen = tuple(k for k in KINDS if k in set(kinds))
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
    if (rounds is None) == (duration is None):
        raise ValueError("give exactly one of rounds and duration")
    if rounds is not None and not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be within 1..{MAX_ROUNDS}, got {rounds}")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be within 0..{MAX_DURATION:g} s, got {duration}")
    low, high = round_seconds
    if not 0.5 <= low <= high <= 3600:
        raise ValueError(f"round length must be within 0.5..3600 s, got {low}..{high}")
    fmin, fmax = faults_per_round
    if not 0 <= fmin <= fmax <= 16:
        raise ValueError(f"faults per round must be within 0..16, got {fmin}..{fmax}")

    rng = random.Random(seed)
    bag: list[str] = []
    clock = {1: 0.0, 2: 0.0}
    lengths: list[float] = []
    planned: list[list[PlannedFault]] = []
    copies: list[list[PlannedCopy]] = []
    total = 0.0
    while len(lengths) < MAX_ROUNDS:
        if rounds is not None and len(lengths) >= rounds:
            break
        if duration is not None and total >= duration:
            break
        index = len(lengths)
        length = round(rng.uniform(low, high), 3)
        lengths.append(length)
        copies.append([])
        total += length
        count = rng.randint(fmin, fmax) if chosen else 0
        drafts = sorted(
            (round(rng.uniform(0.0, OFFSET_SHARE * length), 3), _draw(rng, bag, chosen))
            for _ in range(count)
        )
        faults = []
        for offset, kind in drafts:
            fault = _plan(rng, index, offset, kind, clock)
            if kind == "old-copy":
                copy_round = rng.randint(max(0, index - COPY_LOOKBACK), index)
                same = [c for c in copies[copy_round] if c.node == fault.node]
                if same:
                    copy = same[0]  # one copy per node and round serves every restore
                else:
                    copy = PlannedCopy(copy_round, fault.node, sum(len(c) for c in copies))
                    copies[copy_round].append(copy)
                fault = attrs.evolve(fault, detail={"copy": copy.copy, "copy_round": copy_round})
            faults.append(fault)
        planned.append(faults)
    return Schedule(
        seed=seed,
        kinds=chosen,
        rounds=tuple(
            PlannedRound(i, lengths[i], tuple(copies[i]), tuple(planned[i]))
            for i in range(len(lengths))
        ),
    )


def _draw(rng: random.Random, bag: list[str], kinds: tuple[str, ...]) -> str:
    """The next kind from a shuffled bag of every kind, refilled when empty: random,
    yet every kind comes up once before any comes up twice (short campaigns see all)."""
    if not bag:
        bag.extend(kinds)
        rng.shuffle(bag)
    return bag.pop()


def _plan(
    rng: random.Random, index: int, offset: float, kind: str, clock: dict[int, float]
) -> PlannedFault:
    """Draw one fault's node and parameters (*clock* tracks each node's planned offset)."""
    node = 0 if kind in LINK_KINDS else rng.choice((1, 2))
    duration = 0.0
    detail: dict[str, Any] = {}
    if kind == "kill":
        duration = round(rng.uniform(0.0, 1.0), 3)
    elif kind in ("stop", "partition", "netns"):
        duration = round(rng.uniform(0.5, 3.0), 3)
        if kind == "netns":
            detail["side"] = rng.choice((1, 2))
    elif kind == "delay":
        duration = round(rng.uniform(0.5, 3.0), 3)
        detail["delay"] = round(rng.uniform(0.05, 0.3), 3)
    elif kind == "cut":
        detail["reset"] = rng.random() < 0.5
    elif kind == "disk-full":
        duration = round(rng.uniform(1.0, 3.0), 3)
        detail["fresh"] = rng.random() < 0.5
    elif kind == "clock":
        previous = clock[node]
        if previous != 0.0 and rng.random() < 0.5:
            new = 0.0  # set right
        else:
            new = round(rng.choice((-1, 1)) * rng.uniform(1.0, MAX_CLOCK_OFFSET), 1)
        clock[node] = new
        detail = {"offset": new, "previous": previous}
    return PlannedFault(index, offset, kind, node, duration, detail)
