"""Issue 21: the docker-compose pair (``docker-compose.yml``, ``deploy/``), end to end.

The image is built by ``make docker-image`` (wheels made here, the base image from
``deploy/base-image.sh``), tagged ``pairns-test:local`` so that a pair of ``make
docker-up`` keeps its own. The pair runs as a compose project of its own (a unique
name), on host ports that were free and a /24 no Docker network or route of this host
uses, so it collides neither with ``make run`` / ``make docker-up`` nor with another run
of this test. The test process talks to the nodes on their published loopback ports
only; the client container broadcasts on the compose network the test created. ``down
-v`` removes containers, networks and volumes in a ``finally``.

Docker not usable: the test is skipped with the reason (``deploy/ensure-docker.sh``
installs and starts it; ``.ci/run`` calls it), or fails when ``PAIRNS_REQUIRE_DOCKER=1``
(which ``.ci/run`` sets once Docker runs). Every wait and every command is bounded.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pairns.naming.proxy import NameServerProxy
from pairns.uri import URI

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "pairns-test:local"
#: Seconds for `make docker-image` (the first run may build the base image: ~1.5 min).
BUILD_TIMEOUT = 900.0
#: Seconds for one compose command (up, kill, start, run, down).
COMPOSE_TIMEOUT = 180.0
#: Seconds for the pair to answer, pair up, report healthy or converge.
READY_TIMEOUT = 90.0
#: /24 candidates for the compose networks (172.30.N.0/24, N in this range).
SUBNET_CANDIDATES = range(100, 200)
UP_ATTEMPTS = 3
#: What `up` says when another project took the subnet or a port meanwhile.
CLASH = r"overlap|already allocated|address already in use"

TARGET = "PYRO://objecthost:7766/0123456789abcdef"
URI_TARGET = URI.from_string(TARGET)


# -- Docker available? ---------------------------------------------------------------


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw
    )


def _compose_command() -> list[str] | None:
    """``docker compose`` (v2) when it works, else ``docker-compose`` (v1), else None."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            if _run([*cmd, "version"], 30).returncode == 0:
                return cmd
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def _docker_problem() -> str | None:
    """Why Docker cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        info = _run(["docker", "info"], 30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["?"])[-1]
        return f"the Docker daemon does not answer ({last})"
    if _compose_command() is None:
        return "neither `docker compose` nor `docker-compose` works"
    return None


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    problem = _docker_problem()
    if problem is not None:
        reason = (
            f"Docker is not usable: {problem}; deploy/ensure-docker.sh (as root) installs "
            "and starts it"
        )
        if os.environ.get("PAIRNS_REQUIRE_DOCKER") == "1":
            pytest.fail(reason + " (PAIRNS_REQUIRE_DOCKER=1)")
        print(f"\nSKIP docker test: {reason}")
        pytest.skip(reason)
    cmd = _compose_command()
    assert cmd is not None
    return cmd


@pytest.fixture(scope="module")
def image(compose_cmd: list[str]) -> str:
    """The node image, built (or found up to date) by ``make docker-image``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "MAKE"))}
    env.pop("MFLAGS", None)
    started = time.monotonic()
    # -o: never remake the venv under the running test; BIN: wheels with this interpreter
    make = ["make", "--no-print-directory", "-C", str(REPO), "-o", ".venv/.installed"]
    built = _run(
        [*make, "docker-image", f"PAIRNS_IMAGE={IMAGE}", f"BIN={Path(sys.executable).parent}"],
        BUILD_TIMEOUT,
        env=env,
    )
    assert built.returncode == 0, f"make docker-image failed:\n{built.stdout}\n{built.stderr}"
    print(f"\nimage {IMAGE} ready in {time.monotonic() - started:.1f} s: {built.stdout.strip()}")
    return IMAGE


# -- free resources -------------------------------------------------------------------


