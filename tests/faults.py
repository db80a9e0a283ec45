"""Real faults for the precheck tests: certificates, git repositories, read-only mounts and
second service processes (a gateway, an nginx) on free loopback ports."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from suite import REPO

SANDBOX_CERT = Path("/var/lib/nexus-sandbox/tls/nexus.crt")
SANDBOX_KEY = Path("/var/lib/nexus-sandbox/tls/nexus.key")
SANDBOX_HEALTH = "https://127.0.0.1:8443/health"


def sh(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command (an argument list, no shell) and return what it printed."""
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, check=check)


# --- certificates -----------------------------------------------------------------------------


def write_certificate(
    directory: Path,
    name: str,
    *,
    hostname: str = "localhost",
    valid_days: tuple[int, int] = (-1, 365),
    key: rsa.RSAPrivateKey | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate for ``hostname`` valid from/to the given days relative to now,
    and the key it was signed with (``key`` or a new one); returns (cert path, key path)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=valid_days[0]))
        .not_valid_after(now + dt.timedelta(days=valid_days[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# --- git --------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return sh("git", "-C", repo, *args).stdout.strip()


def git_repository(path: Path, branch: str = "main") -> Path:
    """A small repository with one commit of README.md on ``branch``."""
    sh("git", "init", "-q", "-b", branch, path)
    git(path, "config", "user.email", "faults@nexus-deploy.invalid")
    git(path, "config", "user.name", "nexus-deploy fault tests")
    (path / "README.md").write_text("# a platform checkout\n", encoding="utf-8")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "--no-gpg-sign", "-m", "first")
    return path


def corrupt_loose_object(repo: Path, revision: str) -> str:
    """Overwrite the loose object of ``revision`` with garbage; returns its object id."""
    object_id = git(repo, "rev-parse", revision)
    loose = repo / ".git" / "objects" / object_id[:2] / object_id[2:]
    loose.chmod(0o644)  # git writes objects read-only
    loose.write_bytes(b"not a zlib stream")
    return object_id


# --- mounts -----------------------------------------------------------------------------------


@contextlib.contextmanager
def read_only_bind(directory: Path) -> Iterator[Path]:
    """``directory`` bind-mounted onto itself read-only: unwritable even for root."""
    directory.mkdir(parents=True, exist_ok=True)
    sh("mount", "--bind", directory, directory)
    try:
        sh("mount", "-o", "remount,bind,ro", directory)
        yield directory
    finally:
        sh("umount", directory)


# --- processes --------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port that was free a moment ago and that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@contextlib.contextmanager
def running(command: Sequence[str | Path], port: int, log: Path, **env: str) -> Iterator[int]:
    """A process started from the repository, waited for on ``port``, terminated on exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(map(str, command)),
            cwd=REPO,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


SSHD = Path("/usr/sbin/sshd")


@contextlib.contextmanager
def ssh_server(directory: Path, *settings: str) -> Iterator[str]:
    """A real sshd on a loopback port, accepting root with a key made here, with sshd_config
    ``settings`` added; yields the testinfra spec of this machine reached through it (no shared
    ssh master left behind)."""
    port = closed_port()
    spec = ssh_files(directory, port, *settings)
    with sshd(directory, port):
        yield spec


def ssh_files(directory: Path, port: int, *settings: str) -> str:
    """Keys and configuration for an sshd on ``port`` (see ``ssh_server``), without starting
    it; returns the testinfra spec that reaches this machine through it."""
    directory.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "client_key"):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory / key)
    (directory / "authorized_keys").write_bytes((directory / "client_key.pub").read_bytes())
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n"
        + "".join(f"{setting}\n" for setting in settings),
        encoding="utf-8",
    )
    host_key = (directory / "host_key.pub").read_text(encoding="utf-8").split()[:2]
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    # ssh's own messages at its default level: "Timeout, server ... not responding" is INFO.
    (directory / "ssh_config").write_text(
        f"Host *\n  IdentityFile {directory / 'client_key'}\n  StrictHostKeyChecking yes\n"
        f"  UserKnownHostsFile {directory / 'known_hosts'}\n  BatchMode yes\n  LogLevel INFO\n",
        encoding="utf-8",
    )
    return f"ssh://root@127.0.0.1:{port}?ssh_config={directory / 'ssh_config'}&controlpersist=0"


@contextlib.contextmanager
def sshd(directory: Path, port: int) -> Iterator[int]:
    """The sshd configured in ``directory`` by ``ssh_files``, running on ``port``; yields its
    pid (from its PidFile, which it writes a moment after it listens)."""
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
    command = [SSHD, "-D", "-e", "-f", directory / "sshd_config"]
    pidfile = directory / "sshd.pid"
    with running(command, port, directory / "sshd.log"):
        deadline = time.monotonic() + 10
        while not pidfile.read_text(encoding="utf-8").strip() if pidfile.exists() else True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on port {port} wrote no {pidfile}")
            time.sleep(0.05)
        yield int(pidfile.read_text(encoding="utf-8"))


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, their children, and so on."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def stopped(pids: Sequence[int]) -> Iterator[None]:
    """Processes ``pids`` stopped (SIGSTOP) for the duration: alive, answering nothing."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def degraded_gateway(log: Path) -> Iterator[str]:
    """A second real sandbox gateway whose database port is closed: /health answers 503."""
    port = closed_port()
    database_port = closed_port()
    command = [sys.executable, "sandbox/gateway.py"]
    env = {"NEXUS_GATEWAY_PORT": str(port), "PGHOST": "127.0.0.1", "PGPORT": str(database_port)}
    env |= {"PGDATABASE": "nexus", "PGUSER": "nexus"}
    with running(command, port, log, **env):
        yield f"http://127.0.0.1:{port}"


NGINX_CONF = """\
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    ssl_protocols {protocols};
    server_tokens off;
{servers}}}
"""

LEGACY_TLS_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # Security level 0: OpenSSL 3 refuses TLS 1.0/1.1 cipher suites at its default level.
        ssl_ciphers DEFAULT:@SECLEVEL=0;
        return 200 "legacy\\n";
    }}
