"""Log output for the commands: the human format, one JSON object per line, and the
structured fields a log call carries beside its message.

A log call adds fields with ``extra=fields(twin=..., link_state=...)``: the human
format shows only the message (which says the same in words), the JSON format writes
each field as a key of the line's object. Attributes set with a plain ``extra=`` (by
other libraries) are written too. Formatting never raises: a value JSON cannot hold is
written as its ``repr``, so a log call cannot bring a node down.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

__all__ = [
    "FIELDS_ATTR",
    "HUMAN_FORMAT",
    "LOG_FORMATS",
    "JsonFormatter",
    "configure",
    "fields",
    "set_context",
]

#: The log formats the commands offer (``--log-format``, ``PYRO_NS_LOG_FORMAT``).
LOG_FORMATS: Final = ("human", "json")

#: The human format (stderr by default; journald adds its own timestamp, harmlessly).
HUMAN_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The :class:`logging.LogRecord` attribute :func:`fields` puts the fields in.
FIELDS_ATTR: Final = "pairns_fields"

#: The keys every JSON line starts with; a field of the same name is written with a
#: trailing underscore instead of replacing them.
CORE_KEYS: Final = ("time", "level", "logger", "message")

#: Attributes every record has (not fields): ``extra=`` attributes are the others.
_STANDARD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    FIELDS_ATTR,
}


#: Marks the handler :func:`configure` installed.
_OURS: Final = "pairns_configured"


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` argument of a log call that carries *values* as structured fields.

    Any key is allowed, also ``name`` (which a plain ``extra=`` may not set: it is the
    logger's name on a :class:`logging.LogRecord`).
    """
    return {FIELDS_ATTR: values}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC, milliseconds),
    ``level``, ``logger``, ``message``, then the record's fields, then ``exc`` (the
    traceback text) if there is one, then the :attr:`context` fields (``node``, ...)."""

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        #: Fields added to every line (the node's id once it is known).
        self.context: dict[str, Any] = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        """*record* as one line of JSON (without the newline)."""
        data: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in _record_fields(record):
            data[f"{key}_" if key in CORE_KEYS else key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        for key, value in self.context.items():
            data.setdefault(key, value)
        return ", ".join(_encode_items(data)).join("{}")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a format string that does not match its arguments
        return f"{_safe_repr(record.msg)} % {_safe_repr(record.args)}"


def _record_fields(record: logging.LogRecord) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS:
            found.append((str(key), value))
    given = record.__dict__.get(FIELDS_ATTR)
    if isinstance(given, Mapping):
        found.extend((str(key), value) for key, value in given.items())
    return found


def _encode_items(data: Mapping[str, Any]) -> list[str]:
    """``"key":value`` texts; each value separately, so one bad value spoils only itself."""
    return [f"{json.dumps(key)}:{_encode(value)}" for key, value in data.items()]


def _encode(value: Any) -> str:
    try:
        return json.dumps(
            value, default=_safe_repr, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    except (ValueError, TypeError, RecursionError):
        # NaN, a circular structure, a dict with keys JSON cannot have, ...
        return json.dumps(_safe_repr(value), ensure_ascii=False)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _iso_utc(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(
    *,
    log_format: str = "human",
    log_file: str | None = None,
    level: int = logging.WARNING,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the root logger's records at *level* and above to *log_file* (appended;
    reopened if it is moved away, as ``logrotate`` does) or else to *stream* (default
    stderr), in *log_format*; returns the handler installed.

    Replaces the handler a previous call installed (and only that one). Raises
    ``OSError`` if the file cannot be opened.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler: logging.Handler
    if log_file is not None:
        handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def set_context(handler: logging.Handler, **values: Any) -> None:
    """Add *values* to every later line *handler* writes in the JSON format (the human
    format has no place for them and ignores them)."""
    formatter = handler.formatter
    if isinstance(formatter, JsonFormatter):
        formatter.context.update(values)