def _free_tcp_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _used_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks that Docker networks or this host's routes use."""
    used: list[ipaddress.IPv4Network] = []
    ids = _run(["docker", "network", "ls", "-q"], 30).stdout.split()
    if ids:
        out = _run(["docker", "network", "inspect", "-f", "{{json .IPAM.Config}}", *ids], 30)
        for line in out.stdout.splitlines():
            for config in json.loads(line) or []:
                subnet = config.get("Subnet", "")
                if subnet and ":" not in subnet:
                    used.append(ipaddress.IPv4Network(subnet, strict=False))
    routes = Path("/proc/net/route")
    if routes.exists():  # destination and mask are little-endian hex
        for line in routes.read_text().splitlines()[1:]:
            fields = line.split()
            dest, mask = (int(x, 16).to_bytes(4, "little") for x in (fields[1], fields[7]))
            if int.from_bytes(mask, "big"):
                net = f"{ipaddress.IPv4Address(dest)}/{ipaddress.IPv4Address(mask)}"
                used.append(ipaddress.IPv4Network(net, strict=False))
    return used


def _free_net() -> str:
    """First three octets of a /24 that nothing here uses (``172.30.N``)."""
    used = _used_networks()
    candidates = list(SUBNET_CANDIDATES)
    random.shuffle(candidates)
    for n in candidates:
        net = ipaddress.IPv4Network(f"172.30.{n}.0/24")
        if not any(net.overlaps(u) for u in used):
            return f"172.30.{n}"
    raise AssertionError(f"no free 172.30.N.0/24 (N in {SUBNET_CANDIDATES}) on this host")


# -- the compose project ----------------------------------------------------------------


