"""Target profiles: where the platform lives and what the prechecks hold it to.

A profile is one YAML file (``pfs/targets/<name>.yaml``) loaded once into the strict models
below. Unknown keys are refused so that a typo never silently turns a check off. Passwords are
never part of a profile: they come from the environment variable or the pgpass file it names.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from testinfra.backend import BACKENDS

from nexus_deploy.config import yamlfile
from nexus_deploy.config.errors import describe_errors
from nexus_deploy.config.fleet import (
    NODE_FIELDS,
    VARIABLE,
    Fleet,
    FleetError,
    Node,
    fields_naming_variables,
    filled,
    is_node_field,
    node_view,
)
from nexus_deploy.config.targets import DEFAULT_COMMAND_TIMEOUT_S, FLEET_WORKERS
from nexus_deploy.config.yamlfile import yaml_problem


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        # The value is not repeated: a refusal never echoes what the file holds.
        raise ValueError("must be an absolute path (starting with /)")
    if ".." in path.parts:  # /var/log/audit/../../etc is not the directory it names
        raise ValueError("must not hold a '..' component")
    return path


# Numbers must be written as numbers: strict, so `true` is not taken for 1 nor "5" for 5.
PositiveFloat = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
# Paths the deployer writes to, locks or hands to a rollback script must not depend on the
# directory it happens to be started from.
AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Seconds = Annotated[float, Field(gt=0, le=120, strict=True, allow_inf_nan=False)]
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _dns_name(value: str) -> str:
    if len(value) > 253 or not all(map(_DNS_LABEL.fullmatch, value.split("."))):
        raise ValueError("is not a DNS name")  # the value is not repeated: see describe_errors
    return value


# It reaches openssl's command line, the TLS SNI and an HTTP Host header.
HostName = Annotated[str, AfterValidator(_dns_name)]


class ProfileError(Exception):
    """A target profile that cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemSpec(_Model):
    os: str = "linux"
    required_commands: tuple[str, ...]


class DockerSpec(_Model):
    url: str = "unix:///var/run/docker.sock"
    ping_timeout_s: Seconds = 3
    min_api_version: str = Field(default="1.41", pattern=r"^\d+(\.\d+)*$")


class DiskSpec(_Model):
    paths: tuple[AbsolutePath, ...] = Field(min_length=1)
    min_free_gb: PositiveFloat = 5


class MemorySpec(_Model):
    min_available_gb: PositiveFloat = 4


class RepositorySpec(_Model):
    path: AbsolutePath
    branch: str


class ConfigSpec(_Model):
    # Relative paths are taken from the deployer's own root, where pfs/ lives.
    dir: Path = Path("pfs")


# Names that become audit and JUnit keys (direct_status, nginx_running).
# A fleet's node names start with a digit as often as not (10.0.0.5): its endpoints too.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("is not an http:// or https:// URL")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # It would be written wherever the URL is: terminal, reports, audit log.
        raise ValueError("a login in the URL is refused (user@ or user:password@)")
    return url.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Endpoint(_Model):
    name: Name
    url: HttpUrl


