"""Facts about the platform's TLS certificate, on disk and as the live endpoint serves it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
import ssl
import time
import warnings
from dataclasses import dataclass

from testinfra.host import Host

LEGACY_VERSIONS = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)


@dataclass(frozen=True)
class Certificate:
    subject: str
    not_after: dt.datetime
    fingerprint: str  # sha256 of the DER bytes, lower-case hex
    matches_key: bool
    matches_hostname: bool

    def days_left(self, now: dt.datetime | None = None) -> int:
        """Whole days until expiry; negative once expired (-1 on the first day after)."""
        left = self.not_after - (now or dt.datetime.now(dt.UTC))
        return left.days if left >= dt.timedelta(0) else -((-left).days + 1)


class CertificateError(Exception):
    """The certificate or key cannot be read or parsed."""


def read_certificate(host: Host, cert: str, key: str, hostname: str) -> Certificate:
    """Parse the certificate with the host's openssl and compare it with its key and hostname."""
    info = host.run(
        "openssl x509 -in %s -noout -subject -enddate -fingerprint -sha256 -checkhost %s -pubkey",
        cert,
        hostname,
    )
    if info.rc != 0:
        raise CertificateError(f"{cert}: not a readable certificate ({info.stderr.strip()[:120]})")
    # The output: name=value lines, the PEM public key, then the -checkhost verdict.
    before, _, rest = info.stdout.partition("-----BEGIN PUBLIC KEY-----")
    pem, _, after = rest.partition("-----END PUBLIC KEY-----")
    text = before + after
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    not_after = dt.datetime.strptime(" ".join(fields["notAfter"].split()), "%b %d %H:%M:%S %Y %Z")
    fingerprint = next(v for k, v in fields.items() if k.lower().endswith("fingerprint"))
    private_key = host.run("openssl pkey -in %s -pubout", key)
    if private_key.rc != 0:
        problem = private_key.stderr.strip()[:120]
        raise CertificateError(f"{key}: not a readable private key ({problem})")
    return Certificate(
        subject=fields.get("subject", "").strip(),
        not_after=not_after.replace(tzinfo=dt.UTC),
        fingerprint=fingerprint.replace(":", "").lower(),
        matches_key=pem_body(pem) == pem_body(private_key.stdout),
        matches_hostname=" does match " in text,
    )


def pem_body(text: str) -> list[str]:
    """The base64 lines of a PEM block, without its BEGIN/END lines."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("-----")]


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ServedEndpoint:
    fingerprint: str  # sha256 of the certificate presented
    server_header: str | None  # of its answer to HEAD ("" if it has none); None: no answer


def served_endpoint(endpoint: str, server_name: str, timeout_s: float) -> ServedEndpoint:
    """What the live endpoint presents: its certificate (compared, not trusted, here) and, to
    one HEAD request, its Server header, which shows whether it announces its version."""
    # Not create_default_context(): loading the system's CA store costs ~50 ms, for nothing.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(_split(endpoint), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        request = f"HEAD / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
        head = read_head(tls, request.encode("ascii"), time.monotonic() + timeout_s)
    if der is None:
        raise ssl.SSLError(f"{endpoint} presented no certificate")
    return ServedEndpoint(hashlib.sha256(der).hexdigest(), server_header(head))


def server_header(head: tuple[str, bool] | None) -> str | None:
    """The Server header of an answer read by ``read_head``: "" if a complete answer has none;
    None (unknown) if nothing came, or the answer was cut short before a Server line."""
    if head is None:
        return None
    text, complete = head
    value = header_value(text, "server")
    return value if value or complete else None


def read_head(
    connection: ssl.SSLSocket, request: bytes, deadline: float, limit: int = 16384
) -> tuple[str, bool] | None:
    """Send ``request``; the status line and headers of the answer as far as they came by
    ``deadline`` (one bound for the whole answer, not per read), and whether they came whole.
    Of an answer cut short only whole lines count. None if nothing came."""
    data = b""
    try:
        connection.sendall(request)
        while b"\r\n\r\n" not in data and len(data) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            connection.settimeout(remaining)
            chunk = connection.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass  # a stall or a reset: what came before it is still what the server said
    head, blank, _ = data.partition(b"\r\n\r\n")
    if not blank:
        head = head.rpartition(b"\r\n")[0]  # a line still coming may be cut in the middle
    if not head:
        return None
    return head.decode("latin-1"), bool(blank)


def header_value(head: str, name: str) -> str:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def announces_version(server_header: str | None) -> bool:
    """``nginx/1.22.1`` does, ``nginx`` does not."""
    return server_header is not None and re.search(r"/\s*\d", server_header) is not None


def legacy_versions_accepted(endpoint: str, server_name: str, timeout_s: float) -> list[str]:
    """Which of TLS 1.0 and 1.1 the endpoint still completes a handshake with."""
    accepted = []
    for version in LEGACY_VERSIONS:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # Security level 0 lets this client offer the old versions, so a refusal is the server's.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # Python warns that these versions are deprecated: we know
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        try:
            with (
                socket.create_connection(_split(endpoint), timeout=timeout_s) as raw,
                context.wrap_socket(raw, server_hostname=server_name),
            ):
                accepted.append(version.name.replace("_", "."))  # TLSv1_1 -> TLSv1.1, as nginx
        except (ssl.SSLError, OSError):
            continue
    return accepted
