"""overt.server — the relay server: an ASGI application (FastAPI on uvicorn) of thin routes
over small services, and the means to run it.

* :func:`create_app` — the application over a :class:`~overt.storage.Storage` and a
  :class:`~overt.storage.PubSub`, with an injected clock and RNG.
* :func:`run_server` — SQLite in a data directory, in-process PubSub, uvicorn; what
  ``overt server`` runs.
* :class:`ServerConfig`, :class:`ServerLimits` — the franking key, the transparency keys and
  deployment (:class:`~overt.server.config.TransparencyConfig`), and the tunable bounds.

Modules: :mod:`~overt.server.app` (routes and the error edge), :mod:`~overt.server.auth`
(signed requests, replay cache, rate), services :mod:`~overt.server.accounts`,
:mod:`~overt.server.prekeys`, :mod:`~overt.server.messages`, :mod:`~overt.server.attachments`,
:mod:`~overt.server.delivery` (WebSocket), the transparency log's
:mod:`~overt.server.transparency` (manifest, reads), :mod:`~overt.server.directory` (key
directory), :mod:`~overt.server.checkpointer` (witnesses), :mod:`~overt.server.log_routes` and
:mod:`~overt.server.explorer` (the public page), :mod:`~overt.server.deployment` (the
configuration), and :mod:`~overt.server.limits` (every bound).

What this package must not know: the client, the CLI, plaintext (it relays and stores
ciphertext only), SQL (the stores hide it) or any key but its own — the franking key, the
provider's manifest key, the log's checkpoint key and the directory's VRF key — and public keys.
"""

from overt.server.app import create_app, wall_clock_ms
from overt.server.config import ServerConfig, load_or_create_franking_key
from overt.server.limits import ServerLimits
from overt.server.run import run_server

__all__ = [
    "ServerConfig",
    "ServerLimits",
    "create_app",
    "load_or_create_franking_key",
    "run_server",
    "wall_clock_ms",
]
