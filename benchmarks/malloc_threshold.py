"""What fixing glibc's mmap threshold costs (``pairns/_malloc.py``): the ``pairns``
command with it (A) and without it (B), same checkout, interleaved. Prints figures,
never fails on them::

    .venv/bin/python benchmarks/malloc_threshold.py [ROUNDS]

Fills a persistent node with 100,000 names once, then per round and variant starts a
node on a copy of that database (start-up time), resolves for 4 s from 8 tasks on one
async proxy, and reads its RSS; medians and ratios A/B at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import trio

from pairns.naming.proxy import AsyncNameServerProxy

PY = sys.executable
A = [PY, "-c", "import sys; import pairns.cli.server as s; sys.exit(s.main(sys.argv[1:]))"]
B = [
    PY,
    "-c",
    "import sys; import pairns.cli.server as s; "
    "s.fix_mmap_threshold=lambda *a, **k: False; sys.exit(s.main(sys.argv[1:]))",
]


def start(cmd: list[str], db: str) -> tuple[subprocess.Popen[bytes], int, float]:
    work = tempfile.mkdtemp(prefix="ab-")
    env = dict(os.environ, PYRO_STORAGE=work, PYTHONUNBUFFERED="1")
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    t = time.monotonic()
    p = subprocess.Popen(
        [*cmd, "-n", "127.0.0.1", "-p", "0", "-d", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=work,
    )
    assert p.stdout is not None
    for line in p.stdout:
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1)), time.monotonic() - t
    raise RuntimeError("no listening line")


def rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def fill(port: int, n: int) -> None:
    async with AsyncNameServerProxy("127.0.0.1", port, timeout=30) as ns:

        async def w(k: int) -> None:
            for i in range(k, n, 16):
                await ns.register(f":Default.n{i}", f"PYRO://127.0.0.1:9/{i:032x}")

        async with trio.open_nursery() as nur:
            for k in range(16):
                nur.start_soon(w, k)


async def resolves(port: int, seconds: float) -> float:
    count = 0
    async with AsyncNameServerProxy("127.0.0.1", port, timeout=30) as ns:
        end = trio.current_time() + seconds

        async def w(k: int) -> None:
            nonlocal count
            i = k
            while trio.current_time() < end:
                await ns.resolve(f":Default.n{i % 100000}")
                count += 1
                i += 7919

        async with trio.open_nursery() as nur:
            for k in range(8):
                nur.start_soon(w, k)
    return count / seconds


def main() -> None:
    base = tempfile.mkdtemp(prefix="ab-db-")
    p, port, _ = start(A, base)
    trio.run(fill, port, 100_000)
    p.terminate()
    p.wait()
    res: dict[str, list[tuple[float, float, float, float]]] = {"A": [], "B": []}
    for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 4):
        for label, cmd in (("A", A), ("B", B)) if r % 2 == 0 else (("B", B), ("A", A)):
            db = tempfile.mkdtemp(prefix="ab-copy-")
            shutil.copytree(base, db, dirs_exist_ok=True)
            p, port, st = start(cmd, db)
            time.sleep(0.5)
            r0 = rss(p.pid)
            tput = trio.run(resolves, port, 4.0)
            r1 = rss(p.pid)
            p.terminate()
            p.wait()
            shutil.rmtree(db, ignore_errors=True)
            res[label].append((st, tput, r0, r1))
            print(
                f"round {r} {label}: start {st:.2f} s, resolve {tput:,.0f}/s, "
                f"RSS {r0:.1f} -> {r1:.1f} MiB",
                flush=True,
            )
    for i, name in enumerate(("start s", "resolves/s", "RSS start", "RSS after")):
        a = statistics.median(x[i] for x in res["A"])
        b = statistics.median(x[i] for x in res["B"])
        print(f"{name}: fixed threshold {a:.2f}, glibc default {b:.2f}, ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
