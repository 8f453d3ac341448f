"""Issue 21: the JSON log format writes one object per line and never raises."""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from pairns import structured_log
from pairns.structured_log import JsonFormatter, fields


def _record(msg: str, *args: Any, **kwargs: Any) -> logging.LogRecord:
    logger = logging.getLogger("pairns.test")
    return logger.makeRecord(
        "pairns.test", logging.WARNING, __file__, 1, msg, args, None, extra=kwargs or None
    )


def _line(record: logging.LogRecord, formatter: JsonFormatter | None = None) -> dict[str, Any]:
    text = (formatter or JsonFormatter()).format(record)
    assert "\n" not in text
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_core_keys_then_fields() -> None:
    record = _record("twin link: %s", "paired", **fields(twin="h:1", link_state="paired"))
    record.created = 1_800_000_000.25
    data = _line(record)
    assert list(data)[:4] == ["time", "level", "logger", "message"]
    assert data["time"] == "2027-01-15T08:00:00.250Z"
    assert (data["level"], data["logger"]) == ("WARNING", "pairns.test")
    assert data["message"] == "twin link: paired"
    assert (data["twin"], data["link_state"]) == ("h:1", "paired")


def test_name_is_a_field_and_core_keys_are_not_replaced() -> None:
    data = _line(_record("m", **fields(name=":Default.x", message="other", node="n1")))
    assert data["name"] == ":Default.x" and data["node"] == "n1"
    assert data["message"] == "m" and data["message_"] == "other"


def test_plain_extra_attributes_are_fields_too() -> None:
    assert _line(_record("m", request_id="abc"))["request_id"] == "abc"


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_values_json_cannot_hold_become_their_repr() -> None:
    loop: list[Any] = []
    loop.append(loop)
    data = _line(
        _record(
            "m",
            **fields(
                obj=object(),
                nan=math.nan,
                loop=loop,
                keys={(1, 2): 3},
                bad=_Unprintable(),
                ok={"a": [1, None, "é"]},
            ),
        )
    )
    assert data["obj"].startswith("<object object at")
    assert data["nan"] == "nan"
    assert data["loop"] == "[[...]]"
    assert data["keys"] == "{(1, 2): 3}"
    assert data["bad"] == "<unrepresentable _Unprintable>"
    assert data["ok"] == {"a": [1, None, "é"]}


def test_a_message_whose_arguments_do_not_match_is_still_written() -> None:
    data = _line(_record("%s and %s", "one"))
    assert data["message"] == "'%s and %s' % ('one',)"


def test_tracebacks_stay_on_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    data = _line(record)
    assert "ValueError: boom" in data["exc"]


def test_context_fields_are_added_once_known() -> None:
    formatter = JsonFormatter()
    assert "node" not in _line(_record("m"), formatter)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    structured_log.set_context(handler, node="abc")
    assert _line(_record("m"), formatter)["node"] == "abc"
    # A field of the record itself wins over the context.
    assert _line(_record("m", **fields(node="other")), formatter)["node"] == "other"


@pytest.fixture
def _restore_root() -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("_restore_root")
def test_configure_writes_json_to_a_file_and_replaces_only_its_own_handler(
    tmp_path: Path,
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    path = tmp_path / "ns.log"
    structured_log.configure(log_format="json", log_file=str(path), level=logging.INFO)
    logging.getLogger("pairns.x").info("hello %s", "there", extra=fields(twin="h:1"))
    structured_log.configure(log_format="json", log_file=str(path), level=logging.INFO)
    logging.getLogger("pairns.x").debug("not shown")
    logging.getLogger("pairns.x").warning("again")
    assert len([h for h in root.handlers if h not in before]) == 1
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["hello there", "again"]
    assert lines[0]["twin"] == "h:1"


@pytest.mark.usefixtures("_restore_root")
def test_configure_refuses_an_unknown_format_and_a_file_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        structured_log.configure(log_format="xml")
    with pytest.raises(OSError):
        structured_log.configure(log_file=str(tmp_path / "missing" / "ns.log"))
