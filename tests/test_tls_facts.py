"""Reading a live endpoint's answer: the Server header, and whether it names a version."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import write_certificate

from nexus_deploy.facts.tls import announces_version, header_value, served_endpoint

HEAD = "HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\nX-Server: no"


def test_the_server_header_is_found_whatever_its_case_and_only_it():
    assert header_value(HEAD, "server") == "nginx/1.22.1"
    assert header_value(HEAD.replace("Server:", "SERVER :"), "server") == "nginx/1.22.1"
    assert header_value("HTTP/1.1 200 OK\r\nX-Server: nginx/1.2", "server") == ""


@pytest.mark.parametrize(
    ("header", "announces"),
    [
        ("nginx", False),
        ("", False),
        ("cloudflare", False),
        ("nginx/1.22.1", True),
        ("Apache/2.4.57 (Debian)", True),
        ("openresty/ 1.21", True),
    ],
)
def test_a_version_is_a_slash_followed_by_digits(header, announces):
    assert announces_version(header) is announces


@contextlib.contextmanager
def tls_listener_that_never_answers(cert: Path, key: Path) -> Iterator[str]:
    """A real TLS server on loopback: completes each handshake, then says nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True):
            stop.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def test_an_endpoint_silent_after_the_handshake_still_shows_its_certificate(tmp_path):
    cert, key = write_certificate(tmp_path, "silent")
    with tls_listener_that_never_answers(cert, key) as endpoint:
        served = served_endpoint(endpoint, "localhost", timeout_s=0.5)
    der = ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="utf-8"))
    assert served.fingerprint == hashlib.sha256(der).hexdigest()
    assert served.server_header == ""  # no answer to HEAD within the timeout: unknown, not a fault
