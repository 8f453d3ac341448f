"""The records of a chaos run, as frozen values with a JSON-lines form (no IO but files).

A run writes:

* one ``ops-<client>.jsonl`` per client process: an :class:`Op` per attempt of a call;
* ``events.jsonl`` from the runner: :class:`Fault`, :class:`Pause` and :class:`Checkpoint`
  records;
* ``conflicts-<node>-<incarnation>.jsonl``: :class:`ConflictRecord` values parsed from
  each node process's log (see :mod:`pairns.chaos.conflicts`).

Times are ``time.monotonic()`` seconds of the machine that ran everything (one clock for
every process, whatever wall clock a node was given). Names are absolute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

__all__ = [
    "READ_OPS",
    "WRITE_OPS",
    "Checkpoint",
    "ConflictRecord",
    "Fault",
    "NodeState",
    "Op",
    "Pause",
    "Record",
    "Status",
    "read_jsonl",
    "record_from_json",
    "record_to_json",
    "write_jsonl",
]

#: Operations that change the namespace (their request ids make retries safe).
WRITE_OPS = frozenset({"register", "unregister", "createGroup", "deleteGroup", "setMeta"})
#: Operations that only read.
READ_OPS = frozenset({"resolve", "list", "flatlist", "getMeta"})

#: ``ok``: the node answered with a result; ``error``: the node answered with an error
#: (the call had no effect); ``unknown``: no answer (timeout, connection lost), so the
#: call may or may not have taken effect, now or later.
Status = Literal["ok", "error", "unknown"]


@attrs.frozen
class Op:
    """One attempt of one client call.

    ``op_id`` names the logical operation (``"<client>-<n>"``); a retry is a second
    ``Op`` with the same ``op_id``, the same ``rid`` (request id, writes only) and
    ``attempt`` one higher, possibly on the other node. A *failover* client's call is
    made through a failover name-server proxy (``failover`` True): its attempts are the
    proxy's own (the client never retries), and when the call failed its last attempt
    carries the error the call raised. ``args`` are the call's
    arguments as sent (names absolute). For reads ``result`` is what the node returned:
    ``resolve`` a URI string, ``list`` ``[[basename, 0|1], ...]``, ``flatlist``
    ``[[name, uri], ...]``, ``getMeta`` the metadata. ``error`` is ``{"type", "message"}``
    for ``error`` and ``unknown`` attempts.
    """

    client: str
    op_id: str
    attempt: int
    node: int
    op: str
    args: tuple[Any, ...]
    start: float
    end: float
    status: Status
    rid: str | None = None
    result: Any = None
    error: dict[str, str] | None = None
    failover: bool = False

    @property
    def is_write(self) -> bool:
        """True for register, unregister, createGroup, deleteGroup and setMeta."""
        return self.op in WRITE_OPS


@attrs.frozen
class Fault:
    """A fault the runner injected on ``node`` (1, 2, or 0 for the link between them),
    from ``start`` until it was healed at ``end`` (equal for instant faults such as a
    kill whose restart is a separate ``restart`` fault; a ``restart`` spans from when the
    node went down for it, or the restart began, until the node listened). ``kind`` is
    one of ``kill``,
    ``restart``, ``stop``, ``partition``, ``delay``, ``cut``, ``restore-old-copy``,
    ``wipe``, ``clock``, ``disk-full``, ``netns-partition``; ``detail`` says more
    (the clock offset, the delay, ...)."""

    kind: str
    node: int
    start: float
    end: float
    detail: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Pause:
    """The clients were paused on purpose from ``start`` (the runner sent ``pause``)
    until ``end`` (it sent ``run``): for a checkpoint or a fence (``why``)."""

    start: float
    end: float
    why: str


@attrs.frozen
class NodeState:
    """What one node showed at a checkpoint: its digest, its visible namespace from
    ``dump()`` (``name -> {"kind": "group"|"object", "uri": str|None, "meta": ...}``,
    the root left out) and its ``status()``."""

    node: int
    digest: str
    entries: dict[str, dict[str, Any]]
    status: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Checkpoint:
    """A quiet point: every client paused (no call in flight), every fault healed.

    ``time`` is when the last fault was healed; ``converged`` whether both nodes then
    showed equal digests within the bound, after ``convergence_seconds`` (None if they
    did not). ``states`` are the nodes' states at the end of the wait (equal when
    converged).
    """

    round: int
    time: float
    converged: bool
    convergence_seconds: float | None
    states: tuple[NodeState, ...]


@attrs.frozen
class ConflictRecord:
    """One conflict a node logged: ``kind`` (``version``, ``hidden``, ``revived``), the
    ``name`` it was about, and what was kept and lost, each as
    ``{"kind": "group"|"object", "deleted": bool, "uri": str|None, "meta": ..., "name": str}``
    (``name`` is the entry's own name: for ``hidden`` the kept entry is the ancestor's
    tombstone or object that hid ``name``). ``node`` and ``incarnation`` say which
    process logged it; ``time`` is when the runner saw the line (monotonic, approximate).
    """

    node: int
    incarnation: int
    kind: str
    name: str
    kept: dict[str, Any]
    lost: dict[str, Any]
    time: float | None = None


#: Any record of a run.
Record = Op | Fault | Pause | Checkpoint | ConflictRecord

_TYPES: dict[str, type[Any]] = {
    "op": Op,
    "fault": Fault,
    "checkpoint": Checkpoint,
    "conflict": ConflictRecord,
    "pause": Pause,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def _written(attribute: attrs.Attribute[Any], value: Any) -> bool:
    """Leave ``Op.failover`` out while False: most clients are plain, and their lines
    stay as they were."""
    return not (attribute.name == "failover" and value is False)


def record_to_json(record: Record) -> str:
    """One JSON line (without the newline) for *record*, tagged with its type."""
    data = attrs.asdict(record, recurse=True, filter=_written)
    data["type"] = _NAMES[type(record)]
    return json.dumps(data, separators=(",", ":"), sort_keys=True, allow_nan=False)


def record_from_json(line: str) -> Record:
    """Parse a line made by :func:`record_to_json` (raises ``ValueError``)."""
    data = json.loads(line)
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        raise ValueError(f"not a chaos record: {line[:200]!r}")
    kind = data.pop("type")
    if kind == "op":
        data["args"] = tuple(data["args"])
        return Op(**data)
    if kind == "checkpoint":
        data["states"] = tuple(NodeState(**state) for state in data["states"])
        return Checkpoint(**data)
    return _TYPES[kind](**data)  # type: ignore[no-any-return]


def write_jsonl(path: Path, records: Iterable[Record]) -> None:
    """Append *records* to *path*, one line each."""
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(record_to_json(record) + "\n")


def read_jsonl(path: Path) -> Iterator[Record]:
    """The records of *path* in order. A last line cut short (the writer was killed
    mid-line) is skipped; any other bad line raises ``ValueError``."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield record_from_json(line)
        except (ValueError, TypeError, KeyError):
            if i == last:
                return  # no newline after it: a torn write
            raise ValueError(f"{path}:{i + 1}: not a chaos record") from None
