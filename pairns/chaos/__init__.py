"""The chaos-test suite: two real nodes, client processes, scheduled faults, a checker.

``pairns-chaos`` (:mod:`pairns.chaos.cli`) runs a campaign; :mod:`pairns.chaos.history`
holds the records every part writes and reads; :mod:`pairns.chaos.checker` decides, from
the histories and the states the runner captured, whether the pair kept its promise.
See ``docs/chaos.md``.
"""
