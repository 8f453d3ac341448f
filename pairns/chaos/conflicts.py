"""Turn a node's ``conflict (...)`` log lines into :class:`ConflictRecord` values.

Two builds log conflicts, in two forms:

* new: ``conflict (KIND) on NAME: kept {JSON}, lost {JSON}``, each JSON object with
  ``name``, ``kind`` (``"group"``/``"object"``), ``deleted``, ``uri``, ``meta``, ``node``
  and ``time`` (more keys are allowed);
* old: ``conflict (KIND) on NAME: kept Entry(...), lost Entry(...)``, the ``repr`` of the
  namespace's attrs ``Entry`` (``kind=<Kind.GROUP: 0>``, ``uri='...'``, ``meta=`` a
  Python literal, ``stamp=Stamp(hlc=..., node='...')``, ...).

Both give the same entry dicts: ``name``, ``kind``, ``deleted``, ``uri``, ``meta`` and,
when the line says it, ``node`` (the node id that made that version). A node logs
metadata too large to show as its size, ``meta_bytes``, instead of ``meta``: the dict
then has ``meta`` None and keeps ``meta_bytes``.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from pairns.chaos.history import ConflictRecord

__all__ = ["parse_conflict_line", "parse_log"]

_MARK = "conflict ("
_HEAD = re.compile(r"conflict \((?P<kind>[^()\s]+)\) on (?P<name>\S+): kept ")
_SEPARATOR = ", lost "
_FIELD = re.compile(r"\s*(?P<key>[A-Za-z_]\w*)=")
_KIND_REPR = re.compile(r"<?Kind\.(?P<kind>GROUP|OBJECT)(?::\s*\d+>)?$")
_STAMP_NODE = re.compile(r"""node=(?P<node>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_KIND_CODES: dict[Any, str] = {0: "group", 1: "object", "group": "group", "object": "object"}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(")]}")
_DECODER = json.JSONDecoder()


def parse_conflict_line(
    line: str, *, node: int, incarnation: int, time: float | None = None
) -> ConflictRecord | None:
    """The conflict *line* reports, logged by process *incarnation* of *node*.

    Returns None for a line that is not a conflict report (no ``"conflict ("`` in it);
    raises ``ValueError`` (quoting the line) for a conflict report it cannot read.
    """
    if _MARK not in line:
        return None
    head = _HEAD.search(line)
    if head is None:
        raise ValueError(f"malformed conflict line: {line!r}")
    try:
        kept, pos = _entry_at(line, head.end())
        if not line.startswith(_SEPARATOR, pos):
            raise ValueError(f"expected {_SEPARATOR!r} at column {pos}")
        lost, _ = _entry_at(line, pos + len(_SEPARATOR))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"malformed conflict line ({exc}): {line!r}") from None
    return ConflictRecord(
        node=node,
        incarnation=incarnation,
        kind=head["kind"],
        name=head["name"],
        kept=kept,
        lost=lost,
        time=time,
    )


def parse_log(text: str, *, node: int, incarnation: int) -> list[ConflictRecord]:
    """Every conflict reported in *text* (a whole log), in order, without times.

    A last line cut short (no newline after it: the process was killed while writing
    it) is skipped if it cannot be read; any other malformed conflict line raises
    ``ValueError``.
    """
    records: list[ConflictRecord] = []
    lines = text.split("\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        try:
            record = parse_conflict_line(line, node=node, incarnation=incarnation)
        except ValueError:
            if i == last:
                break
            raise
        if record is not None:
            records.append(record)
    return records


def _entry_at(text: str, pos: int) -> tuple[dict[str, Any], int]:
    """The entry written at *pos* in either form, and the position just after it."""
    if text.startswith("{", pos):
        value, end = _DECODER.raw_decode(text, pos)
        if not isinstance(value, dict):
            raise ValueError("entry is not a JSON object")
        return _from_json(value), end
    if text.startswith("Entry(", pos):
        fields, end = _repr_fields(text, pos + len("Entry("))
        return _from_repr(fields), end
    raise ValueError(f"no entry at column {pos}")


def _from_json(value: dict[str, Any]) -> dict[str, Any]:
    kind = value.get("kind")
    entry = _entry(
        name=value.get("name"),
        kind=_KIND_CODES.get(kind) if isinstance(kind, str | int) else None,
        deleted=value.get("deleted", False),
        uri=value.get("uri"),
        meta=value.get("meta"),
    )
    if isinstance(value.get("node"), str):
        entry["node"] = value["node"]
    if "meta" not in value and isinstance(value.get("meta_bytes"), int):
        entry["meta_bytes"] = value["meta_bytes"]
    return entry


def _from_repr(fields: dict[str, str]) -> dict[str, Any]:
    for key in ("name", "kind", "uri", "meta"):
        if key not in fields:
            raise ValueError(f"Entry without {key}=")
    kind = _KIND_REPR.match(fields["kind"].strip())
    entry = _entry(
        name=ast.literal_eval(fields["name"]),
        kind=kind["kind"].lower() if kind else None,
        deleted=ast.literal_eval(fields.get("deleted", "False")),
        uri=ast.literal_eval(fields["uri"]),
        meta=ast.literal_eval(fields["meta"]),
    )
    node = _STAMP_NODE.search(fields.get("stamp", ""))
    if node is not None:
        entry["node"] = ast.literal_eval(node["node"])
    elif "owner" in fields:
        entry["node"] = ast.literal_eval(fields["owner"])
    return entry


def _entry(*, name: Any, kind: str | None, deleted: Any, uri: Any, meta: Any) -> dict[str, Any]:
    if not isinstance(name, str):
        raise ValueError(f"entry name {name!r} is not a string")
    if kind is None:
        raise ValueError(f"entry {name} has no valid kind")
    if not isinstance(deleted, bool):
        raise ValueError(f"entry {name}: deleted={deleted!r} is not a bool")
    if uri is not None and not isinstance(uri, str):
        raise ValueError(f"entry {name}: uri={uri!r} is not a string")
    return {"name": name, "kind": kind, "deleted": deleted, "uri": uri, "meta": meta}


def _repr_fields(text: str, pos: int) -> tuple[dict[str, str], int]:
    """The ``key=value`` texts of an attrs repr whose ``(`` ends just before *pos*, and
    the position after its ``)``. Values are cut at a top-level ``,`` or ``)``, outside
    strings and brackets, so a string holding ``", created="`` cannot mislead it."""
    fields: dict[str, str] = {}
    while True:
        field = _FIELD.match(text, pos)
        if field is None:
            raise ValueError(f"expected key= at column {pos}")
        start = field.end()
        end = _value_end(text, start)
        fields[field["key"]] = text[start:end]
        if text[end] == ")":
            return fields, end + 1
        pos = end + 1


def _value_end(text: str, pos: int) -> int:
    """Where the Python literal starting at *pos* ends (at a top-level ``,`` or ``)``)."""
    closing: list[str] = []
    i = pos
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i = _string_end(text, i)
            continue
        if c in _OPENERS:
            closing.append(_OPENERS[c])
        elif c in _CLOSERS:
            if not closing:
                if c == ")":
                    return i
                raise ValueError(f"unbalanced {c!r} at column {i}")
            if closing.pop() != c:
                raise ValueError(f"unbalanced {c!r} at column {i}")
        elif c == "," and not closing:
            return i
        i += 1
    raise ValueError("entry not closed")


def _string_end(text: str, pos: int) -> int:
    """The position after the quoted string (with backslash escapes) starting at *pos*."""
    quote = text[pos]
    i = pos + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    raise ValueError("string not closed")
