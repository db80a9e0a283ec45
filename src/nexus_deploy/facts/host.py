"""Facts about the target host, read through a testinfra host (local or over ssh)."""

from __future__ import annotations

from dataclasses import dataclass

from testinfra.host import Host

GIB = 1024**3


@dataclass(frozen=True)
class SystemIdentity:
    os: str  # "linux", ...
    distribution: str
    release: str
    user: str


def system_identity(host: Host) -> SystemIdentity:
    info = host.system_info
    return SystemIdentity(info.type, info.distribution, info.release, host.user().name)


def service_running(host: Host, name: str) -> bool:
    """As the host's own service manager (systemd, else the init script) reports it."""
    return bool(host.service(name).is_running)


def service_installed(host: Host, name: str) -> bool:
    """Whether the host's service manager knows ``name`` at all (asked once one is not
    running, to tell "stopped" from "not installed" or misspelt)."""
    try:
        return bool(host.service(name).exists)
    except NotImplementedError:  # testinfra knows this only of systemd: else an init script
        return bool(host.file(f"/etc/init.d/{name}").exists)


def local_http_status(host: Host, url: str, timeout_s: float) -> int | None:
    """The HTTP status ``url`` answers when the host itself asks (curl, there): a node's own
    gateway, as nginx on that node reaches it. None: no answer, or no curl on the host."""
    result = host.run(
        "curl -s -o /dev/null -w '%%{http_code}' --max-time %s -- %s", f"{timeout_s:g}", url
    )
    status = result.stdout.strip()
    return int(status) if status.isdigit() and int(status) > 0 else None


def free_gb(host: Host, path: str) -> float | None:
    """Space available to unprivileged writers on the filesystem of ``path``; None if absent."""
    result = host.run("stat -f -c %s %s", "%a %S", path)
    if result.rc != 0:
        return None
    blocks, block_size = (int(word) for word in result.stdout.split())
    return blocks * block_size / GIB


def available_memory_gb(host: Host) -> float:
    """MemAvailable from /proc/meminfo: what can be used without swapping."""
    for line in host.file("/proc/meminfo").content_string.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


def can_act_as_root(host: Host) -> bool:
    """Root already, or sudo without a password prompt."""
    return bool(host.user().uid == 0 or host.run("sudo -n true").rc == 0)


def missing_commands(host: Host, commands: tuple[str, ...]) -> list[str]:
    """The commands not on PATH, asked in one shell call (``command -v`` prints what it finds)."""
    template = "for name in" + " %s" * len(commands) + '; do command -v "$name"; done'
    found = host.run(template, *commands)
    names = {line.rsplit("/", 1)[-1] for line in found.stdout.split()}
    return [command for command in commands if command not in names]


# The v2 plugin first: where both exist, it is the one an operator runs today.
COMPOSE_COMMANDS = ("docker compose version --short", "docker-compose version --short")


def compose_version(host: Host, command: str) -> str | None:
    """What one of COMPOSE_COMMANDS reports, as "docker-compose 1.29.2"; None if it fails."""
    result = host.run(command)
    if result.rc == 0 and result.stdout.strip():
        return f"{command.removesuffix(' version --short')} {result.stdout.strip()}"
    return None


def is_directory(host: Host, path: str) -> bool:
    return bool(host.file(path).is_directory)


def report_state(host: Host, path: str, completion_marker: str) -> str:
    """A phase report: "complete" (a line is exactly the marker), "incomplete" or "missing"."""
    document = host.file(path)
    if not document.is_file:
        return "missing"
    lines = document.content_string.splitlines()
    return "complete" if any(line.strip() == completion_marker for line in lines) else "incomplete"


def is_writable_dir(host: Host, path: str) -> bool:
    """Proven by creating and removing a probe file, not by reading permission bits."""
    probe = host.run("mktemp -p %s .nexus-probe.XXXXXX", path)
    if probe.rc != 0:
        return False
    host.run("rm -f %s", probe.stdout.strip())
    return True
