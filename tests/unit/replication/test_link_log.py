"""Issue 21: every change of the link's state is one log line, with structured fields."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from pairns.node import open_node
from pairns.replication.link_log import RETRY_SUMMARY_EVERY, describe_change
from pairns.replication.state import LinkState, LinkStatus
from pairns.structured_log import FIELDS_ATTR
from tests.unit.replication.test_link import config, free_port, paired, wait_for

S = LinkState
TWIN = "127.0.0.1:9091"


def test_no_change_no_line() -> None:
    paired_status = LinkStatus(S.PAIRED)
    assert describe_change(paired_status, LinkStatus(S.PAIRED, since=5), twin=TWIN) is None
    refused = LinkStatus(S.REFUSED, "same role")
    assert describe_change(refused, LinkStatus(S.REFUSED, "same role"), twin=TWIN) is None
    # Another reason is news.
    line = describe_change(refused, LinkStatus(S.REFUSED, "twin proof failed"), twin=TWIN)
    assert line is not None and line.level == logging.ERROR


def test_the_line_and_its_fields() -> None:
    line = describe_change(LinkStatus(S.SYNCING), LinkStatus(S.PAIRED), twin=TWIN, note="in sync")
    assert line is not None
    assert line.message == f"twin link: syncing -> paired (twin {TWIN}): in sync"
    assert line.level == logging.WARNING
    assert dict(line.fields) == {"twin": TWIN, "link_state": "paired", "previous_state": "syncing"}
    down = describe_change(
        LinkStatus(S.PAIRED), LinkStatus(S.DOWN, "the twin went silent"), twin=TWIN
    )
    assert down is not None
    assert down.message == f"twin link: paired -> down (twin {TWIN}): the twin went silent"
    assert down.fields["reason"] == "the twin went silent" and down.level == logging.WARNING


@pytest.mark.parametrize(
    ("failures", "new_reason", "level"),
    [
        (1, True, logging.WARNING),  # the first failure: serving alone
        (2, False, logging.DEBUG),
        (3, True, logging.INFO),  # another reason than the last attempt's
        (RETRY_SUMMARY_EVERY, False, logging.INFO),
        (RETRY_SUMMARY_EVERY + 1, False, logging.DEBUG),
    ],
)
def test_retries_are_quiet_except_the_first_a_new_reason_and_every_tenth(
    failures: int, new_reason: bool, level: int
) -> None:
    line = describe_change(
        LinkStatus(S.CONNECTING),
        LinkStatus(S.DOWN, "refused"),
        twin=TWIN,
        failures=failures,
        new_reason=new_reason,
    )
    assert line is not None and line.level == level
    redial = describe_change(
        LinkStatus(S.DOWN, "refused"), LinkStatus(S.CONNECTING), twin=TWIN, failures=failures
    )
    assert redial is not None and redial.level == logging.DEBUG


def test_first_dial_is_info_and_a_level_can_be_asked_for() -> None:
    line = describe_change(LinkStatus(S.DOWN), LinkStatus(S.CONNECTING), twin=TWIN)
    assert line is not None and line.level == logging.INFO
    loud = describe_change(
        LinkStatus(S.DOWN), LinkStatus(S.CONNECTING), twin=TWIN, level=logging.WARNING
    )
    assert loud is not None and loud.level == logging.WARNING


def _changes(records: list[logging.LogRecord], twin_port: int) -> list[tuple[str, str]]:
    found = []
    for record in records:
        data: dict[str, Any] = getattr(record, FIELDS_ATTR, {})
        if "link_state" in data and data["twin"] == f"127.0.0.1:{twin_port}":
            assert record.getMessage().startswith(
                f"twin link: {data['previous_state']} -> {data['link_state']} "
            )
            found.append((data["previous_state"], data["link_state"]))
    return found


async def test_a_pair_logs_each_change_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pairns.replication")
    p1, p2 = free_port(), free_port()
    async with open_node(config(tmp_path, "n1", p1, 1, p2)) as n1:
        async with open_node(config(tmp_path, "n2", p2, 2, p1)) as n2:
            await paired(n1, n2)
        # n2 is gone: n1 drops it and waits for it again.

        async def dropped() -> bool:
            return ("paired", "down") in _changes(caplog.records, p2)

        await wait_for(dropped, 5.0)
        await trio.sleep(0.05)
    first = _changes(caplog.records, p2)
    second = _changes(caplog.records, p1)
    assert first[:4] == [
        ("down", "connecting"),
        ("connecting", "handshaking"),
        ("handshaking", "syncing"),
        ("syncing", "paired"),
    ]
    assert first[4:6] == [("paired", "down"), ("down", "connecting")]
    assert second[-3:] == [
        ("connecting", "handshaking"),
        ("handshaking", "syncing"),
        ("syncing", "paired"),
    ]
    assert second[0] == ("down", "connecting")
    # Each change is one line: no two in a row name the same change.
    for changes in (first, second):
        assert all(a != b for a, b in itertools.pairwise(changes))
    paired_lines = [r for r in caplog.records if "-> paired" in r.getMessage()]
    assert len(paired_lines) == 2 and all(r.levelno == logging.WARNING for r in paired_lines)
