"""``python -m pairns.chaos``: the same as ``pairns-chaos``."""

import sys

from pairns.chaos.cli import main

sys.exit(main())
