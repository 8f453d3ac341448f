"""A malformed batch from an authenticated twin is refused and logged, never applied
(issue 22): a proven twin connection pushes randomly damaged batches at a real node
(in-process, on 127.0.0.1); each drops the link and is logged, and the namespace
(its digest) never changes - not even by the valid changes of a batch that also holds
a bad one.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from pairns.namespace import Kind
from pairns.namespace.entry import Entry
from pairns.namespace.stamps import Stamp
from pairns.node import open_node
from pairns.replication.messages import Item, encode_contents

from .test_pair_promise import client, config, free_port, link, proven_twin, wait_for

#: Damaged batches per run (each costs a proven connection: a few milliseconds).
CASES = 40


def good_contents(count: int) -> dict[str, Any]:
    items = [
        Item(
            i + 1,
            Entry(
                f":Default.fz{i}", Kind.OBJECT, f"PYRO://h:1/o{i}", {"i": i}, 1.0, 1.0, "ee",
                Stamp((i + 1) << 16, "ee"),
            ),
        )
        for i in range(count)
    ]
    contents: dict[str, Any] = json.loads(encode_contents(items, []))
    return contents


def damage(rng: random.Random, contents: dict[str, Any]) -> dict[str, Any] | str:
    """One damage to a batch's columns (the last entry's, so earlier ones are valid)."""
    key = rng.choice(sorted(contents))
    column = contents[key]
    kind = rng.randrange(9)
    if kind == 0:
        del contents[key]
    elif kind == 1 and column:
        column[-1] = rng.choice(([], {}, "x", -1, 2**70, None, 1e308, True))
    elif kind == 2:
        column.append(column[-1] if column else 0)  # a column longer than the others
    elif kind == 3 and column:
        column.pop()
    elif kind == 4:
        contents["seq"] = list(reversed(contents["seq"]))  # positions must increase
    elif kind == 5:
        contents["owner"][-1] = 99  # an index outside the node table
    elif kind == 6:
        contents["name"][-1] = rng.choice((":Default..x", "", "relative", ":" + "a" * 5000))
    elif kind == 7:
        deep: Any = []
        for _ in range(100):
            deep = [deep]
        contents["meta"][-1] = deep  # deeper than MAX_JSON_DEPTH
    else:
        return json.dumps(contents)[: rng.randrange(1, 200)]  # a truncated text
    return contents


@pytest.mark.parametrize("seed", range(CASES))
async def test_a_damaged_batch_from_the_proven_twin_is_refused_and_never_applied(
    tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(seed)
    c1 = config(tmp_path, "n1", free_port(), 1, f"127.0.0.1:{free_port()}", identification="s")
    async with open_node(c1) as n1, client(n1, identification="s") as a:
        await a.register(":Default.keep", "PYRO://127.0.0.1:1/k")
        digest = n1.namespace.digest()
        count = rng.randrange(1, 5)
        damaged = damage(rng, good_contents(count))
        text = damaged if isinstance(damaged, str) else json.dumps(damaged)
        batch = {"start": 0, "upto": count, "ack": 0, "changes": text}
        with caplog.at_level(logging.WARNING, "pairns.replication"):
            async with proven_twin(n1, "s") as (peer, session):
                await peer.oneway("push", session, batch)
                # The link drops: on the bad batch, or (a damage the batch survived, an
                # unused node-table entry say) when this fake twin falls silent.
                await wait_for(lambda: link(n1).startswith(("down", "connecting")), 3.0)
        if "bad batch from the twin" in caplog.text:
            assert n1.namespace.digest() == digest, (seed, text[:300])
            for i in range(count):
                assert not n1.namespace.exists(f":Default.fz{i}")
        else:  # accepted whole: every change is one a client could have written
            assert all(n1.namespace.exists(f":Default.fz{i}") for i in range(count)), text
        assert n1.namespace.exists(":Default.keep")
        assert all(isinstance(uri, str) for _, uri in n1.namespace.flatlist())


def test_most_damages_are_refused() -> None:
    """The damages mostly make invalid batches (the test above checks both outcomes)."""
    refused = 0
    for seed in range(CASES):
        rng = random.Random(seed)
        count = rng.randrange(1, 5)
        contents = good_contents(count)
        if damage(rng, contents) != good_contents(count):
            refused += 1
    assert refused >= CASES * 3 // 4
