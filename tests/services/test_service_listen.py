"""The listening socket the custodian and witness services share (overt.services._listen)."""

from __future__ import annotations

import socket

import pytest

from overt.errors import ConfigurationError
from overt.services._listen import bind, listen, url_of


def test_port_zero_picks_a_free_port_and_prints_its_url() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port != 0
        assert url_of(sock) == f"http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sock.close()


def test_a_port_in_use_is_refused() -> None:
    first = bind("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            bind("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()


def test_listen_says_what_to_do_when_the_port_is_taken() -> None:
    first = bind("127.0.0.1", 0)
    port = first.getsockname()[1]
    try:
        with pytest.raises(ConfigurationError, match=rf"^cannot listen on 127\.0\.0\.1:{port} \("):
            listen("127.0.0.1", port)
    finally:
        first.close()


def test_ipv6_urls_are_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = bind("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        assert url_of(sock) == f"http://[::1]:{sock.getsockname()[1]}"
    finally:
        sock.close()
