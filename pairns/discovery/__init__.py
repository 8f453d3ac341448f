"""UDP discovery of a name server (Pyro 3's broadcast protocol, made safer).

* :mod:`pairns.discovery.protocol` - sans-IO: what a datagram means, what is answered,
  the per-source rate limit, how an answer is read. No sockets, no clock of its own.
* :mod:`pairns.discovery.responder` - the Trio task a node runs on its broadcast port.
* :mod:`pairns.discovery.search` - the locator's steps (broadcast, then direct hosts)
  and the blocking and async ways to send a broadcast round. The blocking side does
  not import Trio.
"""
