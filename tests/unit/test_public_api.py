"""The top-level package: every public name resolves, and clients import little."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pairns
import pairns.rpc


@pytest.mark.parametrize("package", [pairns, pairns.rpc])
def test_every_public_name_resolves_and_is_listed(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(package, name) is not None
        assert name in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        package.nope  # type: ignore[attr-defined]  # noqa: B018


def test_public_names_are_the_defining_modules_objects() -> None:
    from pairns.naming.locator import NameServerLocator
    from pairns.rpc.daemon import Daemon

    assert pairns.NameServerLocator is NameServerLocator
    assert pairns.Daemon is Daemon is pairns.rpc.Daemon
    from pairns import NamingError, Proxy  # noqa: F401  (the documented import style)


@pytest.mark.parametrize(
    "statement",
    [
        "import pairns",
        "import pairns.cli.ctl",
        "from pairns import NameServerLocator, NamingError, Proxy, URI",
    ],
)
def test_blocking_clients_and_pairns_ctl_do_not_import_trio(statement: str) -> None:
    code = f"{statement}\nimport sys\nsys.exit(3 if 'trio' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
