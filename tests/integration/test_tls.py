"""A TLS pair of ``pairns`` processes driven by ``pairns-ctl``, on 127.0.0.1 only.

Both nodes run with ``--tls-cert/--tls-key/--tls-ca`` (mutual TLS) and ``-i``: the twin
link is TLS with identification on top. Certificates come from ``tls_files``
(tests/conftest.py, trustme, made at run time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import HOST, NodeProcess, free_ports, run_ctl, wait_until

IDENT = "tls-s3cret"
PAIR_TIMEOUT = 20.0


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.kill()


def tls_args(files: Any) -> list[str]:
    return [
        "--tls-cert",
        str(files.path("server")),
        "--tls-key",
        str(files.key("server")),
        "--tls-ca",
        str(files.path("ca")),
    ]


def client_args(files: Any, cert: bool = True) -> list[str]:
    args = ["--tls-ca", str(files.path("ca"))]
    if cert:
        args += ["--tls-cert", str(files.path("client")), "--tls-key", str(files.key("client"))]
    return args


def status(files: Any, node: NodeProcess) -> dict[str, Any]:
    done = run_ctl(node.port, *client_args(files), "status", ident=IDENT, json_out=True)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_tls_pair_serves_pairns_ctl_and_refuses_plain_and_certless_clients(
    tls_files: Any, tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    p1, p2 = free_ports(2)
    for name, port, role in (
        ("n1", p1, ["-1", f"{HOST}:{p2}"]),
        ("n2", p2, ["-2", f"{HOST}:{p1}"]),
    ):
        node = NodeProcess(
            ["-n", HOST, "-p", str(port), "-x", "-i", IDENT, *role, *tls_args(tls_files)],
            workdir=tmp_path / "logs",
            storage=tmp_path / name,
            env={"PYRO_NS_PEER_TIMEOUT": "1"},
            name=name,
        )
        nodes.append(node)
    n1, n2 = (node.wait_started() for node in nodes)
    assert f"URI: PYROSSL://{HOST}:{p1}/Pyro.NameServer\n" in n1.banner
    assert "TLS: on (clients and the twin must present a certificate signed by --tls-ca; " in (
        n1.banner
    )
    assert wait_until(
        lambda: (
            status(tls_files, n1)["link"] == "paired" and status(tls_files, n2)["link"] == "paired"
        ),
        PAIR_TIMEOUT,
        interval=0.2,
    ), (n1.stderr(), n2.stderr())

    ctl = client_args(tls_files)
    done = run_ctl(p1, *ctl, "register", ":Default.tls", "PYROSSL://127.0.0.1:7766/x", ident=IDENT)
    assert done.returncode == 0, done.stderr
    assert wait_until(
        lambda: (
            run_ctl(p2, *ctl, "resolve", "tls", ident=IDENT).stdout.strip()
            == "PYROSSL://127.0.0.1:7766/x"
        ),
        PAIR_TIMEOUT,
        interval=0.2,
    )
    assert status(tls_files, n2)["tls"] == "mutual"

    # A plain pairns-ctl: told the node wants TLS, quickly.
    start = time.monotonic()
    plain = run_ctl(p1, "ping", ident=IDENT)
    assert plain.returncode == 3 and "requires TLS" in plain.stderr, plain.stderr
    assert time.monotonic() - start < 10
    # TLS without a client certificate: refused, and the node says why in one line.
    certless = run_ctl(p1, *client_args(tls_files, cert=False), "ping", ident=IDENT)
    assert certless.returncode == 3
    assert "requires a client certificate" in certless.stderr, certless.stderr
    # The wrong CA for the node's certificate.
    wrong_ca = run_ctl(p1, "--tls-ca", str(tls_files.path("other-ca")), "ping", ident=IDENT)
    assert wrong_ca.returncode == 3 and "not signed by a trusted CA" in wrong_ca.stderr
    # A missing file is a usage error (exit 2), before anything is dialled.
    missing = run_ctl(p1, "--tls-ca", str(tmp_path / "none.pem"), "ping")
    assert missing.returncode == 2 and "--tls-ca: cannot read" in missing.stderr

    assert wait_until(
        lambda: (
            "presented no certificate (--tls-ca requires one)" in n1.stderr()
            and "that does not speak TLS (said nothing)" in n1.stderr()
        ),
        5.0,
    ), n1.stderr()
