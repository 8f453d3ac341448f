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