"""

# Off for all of http, on again in one server: that server shows nginx's version.
VERSION_BANNER_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        server_tokens on;
        return 200 "banner\\n";
    }}
"""


def legacy_nginx_conf(directory: Path, port: int | None = None) -> Path:
    """A complete nginx.conf that enables TLS 1.0 and 1.1; with ``port``, a TLS server on it
    serving the sandbox certificate. Its pid, logs and temp files stay in ``directory``."""
    servers = ""
    if port is not None:
        servers = LEGACY_TLS_SERVER.format(port=port, cert=SANDBOX_CERT, key=SANDBOX_KEY)
    return write_nginx_conf(directory, "TLSv1 TLSv1.1 TLSv1.2", servers)


def version_banner_nginx_conf(directory: Path, port: int) -> Path:
    """A complete nginx.conf, TLS 1.2+ only, with server_tokens off for http and on again in
    a TLS server on ``port`` serving the sandbox certificate."""
    server = VERSION_BANNER_SERVER.format(port=port, cert=SANDBOX_CERT, key=SANDBOX_KEY)
    return write_nginx_conf(directory, "TLSv1.2 TLSv1.3", server)


def write_nginx_conf(directory: Path, protocols: str, servers: str) -> Path:
    conf = directory / "nginx.conf"
    text = NGINX_CONF.format(dir=directory, protocols=protocols, servers=servers)
    conf.write_text(text, encoding="utf-8")
    return conf


@contextlib.contextmanager
def legacy_tls_nginx(directory: Path) -> Iterator[str]:
    """A second real nginx, in the foreground, completing TLS 1.0/1.1 handshakes."""
    port = closed_port()
    conf = legacy_nginx_conf(directory, port)
    with running(["nginx", "-c", conf, "-g", "daemon off;"], port, directory / "nginx.out"):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def version_banner_nginx(directory: Path) -> Iterator[tuple[str, Path]]:
    """A second real nginx, in the foreground, whose TLS server announces its version."""
    port = closed_port()
    conf = version_banner_nginx_conf(directory, port)
    with running(["nginx", "-c", conf, "-g", "daemon off;"], port, directory / "nginx.out"):
        yield f"127.0.0.1:{port}", conf


@contextlib.contextmanager
def tls_listener(cert: Path, key: Path, answer: Callable[[ssl.SSLSocket], None]) -> Iterator[str]:
    """A real TLS server on loopback: each connection gets the handshake (TLS 1.2 or newer),
    then ``answer``, then silence until the test is done with it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def handle(connection: socket.socket) -> None:
        with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True) as tls:
            answer(tls)
            done.wait(30)

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while not done.is_set():
                connection, _ = listener.accept()
                threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        listener.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port whose connections the kernel accepts but nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_unix_socket(path: Path) -> Iterator[str]:
    """A unix socket that accepts connections (backlog) and never answers: a hung daemon."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        sock.listen(16)
        yield f"unix://{path}"


def sandbox_https_ok() -> bool:
    try:
        response = requests.get(SANDBOX_HEALTH, timeout=3, verify=str(SANDBOX_CERT))
    except requests.RequestException:
        return False
    return response.status_code == 200


def service_running(name: str) -> bool:
    return sh("service", name, "status", check=False).returncode == 0


@contextlib.contextmanager
def stopped_service(name: str) -> Iterator[None]:
    """The host service really stopped, and started again whatever happens."""
    sh("service", name, "stop")
    try:
        yield
    finally:
        sh("service", name, "start")


def ended(pid: int, within_s: float = 5) -> bool:
    """Whether process ``pid`` ends within ``within_s``: gone, or a zombie (here PID 1 is not an
    init system, so an orphan's zombie may wait a while to be reaped)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
