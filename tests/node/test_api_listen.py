"""The API's socket, opened before the HTTP stack is loaded (node.api.listen)."""

from __future__ import annotations

import socket

import pytest

from node.agent.config import HostPort
from node.api.listen import open_api_socket


def test_port_zero_gives_the_bound_port_in_the_url_and_accepts_at_once() -> None:
    sock, url = open_api_socket(HostPort("127.0.0.1", 0), tls=False)
    with sock:
        port = sock.getsockname()[1]
        assert url == f"http://127.0.0.1:{port}"
        # Listening already: a client connects (and waits in the backlog)
        # before any server accepts.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_tls_and_ipv6_urls() -> None:
    sock, url = open_api_socket(HostPort("127.0.0.1", 0), tls=True)
    sock.close()
    assert url.startswith("https://127.0.0.1:")
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        sock, url = open_api_socket(HostPort("::1", 0), tls=False)
    except OSError:
        pytest.skip("::1 cannot be bound here")
    with sock:
        assert url == f"http://[::1]:{sock.getsockname()[1]}"


def test_a_taken_port_is_an_oserror() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with taken, pytest.raises(OSError):
        open_api_socket(HostPort("127.0.0.1", taken.getsockname()[1]), tls=False)


def test_tls_files_that_do_not_load_fail_before_anything_serves(tmp_path) -> None:
    from node.api.listen import check_tls

    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("not a PEM file\n")
    with pytest.raises(OSError):  # ssl.SSLError: the agent exits "cannot start"
        check_tls(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
