"""IPv6 discovery: a node on an IPv6 address joins the multicast group, locators ask there.

IPv6 has no broadcast, and this machine's loopback does not carry multicast, so these
tests build their own link: a network namespace holding a veth pair (``va``
``fd00:77::1``, ``vb`` ``fd00:77::2``), with nothing leading out of it. Nodes and
locators run inside (``ip netns exec``); the namespace and everything in it is removed
at the end. Needs root and ``ip``; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration._support import SERVER_CMD, NodeProcess, clean_env

A, B = "fd00:77::1", "fd00:77::2"
GROUP = "ff02::5079:726f"


def _problem() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with a veth pair carrying A and B (multicast on), removed at the end."""
    problem = _problem()
    if problem:
        pytest.skip(problem)
    name = f"pairns-t6-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        run = ("netns", "exec", name, "ip")
        _ip(*run, "link", "set", "lo", "up")
        _ip(*run, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for dev, address in (("va", A), ("vb", B)):
            _ip(*run, "link", "set", dev, "multicast", "on", "up")
            _ip(*run, "-6", "addr", "add", f"{address}/64", "dev", dev, "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _env(**extra: str) -> dict[str, str]:
    # Inside the namespace nothing leads out: the loopback-only guard does not apply.
    return {"PAIRNS_NETGUARD": "off", "PYRO_BC_RETRIES": "1", "PYRO_BC_TIMEOUT": "0.5", **extra}


StartNode = Callable[..., NodeProcess]


@pytest.fixture
def start_node(netns: str, tmp_path: Path) -> Iterator[StartNode]:
    nodes: list[NodeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> NodeProcess:
        node = NodeProcess(
            ["-v", *args],
            workdir=tmp_path / "work",
            storage=tmp_path / f"storage{len(nodes)}",
            env=_env(**(env or {})),
            name=f"node{len(nodes)}",
            cmd=["ip", "netns", "exec", netns, *SERVER_CMD],
        )
        nodes.append(node)
        return node.wait_started() if wait else node

    yield start
    for node in nodes:
        node.kill()


def _locate(netns: str, *, use_async: bool = False, **env: str) -> str:
    """Run a locator with no host inside the namespace; what it found (or its error)."""
    call = (
        "trio.run(pairns.NameServerLocator().async_getNS)"
        if use_async
        else "pairns.NameServerLocator().getNS()"
    )
    code = (
        "import pairns, trio\n"
        f"ns = {call}\n"
        "print(ns.uri if hasattr(ns, 'uri') else ns)\n"
    )
    # No fallback host answers: only discovery can find the node.
    full = clean_env(**_env(PYRO_NS_PORT="1", PYRO_NS2_PORT="2", **env))
    result = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def test_a_node_on_an_ipv6_address_is_found_through_the_group(
    netns: str, start_node: StartNode
) -> None:
    node = start_node("-n", A, "-p", "9090")
    assert f"discovery: answering 'location' on [::]:9090/udp + group {GROUP}%va" in node.banner
    ns = netns
    # The locator asks on vb: the request crosses the veth pair to the node on va.
    for use_async in (False, True):
        found = _locate(ns, use_async=use_async, PYRO_NS_MC_INTERFACE="vb")
        assert "PYRO://[fd00:77::1]:9090/Pyro.NameServer" in found, found
    # Without an interface the system's route for the group is used.
    assert "[fd00:77::1]:9090" in _locate(ns)


def test_each_node_of_a_pair_and_then_the_survivor(netns: str, start_node: StartNode) -> None:
    first = start_node("-n", A, "-p", "9090", "-1", f"[{B}]:9091")
    second = start_node("-n", B, "-p", "9091", "-2", f"[{A}]:9090")
    ns = netns
    found = _locate(ns, PYRO_NS_MC_INTERFACE="vb")
    assert "[fd00:77::1]:9090" in found or "[fd00:77::2]:9091" in found, found
    # Only the second node's port is asked: it answers from its own address.
    found = _locate(ns, PYRO_NS_MC_INTERFACE="vb", PYRO_NS_BC_PORT="9091")
    assert "[fd00:77::2]:9091" in found, found
    first.kill()
    found = _locate(ns, PYRO_NS_MC_INTERFACE="va")
    assert "[fd00:77::2]:9091" in found, found
    second.kill()
    found = _locate(ns, PYRO_NS_MC_INTERFACE="va")
    assert "could not find a name server" in found and "[ff02::5079:726f]:9091" in found


def test_a_wildcard_node_answers_with_an_address_the_asker_can_use(
    netns: str, start_node: StartNode
) -> None:
    start_node("-n", "::", "-p", "9090", env={"PYRO_NS_MC_INTERFACE": "va"})
    ns = netns
    # Wait for the link-local addresses to finish duplicate address detection: a request
    # to a link-local group then comes from fe80::..., and a URI cannot name that address
    # without a zone. The answer names an address of the interface the request came in on.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "tentative"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        if "fe80" not in out:
            break
        time.sleep(0.2)
    found = _locate(ns, PYRO_NS_MC_INTERFACE="vb")
    assert "PYRO://[fd00:77::1]:9090/Pyro.NameServer" in found, found


def test_the_start_up_check_sees_a_name_server_in_the_group(start_node: StartNode) -> None:
    start_node("-n", A, "-p", "9090")
    other = start_node("-n", B, "-p", "9092", wait=False)
    assert other.wait_exit(30) == 1
    assert (
        "another name server (PYRO://[fd00:77::1]:9090/Pyro.NameServer) already answers on "
        f"[{GROUP}]:9090/udp; use -m to start another one anyway, or -r not to look"
    ) in other.stderr()
    # -m starts anyway; both then answer in the group.
    start_node("-n", B, "-p", "9092", "-m")


def test_a_group_that_cannot_be_joined_stops_the_start_with_one_line(
    start_node: StartNode,
) -> None:
    node = start_node("-n", A, "-p", "9090", env={"PYRO_NS_MC_INTERFACE": "nosuch0"}, wait=False)
    assert node.wait_exit(30) == 1
    assert node.stderr().strip().splitlines()[-1] == (
        "pairns: no network interface named 'nosuch0'"
    )
