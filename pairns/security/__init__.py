"""A node's defences beyond the identification handshake (issue 22).

* :mod:`~pairns.security.admin` - the admin identification: a per-call HMAC proof
  over a fresh, single-use nonce for ``shutdown``, ``resync`` and ``load``.
* :mod:`~pairns.security.guard` - the connection and broadcast guards: ``--allow`` /
  ``--allow-twin`` address lists and the ``-s`` plugin module (Pyro 3's security
  plugins), with their refusal counters.

No IO here: the daemon, the name service, the peer endpoint and the discovery responder
ask these objects and act on the answer. ``docs/security.md`` is the threat model.
"""
