"""Settings shared by the whole suite.

Hypothesis builds its Unicode tables the first time a test draws text. On a fresh clone
(no ``.hypothesis/`` folder), with the other core busy, that takes seconds and lands
inside whichever test draws text first, which then fails the "input generation is slow"
health check although the test itself is fine. The suite's profile turns that one check
off and lifts the per-example deadline (CI machines drift 2x in speed); every test keeps
its number of examples and its assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile(
    "pairns",
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
settings.load_profile("pairns")


# -- the network rule: datagrams from the test process go to loopback only -------------
# (tests/netguard/pairns_netguard.py; processes the tests start get it too, see clean_env)

sys.path.insert(0, str(Path(__file__).parent / "netguard"))
import pairns_netguard  # noqa: E402

pairns_netguard.install()


# -- TLS certificates, made at run time (no key material is committed) -----------------

import datetime  # noqa: E402
import ssl  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


class TLSFiles:
    """PEM files made by ``trustme`` for one test session, all for loopback.

    ``ca``: the CA the nodes trust; ``server``: a certificate for ``127.0.0.1`` and
    ``localhost``; ``client``: a client certificate from ``ca``; ``stranger`` and
    ``stranger_client``: a server and a client certificate from another CA;
    ``expired``: a server certificate for ``127.0.0.1`` that expired yesterday;
    ``elsewhere``: a valid one for ``pairns.example`` only. Each certificate ``NAME``
    has ``NAME.pem`` and ``NAME-key.pem``.
    """

    def __init__(self, directory: Path) -> None:
        import trustme  # the test extra; only the TLS tests need it

        self.dir = directory
        ca, other = trustme.CA(), trustme.CA()
        ca.cert_pem.write_to_path(str(self.path("ca")))
        other.cert_pem.write_to_path(str(self.path("other-ca")))
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        issued = {
            "server": ca.issue_cert("127.0.0.1", "localhost"),
            "client": ca.issue_cert("pairns-client.example"),
            "stranger": other.issue_cert("127.0.0.1", "localhost"),
            "stranger_client": other.issue_cert("pairns-client.example"),
            "expired": ca.issue_cert(
                "127.0.0.1", "localhost", not_before=yesterday - datetime.timedelta(days=30),
                not_after=yesterday,
            ),
            "elsewhere": ca.issue_cert("pairns.example"),
        }
        for name, cert in issued.items():
            cert.cert_chain_pems[0].write_to_path(str(self.path(name)))
            cert.private_key_pem.write_to_path(str(self.key(name)))

    def path(self, name: str) -> Path:
        """The certificate file of *name* (``ca``, ``server``, ...)."""
        return self.dir / f"{name}.pem"

    def key(self, name: str) -> Path:
        """The private key file of certificate *name*."""
        return self.dir / f"{name}-key.pem"

    def server_context(self, name: str = "server", *, mutual: bool = False) -> ssl.SSLContext:
        """A server context presenting *name*; *mutual*: require a client certificate."""
        from pairns.tls import server_context

        ca = str(self.path("ca")) if mutual else None
        return server_context(str(self.path(name)), str(self.key(name)), ca)

    def client_context(self, cert: str | None = None, *, ca: str = "ca") -> ssl.SSLContext:
        """A client context trusting *ca*, presenting certificate *cert* if given."""
        from pairns.tls import client_context

        return client_context(
            str(self.path(ca)),
            None if cert is None else str(self.path(cert)),
            None if cert is None else str(self.key(cert)),
        )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSFiles]:
    """Certificates for the TLS tests (see :class:`TLSFiles`)."""
    yield TLSFiles(tmp_path_factory.mktemp("tls"))
