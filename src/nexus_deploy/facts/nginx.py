"""Facts about nginx's configuration, as nginx itself reads it."""

from __future__ import annotations

from dataclasses import dataclass

from testinfra.host import Host

LEGACY_PROTOCOLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})


@dataclass(frozen=True)
class NginxConfig:
    test_ok: bool
    test_output: str
    ssl_protocols: tuple[tuple[str, ...], ...]
    server_tokens: tuple[str, ...]  # the value of every server_tokens directive, in order

    @property
    def server_tokens_off(self) -> bool:
        """Set, and off wherever set: nginx's default is on, and a server block or location
        that turns it on again shows the version there."""
        return bool(self.server_tokens) and set(self.server_tokens) == {"off"}

    @property
    def legacy_protocols(self) -> set[str]:
        return {p for protocols in self.ssl_protocols for p in protocols} & LEGACY_PROTOCOLS


def read_config(host: Host, config: str) -> NginxConfig:
    """``nginx -T``: tests the configuration (its exit code) and dumps the settings in force."""
    dump = host.run("nginx -T -c %s", config)
    protocols: list[tuple[str, ...]] = []
    server_tokens: list[str] = []
    for raw in dump.stdout.splitlines():
        line = raw.split("#", 1)[0].strip().rstrip(";")
        words = line.split()
        if words[:1] == ["ssl_protocols"]:
            protocols.append(tuple(words[1:]))
        elif words[:1] == ["server_tokens"]:
            server_tokens.append(" ".join(words[1:]))
    return NginxConfig(
        test_ok=dump.rc == 0,
        test_output=" ".join(dump.stderr.split())[:300],
        ssl_protocols=tuple(protocols),
        server_tokens=tuple(server_tokens),
    )
