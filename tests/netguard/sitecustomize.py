"""Installs the suite's network guard in processes the tests start (see pairns_netguard)."""

import pairns_netguard

pairns_netguard.install()
