"""Reading a live endpoint's answer: the Server header, and whether it names a version."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
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
def tls_listener(cert: Path, key: Path, answer: Callable[[ssl.SSLSocket], None]) -> Iterator[str]:
    """A real TLS server on loopback for one connection: the handshake, then ``answer``, then
    silence until the test is done with it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True) as tls:
            with contextlib.suppress(OSError):
                answer(tls)
            done.wait(20)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(20)
        listener.close()


def silence(tls: ssl.SSLSocket) -> None:
    pass


def headers_then_stall(tls: ssl.SSLSocket) -> None:
    tls.sendall(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n")  # no blank line: unfinished


def drip(tls: ssl.SSLSocket) -> None:
    """The whole answer, one byte every 0.2 s: about 9 s in all."""
    for byte in b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n":
        tls.sendall(bytes([byte]))
        time.sleep(0.2)


def fingerprint_of(cert: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="utf-8"))).hexdigest()


def test_an_endpoint_silent_after_the_handshake_still_shows_its_certificate(tmp_path):
    cert, key = write_certificate(tmp_path, "silent")
    with tls_listener(cert, key, silence) as endpoint:
        served = served_endpoint(endpoint, "localhost", timeout_s=0.5)
    assert served.fingerprint == fingerprint_of(cert)
    assert served.server_header is None  # no answer at all: unknown, told apart from "none"


def test_headers_that_came_before_a_stall_are_kept(tmp_path):
    cert, key = write_certificate(tmp_path, "stall")
    with tls_listener(cert, key, headers_then_stall) as endpoint:
        served = served_endpoint(endpoint, "localhost", timeout_s=0.5)
    assert served.server_header == "nginx/1.22.1"
    assert announces_version(served.server_header)


def test_the_timeout_bounds_the_whole_answer_not_each_read(tmp_path):
    # Each byte comes well within the timeout; the whole answer does not. Read per recv, the
    # call would wait out the drip (~9 s) and see the Server line; bounded as a whole, it stops
    # after 0.5 s, before that line has come.
    cert, key = write_certificate(tmp_path, "drip")
    with tls_listener(cert, key, drip) as endpoint:
        served = served_endpoint(endpoint, "localhost", timeout_s=0.5)
    assert served.server_header == ""
