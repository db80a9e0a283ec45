"""Facts about the target host, read through a testinfra host (local or over ssh)."""

from __future__ import annotations

from testinfra.host import Host

GIB = 1024**3


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


def compose_version(host: Host) -> str | None:
    """The Compose version as the v2 plugin or the v1 ``docker-compose`` reports it, else None."""
    for command in ("docker compose version --short", "docker-compose version --short"):
        result = host.run(command)
        if result.rc == 0 and result.stdout.strip():
            return f"{command.split(' version')[0]} {result.stdout.strip()}"
    return None


def is_writable_dir(host: Host, path: str) -> bool:
    """Proven by creating and removing a probe file, not by reading permission bits."""
    probe = host.run("mktemp -p %s .nexus-probe.XXXXXX", path)
    if probe.rc != 0:
        return False
    host.run("rm -f %s", probe.stdout.strip())
    return True
