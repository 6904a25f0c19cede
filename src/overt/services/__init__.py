"""Overt's stand-alone services: parties with their own process, key and state (DESIGN §1, §7).

* :mod:`overt.services.witness` — the transparency-log witness: the C2SP tlog-witness HTTP
  interface over the sans-I/O core :mod:`overt.transparency.witness`, with its key and its
  durable state in a data directory; ``python -m overt.services.witness`` runs it.
* :mod:`overt.services.witness_client` — the async client a log operator uses to collect
  cosignatures from witnesses.

Modules are not imported here, so that ``python -m overt.services.witness`` runs cleanly and
importing one service does not load the others' dependencies.

A service never imports the relay server (:mod:`overt.server`) or the user's client
(:mod:`overt.client`): it speaks to them over HTTP only, as a separate party would.
"""
