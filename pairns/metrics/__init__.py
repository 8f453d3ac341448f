"""Metrics of a node in the Prometheus text format (``--metrics host:port``).

* :mod:`pairns.metrics.calls` - calls by method and outcome and their latency, counted
  by wrapping the served methods (no cost when metrics are off);
* :mod:`pairns.metrics.collector` - everything else, read from the node's status at
  scrape time, turned into metric families;
* :mod:`pairns.metrics.endpoint` - the HTTP endpoint on Trio that serves them.
"""