class Project:
    """One compose project of this test: its settings and its commands."""

    def __init__(self, compose_cmd: list[str], image: str) -> None:
        self.compose_cmd = compose_cmd
        self.name = f"pairnstest{os.getpid()}{secrets.token_hex(3)}"
        self.identification = secrets.token_urlsafe(16)
        self.image = image
        self.net = ""
        self.ns1_port = self.ns2_port = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "PAIRNS_"))}
        env.update(
            COMPOSE_PROJECT_NAME=self.name,
            PAIRNS_IMAGE=self.image,
            PAIRNS_IDENTIFICATION=self.identification,
            PAIRNS_NET=self.net,
            NS1_PORT=str(self.ns1_port),
            NS2_PORT=str(self.ns2_port),
        )
        return env

    def compose(
        self, *args: str, timeout: float = COMPOSE_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [*self.compose_cmd, "-f", str(REPO / "docker-compose.yml"), *args]
        done = _run(cmd, timeout, env=self.env(), cwd=REPO)
        if check:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def up(self) -> None:
        """Start ns1 and ns2; on a port or subnet lost to someone else, again elsewhere."""
        for attempt in range(1, UP_ATTEMPTS + 1):
            self.net = _free_net()
            self.ns1_port, self.ns2_port = _free_tcp_ports(2)
            done = self.compose("up", "-d", "--no-build", "ns1", "ns2", check=False)
            if done.returncode == 0:
                return
            clash = re.search(CLASH, done.stderr, re.IGNORECASE)
            self.compose("down", "-v", "-t", "2", check=False)
            assert clash and attempt < UP_ATTEMPTS, f"up failed:\n{done.stdout}\n{done.stderr}"

    def port(self, service: str) -> int:
        return self.ns1_port if service == "ns1" else self.ns2_port

    def proxy(self, service: str, timeout: float = 5.0) -> NameServerProxy:
        """A proxy to *service* on its loopback port; the twin given up front, so the
        proxy never looks up the address the nodes know each other by (``ns1``)."""
        twin = "ns2" if service == "ns1" else "ns1"
        return NameServerProxy(
            "127.0.0.1",
            self.port(service),
            identification=self.identification,
            timeout=timeout,
            twin=("127.0.0.1", self.port(twin)),
        )

    def status(self, service: str) -> dict[str, Any]:
        with self.proxy(service) as ns:
            return dict(ns.status())

    def health(self, service: str) -> str:
        container = self.compose("ps", "-q", service).stdout.strip()
        out = _run(["docker", "inspect", "-f", "{{.State.Health.Status}}", container], 30)
        return out.stdout.strip()


def wait_until(what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT) -> float:
    """Poll *check* (exceptions count as "not yet") until true; seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    last: object = None
    for _ in range(int(timeout / 0.2) + 1):
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # refused, reset, not paired yet: try again
            last = exc
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise AssertionError(f"not {what} after {timeout:.0f} s (last error: {last!r})")


@pytest.fixture
def project(compose_cmd: list[str], image: str) -> Iterator[Project]:
    p = Project(compose_cmd, image)
    try:
        yield p
    finally:
        down = p.compose("down", "-v", "-t", "5", check=False)
        if down.returncode != 0:
            print(f"down -v of {p.name} failed:\n{down.stdout}\n{down.stderr}")


# -- the test ---------------------------------------------------------------------------

#: Run in the client container: find the pair by broadcast (no host given), resolve the
#: names given as arguments and print what was found as JSON.
CLIENT = """
import json, os, sys, pairns
ns = pairns.NameServerLocator(os.environ["PYRO_NS_IDENTIFICATION"]).getNS()
with ns:
    found = str(ns.serving)
    names = {name: str(ns.resolve(name)) for name in sys.argv[1:]}
    print(json.dumps({"found": found, "nodes": [str(u) for u in ns.nodes], "names": names}))
"""


def test_compose_pair_fails_over_converges_and_is_found_by_broadcast(project: Project) -> None:
    timings: dict[str, float] = {}
    t = time.monotonic()
    project.up()
    timings["up"] = time.monotonic() - t

    def paired(service: str) -> Callable[[], bool]:
        return lambda: project.status(service)["link"] == "paired"

    timings["paired"] = wait_until("paired", lambda: paired("ns1")() and paired("ns2")())
    timings["healthy"] = wait_until(
        "healthy (pairns-ctl ping with the identification)",
        lambda: project.health("ns1") == project.health("ns2") == "healthy",
    )
    uid = project.compose("exec", "-T", "ns1", "id", "-u").stdout.strip()
    assert uid not in ("", "0"), f"the node runs as uid {uid!r}"

    # registered through ns1, resolved through ns2
    with project.proxy("ns1") as ns1:
        ns1.register(":Default.through-ns1", TARGET)
    with project.proxy("ns2") as ns2:
        wait_until("replicated to ns2", lambda: ns2.resolve(":Default.through-ns1") == URI_TARGET)

    # ns1 killed: ns2 serves writes alone
    t = time.monotonic()
    project.compose("kill", "ns1")
    timings["kill"] = time.monotonic() - t
    with pytest.raises(Exception):  # noqa: B017 - refused, reset: any connection error
        project.status("ns1")
    with project.proxy("ns2") as ns2:
        ns2.register(":Default.while-ns1-down", TARGET)
        assert ns2.resolve(":Default.while-ns1-down") == URI_TARGET

    # ns1 started again on its volume: the pair converges
    t = time.monotonic()
    project.compose("start", "ns1")
    wait_until("ns1 paired again", paired("ns1"))
    timings["start_to_paired"] = time.monotonic() - t
    digests: list[str] = []

    def converged() -> bool:
        digests[:] = [project.status("ns1")["digest"], project.status("ns2")["digest"]]
        return digests[0] == digests[1]

    wait_until(f"converged (digests {digests})", converged)
    with project.proxy("ns1") as ns1:
        assert ns1.resolve(":Default.while-ns1-down") == URI_TARGET
        assert ns1.resolve(":Default.through-ns1") == URI_TARGET

    # a client container finds the pair by broadcast on the compose network
    t = time.monotonic()
    run = project.compose(
        "run", "--rm", "-T", "client", "python3", "-c", CLIENT,
        ":Default.through-ns1", ":Default.while-ns1-down",
    )  # fmt: skip
    timings["client"] = time.monotonic() - t
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    found = URI.from_string(answer["found"]).address
    assert found in {(f"{project.net}.11", 9090), (f"{project.net}.12", 9091)}, answer
    # the twin as the found node knows it: by the name extra_hosts gives it
    assert len(answer["nodes"]) == 2, answer
    assert {URI.from_string(u).address[1] for u in answer["nodes"]} == {9090, 9091}, answer
    assert answer["names"] == {
        ":Default.through-ns1": str(URI_TARGET),
        ":Default.while-ns1-down": str(URI_TARGET),
    }
    print("\ndocker pair timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
