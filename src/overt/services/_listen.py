"""The listening socket of a standalone service (custodian, witness): bound before uvicorn
starts, so that port 0 can be resolved and the URL printed for whoever started the process,
then served by uvicorn until interrupted.

This module knows sockets and the ASGI server only: no routes, no files, no protocol logic.
"""

from __future__ import annotations

import socket
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from overt.errors import ConfigurationError

LISTEN_BACKLOG: Final = 128


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); :class:`OSError` if
    the address cannot be used."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise ConfigurationError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket, with brackets around an IPv6 host."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """:func:`bind`, with :class:`ConfigurationError` saying what to do if it fails."""
    try:
        return bind(host, port)
    except OSError as e:
        raise ConfigurationError(f"cannot listen on {host}:{port} ({e}); pick another port") from e


def serve(app: ASGIApp, sock: socket.socket, log_level: str) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted; the socket is closed after."""
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["LISTEN_BACKLOG", "bind", "listen", "serve", "url_of"]
