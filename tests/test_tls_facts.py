"""Reading a live endpoint's answer: the Server header, and whether it names a version."""

from __future__ import annotations

import pytest

from nexus_deploy.facts.tls import announces_version, header_value

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