class GatewaySpec(_Model):
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)

    @field_validator("endpoints")
    @classmethod
    def _distinct_names(cls, endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        names = [endpoint.name for endpoint in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must differ: {names}")
        return endpoints

    health_path: str = Field(default="/health", pattern=r"^/")
    flags_path: str = Field(default="/api/v1/flags", pattern=r"^/")
    timeout_s: Seconds = 3
    # How long after commit the new flags may take to show before the activation rolls back.
    verify_timeout_s: Seconds = 10
    # The CA bundle (or self-signed certificate) that https endpoints are verified against.
    ca_file: AbsolutePath | None = None
    # The gateway as its own host reaches it (http://127.0.0.1:8081): SERVICES asks its health
    # there, with curl on the host. On a fleet, each API node's ("{nexus_gateway_port}").
    local_url: HttpUrl | None = None


class DatabaseSpec(_Model):
    container: str
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535, strict=True)
    dbname: str
    user: str
    password_env: EnvVarName = "NEXUS_DB_PASSWORD"
    passfile: AbsolutePath | None = None
    connect_timeout_s: int = Field(default=3, ge=1, le=60, strict=True)
    flag_table: str = "nexus_feature_flags"


class PreviousPhasesSpec(_Model):
    reports: tuple[Path, ...] = Field(min_length=1)
    completion_marker: str = "Status: COMPLETE"


class SecuritySpec(_Model):
    certificate: AbsolutePath
    key: AbsolutePath
    hostname: HostName
    min_days_valid: int = Field(default=30, ge=0, strict=True)
    nginx_config: Path = Path("/etc/nginx/nginx.conf")
    tls_endpoint: str  # host:port of the live TLS listener

    @field_validator("tls_endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if VARIABLE.search(value):
            return value  # a fleet node's variable ({ansible_host}): checked in each node's view
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("is not host:port")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            _dns_name(bare)  # neither an address nor a name: refused, naming the field
        return value


class BackupSpec(_Model):
    dir: AbsolutePath
    min_free_gb: PositiveFloat = 1


class AuditSpec(_Model):
    dir: AbsolutePath
    # The key that authenticates the audit lines, and where closed logs are anchored: both
    # outside `dir` (made by `make setup`). Without a key the logs are chained, not keyed.
    key_file: AbsolutePath | None = None
    anchor_file: AbsolutePath | None = None


def _testinfra_host(host: str) -> str:
    """A testinfra host spec (local://, ssh://user@host...) that holds no password."""
    scheme = host.split("://", 1)[0] if "://" in host else ""
    userinfo = host.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:  # not echoed: the message would carry the password along
        raise ValueError(
            "holds a password (user:password@): testinfra would pass it to sshpass on a "
            "command line, visible to every user; use an ssh key or agent"
        )
    if scheme not in BACKENDS:
        raise ValueError(f"is not a testinfra host (backends: {', '.join(BACKENDS)})")
    return host


HostSpec = Annotated[str, AfterValidator(_testinfra_host)]


class FleetHost(_Model):
    """One host of a fleet given without an inventory."""

    name: Name
    host: HostSpec  # as a profile's own host: ssh://deploy@api-3?ssh_config=/etc/nexus/ssh
    roles: tuple[Literal["api", "db"], ...] = Field(min_length=1)
    # What an inventory's host variables would be: the names profile strings use.
    variables: dict[Name, str | int] = {}


class FleetSpec(_Model):
    """Several machines, by role: an Ansible inventory's hosts (``inventory`` and ``groups``)
    or a list of testinfra hosts (``hosts``); see nexus_deploy.config.fleet."""

    inventory: AbsolutePath | None = None
    # The inventory groups whose hosts play each role.
    groups: dict[Literal["api", "db"], tuple[Name, ...]] = {}
    hosts: tuple[FleetHost, ...] = ()
    # Each API node's own endpoints ("https://{ansible_host}:443"): the activation is verified
    # through every node, besides the load balancer's gateway.endpoints.
    endpoints: tuple[Endpoint, ...] = ()
    connect_timeout_s: Seconds = 5
    # Host commands running at once, over all nodes.
    workers: int = Field(default=FLEET_WORKERS, ge=1, le=64, strict=True)

    @model_validator(mode="after")
    def _one_source(self) -> FleetSpec:
        if (self.inventory is None) == (not self.hosts):
            raise ValueError("give either inventory (with groups) or hosts, not both")
        if self.inventory is not None and not self.groups:
            raise ValueError("groups: say which inventory groups play api and db")
        names = [host.name for host in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError("hosts: each name once")
        return self


NODE_VIEW = "node_view"  # validation context: a fleet node's view of the profile


class TargetProfile(_Model):
    """Everything the prechecks and the activation need to know about one platform."""

    name: str
    description: str = ""
    # A testinfra host spec: local:// for this machine, ssh://user@host for another.
    host: HostSpec = "local://"
    # Every command run on the host ends within this (see nexus_deploy.facts.bounded_host).
    command_timeout_s: Annotated[float, Field(gt=0, le=3600, strict=True, allow_inf_nan=False)] = (
        DEFAULT_COMMAND_TIMEOUT_S
    )
    system: SystemSpec
    services: tuple[Name, ...] = Field(min_length=1)
    docker: DockerSpec = DockerSpec()
    disk: DiskSpec
    memory: MemorySpec = MemorySpec()
    repository: RepositorySpec
    config: ConfigSpec = ConfigSpec()
    gateway: GatewaySpec
    database: DatabaseSpec
    previous_phases: PreviousPhasesSpec
    security: SecuritySpec
    backup: BackupSpec
    audit: AuditSpec
    fleet: FleetSpec | None = None

    @model_validator(mode="after")
    def _variables_need_a_fleet(self, info: ValidationInfo) -> TargetProfile:
        if info.context and info.context.get(NODE_VIEW):
            return self  # a node's view: a database host's may keep an API node's variables
        named = fields_naming_variables(self.model_dump(mode="json"))
        if self.fleet is None and named:
            raise ValueError(f"{named[0]} names a node's variable, but there is no fleet: section")
        return self


def load_profile(path: Path) -> TargetProfile:
    """Read and validate one profile file; any problem is a ProfileError naming file and field."""
    try:
        raw = yamlfile.load(yamlfile.read_bounded(path))
    except FileNotFoundError:
        raise ProfileError(f"{path}: target profile not found") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yamlfile.ControlCharacterError as exc:
        raise ProfileError(f"{path}: {exc.field}: {exc.why}") from None
    except (OSError, yaml.YAMLError) as exc:
        # One line, position and problem: never the file's own text (a --target pointed at
        # the wrong file must not print it).
        problem = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else exc.strerror or exc
        problem = str(problem).removeprefix(f"{path} ")
        raise ProfileError(f"{path}: cannot read target profile: {problem}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a target profile must be a mapping of fields")
    try:
        return TargetProfile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"{path}: {describe_errors(exc)}") from None


def node_profile(profile: TargetProfile, node: Node, fleet: Fleet) -> TargetProfile:
    """The profile as ``node`` sees it (its variables and overrides, see config.fleet)."""
    view = node_view(profile.model_dump(mode="json"), node, fleet.inventory)
    try:
        return TargetProfile.model_validate({**view, "fleet": None}, context={NODE_VIEW: True})
    except ValidationError as exc:
        raise FleetError(f"{fleet.inventory}: host {node.name}: {describe_errors(exc)}") from None


def node_endpoints(profile: TargetProfile, fleet: Fleet) -> tuple[Endpoint, ...]:
    """fleet.endpoints of every API node, named ``<node>.<endpoint>``."""
    if profile.fleet is None:
        return ()
    endpoints = []
    for node in fleet.of_role("api"):
        for endpoint in profile.fleet.endpoints:
            url = filled(endpoint.url, node, fleet.inventory)
            try:
                endpoints.append(Endpoint(name=f"{node.name}.{endpoint.name}", url=url))
            except ValidationError as exc:
                where = f"{fleet.inventory}: host {node.name}: fleet.endpoints"
                raise FleetError(f"{where}: {describe_errors(exc)}") from None
    return tuple(endpoints)


def platform_variables(profile: TargetProfile) -> None:
    """Refuse a variable named outside a node's own fields: the platform's are one for all."""
    raw = profile.model_dump(mode="json", exclude={"fleet"})
    misplaced = [path for path in fields_naming_variables(raw) if not is_node_field(path)]
    if misplaced:
        raise FleetError(
            f"{misplaced[0]}: names a node's variable; only a node's own fields may "
            f"({', '.join(NODE_FIELDS)}) and fleet.endpoints"
        )
