"""Reading a live endpoint's answer: the Server header, and whether it names a version."""

from __future__ import annotations

import hashlib
import ssl
import time
from pathlib import Path

import pytest
from faults import tls_listener, write_certificate

from nexus_deploy.facts.tls import announces_version, header_value, served_endpoint, server_header

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


def silence(tls: ssl.SSLSocket) -> None:
    pass


def headers_then_stall(tls: ssl.SSLSocket) -> None:
    tls.sendall(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n")  # no blank line: unfinished


ANSWER = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n"


def drip(tls: ssl.SSLSocket, pause_s: float = 0.2) -> None:
    """The whole answer, one byte at a time: about 9 s in all at 0.2 s a byte."""
    for byte in ANSWER:
        tls.sendall(bytes([byte]))
        time.sleep(pause_s)


def fast_drip(tls: ssl.SSLSocket) -> None:
    drip(tls, pause_s=0.01)


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
    # after 0.5 s, before that line has come: unknown, not "no Server header".
    cert, key = write_certificate(tmp_path, "drip")
    with tls_listener(cert, key, drip) as endpoint:
        served = served_endpoint(endpoint, "localhost", timeout_s=0.5)
    assert served.server_header is None


def test_an_answer_in_many_pieces_is_read_whole(tmp_path):
    cert, key = write_certificate(tmp_path, "pieces")
    with tls_listener(cert, key, fast_drip) as endpoint:  # ~45 pieces, ~0.5 s in all
        served = served_endpoint(endpoint, "localhost", timeout_s=5)
    assert served.server_header == "nginx/1.22.1"


@pytest.mark.parametrize(
    ("head", "server"),
    [
        (None, None),
        (("HTTP/1.1 200 OK\r\nServer: nginx", True), "nginx"),
        (("HTTP/1.1 200 OK\r\nDate: x", True), ""),  # a whole answer without the header
        (("HTTP/1.1 200 OK", False), None),  # cut short before any Server line: unknown
        (("HTTP/1.1 200 OK\r\nServer: nginx/1.2", False), "nginx/1.2"),
    ],
)
def test_the_server_header_of_a_whole_or_cut_answer(head, server):
    assert server_header(head) == server
