"""Fleet: one run checks every host of an Ansible inventory, in parallel, and activates once.

Against the sandbox fleet (`sandbox/up.sh --hosts 4`): four API-node containers, each with sshd,
nginx with TLS, the gateway and a checkout, reached over real ssh; the database on this machine.
Each fault is made for real on one node and undone after."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from suite import DELETE, REPO, SuiteRun, flag_rows, set_dotted

from nexus_deploy.facts.bounded_host import USUAL_PROBES, fleet_host
from nexus_deploy.facts.inventory import read_inventory

pytestmark = pytest.mark.usefixtures("sandbox_up", "fleet_up")

FLEET_PROFILE = REPO / "pfs" / "targets" / "fleet.yaml"
FLEET_DIR = Path("/var/lib/nexus-sandbox/fleet")
INVENTORY = FLEET_DIR / "inventory.ini"
NODES = ("api-1", "api-2", "api-3", "api-4")
API_CHECKS = ("SYSTEM", "SERVICES", "DISK", "MEMORY", "REPOSITORY", "SECURITY")
DB_CHECKS = ("DOCKER", "DATABASE")
ONCE = ("CONFIG", "API", "PREVIOUS_PHASES", "BACKUP")


def expected_labels() -> set[str]:
    on_nodes = {f"{name}[{node}]" for name in API_CHECKS for node in NODES}
    return on_nodes | {f"{name}[db-1]" for name in DB_CHECKS} | set(ONCE)


@pytest.fixture(scope="session")
def fleet_up() -> None:
    if not INVENTORY.exists() or len(re.findall(r"^api-\d+ ", INVENTORY.read_text(), re.M)) < 4:
        pytest.fail("the sandbox fleet is not up: run `bash sandbox/up.sh --hosts 4`", False)


def container(node: str) -> str:
    return f"nexus-node-{node.removeprefix('api-')}"


def on_node(node: str, command: str) -> None:
    subprocess.run(["docker", "exec", container(node), "sh", "-c", command], check=True)


@pytest.fixture
def fleet_target(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the fleet profile, its audit dir private; ``inventory`` a changed copy."""

    def write(changes: dict[str, Any] | None = None, inventory: str | None = None) -> Path:
        profile = yaml.safe_load(FLEET_PROFILE.read_text(encoding="utf-8"))
        profile["audit"]["dir"] = str(tmp_path / "audit")
        if inventory is not None:
            path = tmp_path / "inventory.ini"
            path.write_text(inventory, encoding="utf-8")
            profile["fleet"]["inventory"] = str(path)
        for dotted, value in (changes or {}).items():
            set_dotted(profile, dotted, value)
        target = tmp_path / "fleet.yaml"
        target.write_text(yaml.safe_dump(profile), encoding="utf-8")
        return target

    return write


def audit_statuses(run: SuiteRun, prefix: str = "precheck-") -> dict[str, str]:
    found = {}
    for event in run.audit(prefix):
        if event.event.startswith("PRECHECK_") and "status" in event.fields:
            name = event.event.removeprefix("PRECHECK_")
            host = event.fields.get("host")
            found[f"{name}[{host}]" if host else name] = event.fields["status"]
    return found


def test_a_fleet_run_checks_every_node_and_names_it(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path]
) -> None:
    run = run_suite("-m", "precheck", target=fleet_target())
    assert run.rc == 0, run.output
    statuses = audit_statuses(run)
    assert set(statuses) == expected_labels()
    assert set(statuses.values()) == {"PASS"}
    assert run.event("PRECHECK_START").fields["hosts"] == "5"
    # JUnit names the host as the test id does; so does the terminal.
    assert run.cases["test_disk[api-3]"]["name"] == "precheck 04 DISK [api-3]"
    assert run.cases["test_database[db-1]"]["outcome"] == "passed"
    assert "checks/test_04_disk.py::test_disk[api-3] PASSED" in run.output or (
        "DISK[api-3]: PASS" in run.output
    )
    # The report and summary.json name the host of each row too.
    page = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="precheck-SECURITY[api-2]"' in page and "on 5 hosts" in page
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    rows = {(row["name"], row["host"]) for row in summary["prechecks"]}
    assert ("DISK", "api-4") in rows and ("CONFIG", None) in rows and len(rows) == 30
    # Host-level facts are read on the node: its own checkout and certificate.
    disk = [e for e in run.audit() if e.event == "PRECHECK_REPOSITORY"]
    assert {e.fields["host"] for e in disk} == set(NODES)
    assert all(e.fields["path"] == "/opt/nexus-cos" for e in disk)


@contextlib.contextmanager
def nginx_stopped(node: str) -> Iterator[None]:
    on_node(node, "service nginx stop >/dev/null")
    try:
        yield
    finally:
        on_node(node, "service nginx start >/dev/null")


@contextlib.contextmanager
def gateway_stopped(node: str) -> Iterator[None]:
    on_node(node, "service nexus-gateway stop >/dev/null")
    try:
        yield
    finally:
        on_node(node, "service nexus-gateway start >/dev/null")


@contextlib.contextmanager
def sshd_stopped(node: str) -> Iterator[None]:
    on_node(node, "service ssh stop >/dev/null")
    try:
        yield
    finally:
        on_node(node, "service ssh start >/dev/null")


@contextlib.contextmanager
def stale_checkout(node: str) -> Iterator[None]:
    """A newer commit fetched on the node (origin/main moved on) but not checked out."""
    git = "git -C /opt/nexus-cos -c user.name=t -c user.email=t@localhost"
    on_node(node, f"{git} update-ref refs/remotes/origin/main "
                  f"$({git} commit-tree 'HEAD^{{tree}}' -p HEAD -m newer)")  # fmt: skip
    try:
        yield
    finally:
        on_node(node, f"{git} update-ref refs/remotes/origin/main HEAD")


@contextlib.contextmanager
def expired_certificate(node: str) -> Iterator[None]:
    """The node's certificate file replaced by one of the same key that expired yesterday."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key_pem = Path("/var/lib/nexus-sandbox/tls/nexus.key").read_bytes()
    key = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    on_node(node, "cp /etc/nexus/tls/nexus.crt /etc/nexus/tls/nexus.crt.good")
    on_node(node, f"printf '%s' '{pem}' > /etc/nexus/tls/nexus.crt")
    try:
        yield
    finally:
        on_node(node, "mv /etc/nexus/tls/nexus.crt.good /etc/nexus/tls/nexus.crt")


def small_disk_inventory(node: str) -> str:
    """The sandbox inventory with ``node`` holding a disk threshold it cannot meet."""
    text = INVENTORY.read_text(encoding="utf-8")
    override = """ nexus_overrides="{'disk': {'min_free_gb': 1000000}}\""""
    return re.sub(rf"^({re.escape(node)} .*)$", rf"\1{override}", text, flags=re.M)


FAULTS = {
    "nginx stopped": ("api-2", nginx_stopped, None, {"SERVICES", "SECURITY"}, "nginx"),
    "sshd stopped": ("api-4", sshd_stopped, None, set(API_CHECKS), "ssh to"),
    "gateway stopped": ("api-1", gateway_stopped, None, {"SERVICES"}, "asked on the host, gave"),
    "stale checkout": ("api-1", stale_checkout, None, {"REPOSITORY"}, "behind origin/main"),
    "expired certificate": ("api-3", expired_certificate, None, {"SECURITY"}, "expired"),
    "disk threshold": ("api-3", None, small_disk_inventory, {"DISK"}, "below the minimum"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_on_one_node_fails_that_node_only_and_blocks_activation(
    fault: str,
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    node, make, inventory, failing, reason = FAULTS[fault]
    target = fleet_target(inventory=inventory(node) if inventory else None)
    before = flag_rows(clean_flags)
    with make(node) if make else contextlib.nullcontext():
        run = run_suite("--activate", "phase3", "--step", "1", target=target)
    assert run.rc == pytest.ExitCode.TESTS_FAILED, run.output
    statuses = audit_statuses(run, "deployment-")
    failed = {label for label, status in statuses.items() if status == "FAIL"}
    assert failed == {f"{name}[{node}]" for name in failing}, run.output
    assert set(statuses) == expected_labels()
    failures = [e for e in run.audit("deployment-") if e.fields.get("status") == "FAIL"]
    assert {e.fields["host"] for e in failures} == {node}
    assert any(reason in e.fields["reason"] for e in failures), failures
    gate = run.event("GATE_CLOSED", "deployment-").fields["reason"]
    assert f"[{node}]" in gate
    assert flag_rows(clean_flags) == before
    assert f"[{node}]: FAIL" in run.output


def test_activation_runs_once_after_every_node_passed_and_is_verified_through_each(
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    run = run_suite("--activate", "phase3", "--step", "1", target=fleet_target())
    assert run.rc == 0, run.output
    events = run.audit("deployment-")
    assert [e.event for e in events].count("ACTIVATION_COMMITTED") == 1
    assert [e.event for e in events].count("GATE_OPEN") == 1
    (verify,) = [e for e in events if e.event == "VERIFY"]
    assert verify.fields["status"] == "PASS"
    verified = set(verify.fields["endpoints"].split(","))
    assert verified == {f"{node}.https" for node in NODES} | {"nginx"}, verified
    rows = {row[0]: row for row in flag_rows(clean_flags)}
    assert rows["marketplace.step"][1] == "1"
    (script,) = (run.audit_dir).glob("rollback-*.sh")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word: a host whose sshd hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for connection in held:
        connection.close()


def test_a_host_that_never_answers_fails_only_its_own_checks(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path], silent_port: int
) -> None:
    silent = f"api-9 ansible_host=127.0.0.1 ansible_port={silent_port} {PORTS}\n"
    inventory = INVENTORY.read_text(encoding="utf-8").replace("[api]\n", "[api]\n" + silent)
    target = fleet_target({"fleet.connect_timeout_s": 2}, inventory=inventory)
    run = run_suite("-m", "precheck", target=target, timeout=60)
    assert run.rc == pytest.ExitCode.TESTS_FAILED, run.output
    statuses = audit_statuses(run)
    assert {label for label, status in statuses.items() if status == "FAIL"} == {
        f"{name}[api-9]" for name in API_CHECKS
    }
    reasons = [e.fields["reason"] for e in run.audit() if e.fields.get("host") == "api-9"]
    assert any("ssh to ansible://api-9 failed" in reason for reason in reasons), reasons


@pytest.mark.parametrize(
    "selection",
    [
        ("-k", "not api-3"),
        ("--deselect", "checks/test_04_disk.py::test_disk[api-2]"),
        ("checks/test_01_system.py", "activation"),
        ("-m", "not precheck or precheck", "--deselect", "checks/test_09_database.py"),
    ],
    ids=["-k not a host", "--deselect one host", "one file", "--deselect the db checks"],
)
def test_the_gate_wants_every_check_on_every_host(
    selection: tuple[str, ...],
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    before = flag_rows(clean_flags)
    run = run_suite("--activate", "phase3", "--step", "1", *selection, target=fleet_target())
    assert run.rc != 0, run.output
    gate = run.event("GATE_CLOSED", "deployment-").fields["reason"]
    assert "prechecks not selected" in gate
    assert flag_rows(clean_flags) == before


def test_workers_are_refused_on_a_fleet_too(
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
    clean_flags: psycopg.Connection[Any],
) -> None:
    """The hosts are checked side by side inside one process (the prefetch); xdist workers
    would split the prechecks from the gate and the activation."""
    before = flag_rows(clean_flags)
    run = run_suite("-n", "2", "--activate", "phase3", "--step", "1", target=fleet_target())
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert "nexus-deploy runs in one process" in run.output
    assert flag_rows(clean_flags) == before


PORTS = "nexus_https_port=1 nexus_gateway_port=1"  # the variables the fleet profile names
BAD_INVENTORIES = {
    "no api group": (
        "[web]\nweb-1 ansible_connection=local\n",
        "no group 'api' (fleet.groups.api)",
    ),
    "a variable missing": (
        "[api]\napi-1 ansible_host=127.0.0.1 nexus_gateway_port=1\n[db]\ndb-1\n",
        "host api-1 has no variable nexus_https_port",
    ),
    "overrides not a mapping": (
        f"[api]\napi-1 {PORTS} nexus_overrides=7\n[db]\ndb-1\n",
        "host api-1: nexus_overrides must be a mapping",
    ),
    "override invalid": (
        f"[api]\napi-1 {PORTS} nexus_overrides=\"{{'disk': {{'min_free_gb': 'x'}}}}\"\n"
        "[db]\ndb-1\n",
        "host api-1: disk.min_free_gb",
    ),
    "a password": (
        f"[api]\napi-1 {PORTS} ansible_ssh_pass=CANARY-pw\n[db]\ndb-1\n",
        "host api-1 has a password (ansible_ssh_pass): use an ssh key",
    ),
    "a connection testinfra cannot run": (
        f"[api]\napi-1 {PORTS} ansible_connection=winrm\n[db]\ndb-1\n",
        "host api-1: no way to reach it (its ansible_connection is not one testinfra can run)",
    ),
    "an override of a platform field": (
        f"[api]\napi-1 {PORTS} nexus_overrides=\"{{'database': {{'port': 5433}}}}\"\n[db]\ndb-1\n",
        "nexus_overrides may change a node's own fields only, not database.port",
    ),
    "not parsable": (
        f"[api]\napi-1 {PORTS}\n[api:vars]\nbroken CANARY-line\n[db]\ndb-1\n",
        "not an inventory ansible can read (ansible-inventory exit",
    ),
}


@pytest.mark.parametrize(("inventory", "named"), BAD_INVENTORIES.values(), ids=BAD_INVENTORIES)
def test_an_inventory_that_cannot_be_used_is_refused_naming_group_or_host(
    inventory: str,
    named: str,
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
) -> None:
    run = run_suite("-m", "precheck", target=fleet_target(inventory=inventory))
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert named in run.output
    assert "CANARY" not in run.output
    assert named in run.event("DEPLOYMENT_REFUSED").fields["reason"]


def test_hosts_named_by_address_are_checked_and_named_so(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path]
) -> None:
    """Inventories often name hosts by address: 127.0.0.1 is a host name, a test id and the
    start of its endpoint's name."""
    inventory = INVENTORY.read_text(encoding="utf-8")
    by_address = re.sub(r"^api-1 ansible_host=127.0.0.1 ", "127.0.0.1 ", inventory, flags=re.M)
    run = run_suite("--activate", "phase3", "--step", "1", "--plan", target=fleet_target(
        inventory=by_address))  # fmt: skip
    assert run.rc == 0, run.output
    statuses = audit_statuses(run, "deployment-")
    assert statuses["DISK[127.0.0.1]"] == "PASS" and "DISK[api-1]" not in statuses


def test_inventory_variables_others_could_change_are_refused(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path], tmp_path: Path
) -> None:
    target = fleet_target(inventory=INVENTORY.read_text(encoding="utf-8"))
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    (host_vars / "api-1.yml").write_text("ansible_ssh_common_args: -o ProxyCommand=true\n")
    (host_vars / "api-1.yml").chmod(0o666)
    run = run_suite("-m", "precheck", target=target)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert "host_vars/api-1.yml is writable by others (mode 0666)" in run.output


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"database.host": "{ansible_host}"}, "database.host: names a node's variable"),
        ({"gateway.local_url": "http://deploy:pw@127.0.0.1:{nexus_gateway_port}"},
         "gateway.local_url: Value error, a login in the URL is refused"),
        ({"fleet": DELETE}, "names a node's variable, but there is no fleet: section"),
    ],
    ids=["a variable in a platform field", "a login in local_url", "a variable without a fleet"],
)  # fmt: skip
def test_a_profile_that_misplaces_node_variables_is_refused(
    changes: dict[str, Any],
    named: str,
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
) -> None:
    run = run_suite("-m", "precheck", target=fleet_target(changes))
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert named in run.output and "pw@" not in run.output


def test_an_inventory_others_could_change_is_refused(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path], tmp_path: Path
) -> None:
    """An inventory's ssh options run commands here (ProxyCommand): it is trusted like code."""
    target = fleet_target(inventory=INVENTORY.read_text(encoding="utf-8"))
    (tmp_path / "inventory.ini").chmod(0o666)
    run = run_suite("-m", "precheck", target=target)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert "inventory.ini is writable by others (mode 0666)" in run.output


def test_a_nodes_make_up_asked_in_one_round_trip_answers_as_asked_one_by_one() -> None:
    listing = read_inventory(INVENTORY)
    warmed = fleet_host(str(INVENTORY), listing, "api-2", 30.0, 5.0)
    warmed.warm_probes()
    alone = fleet_host(str(INVENTORY), listing, "api-2", 31.0, 5.0)  # another host object
    for probe in USUAL_PROBES:
        asked = alone._run_line(probe)  # past the memo: the command itself, over ssh
        answered = warmed.run(probe)  # from the memo the warm-up filled
        assert (answered.rc, answered.stdout) == (asked.rc, asked.stdout), probe
    assert warmed.run("command -v git").rc == 0 and "git" in warmed.run("command -v git").stdout


def test_a_fleet_can_be_a_list_of_testinfra_hosts_without_an_inventory(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path], tmp_path: Path
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host 127.0.0.1\n  User root\n  IdentityFile {FLEET_DIR}/id_ed25519\n"
        f"  UserKnownHostsFile {FLEET_DIR}/known_hosts\n  StrictHostKeyChecking yes\n",
        encoding="utf-8",
    )
    hosts: list[dict[str, Any]] = [
        {
            "name": node,
            "host": f"ssh://127.0.0.1:{2200 + number}?ssh_config={ssh_config}",
            "roles": ["api"],
            "variables": {"nexus_https_port": 9400 + number, "nexus_gateway_port": 8100 + number},
        }
        for number, node in enumerate(NODES, start=1)
    ]
    hosts.append({"name": "db-1", "host": "local://", "roles": ["db"]})
    target = fleet_target({"fleet.inventory": DELETE, "fleet.groups": DELETE, "fleet.hosts": hosts})
    run = run_suite("-m", "precheck", target=target)
    assert run.rc == 0, run.output
    statuses = audit_statuses(run)
    assert set(statuses) == expected_labels() and set(statuses.values()) == {"PASS"}


@pytest.mark.parametrize(
    ("fleet", "named"),
    [
        ({"hosts": [{"name": "a", "host": "ssh://u:pw@h", "roles": ["api"]}]}, "holds a password"),
        ({"hosts": [{"name": "a", "host": "local://", "roles": ["web"]}]}, "roles.0"),
        ({"inventory": str(INVENTORY)}, "groups: say which inventory groups"),
    ],
    ids=["a password in a spec", "an unknown role", "an inventory without groups"],
)
def test_a_fleet_section_that_cannot_be_used_is_refused_naming_the_field(
    fleet: dict[str, Any],
    named: str,
    run_suite: Callable[..., SuiteRun],
    fleet_target: Callable[..., Path],
) -> None:
    target = fleet_target({"fleet": fleet})
    run = run_suite("-m", "precheck", target=target)
    assert run.rc == pytest.ExitCode.USAGE_ERROR, run.output
    assert "fleet" in run.output and named in run.output
    assert "pw@" not in run.output


@pytest.fixture
def hanging_uname() -> Iterator[str]:
    """api-3's `uname` hangs (a stuck NFS mount on PATH, say), logging each start."""
    fake = "/usr/local/bin/uname"
    on_node("api-3", f"printf '#!/bin/sh\\necho \"$@\" >> /tmp/uname.log\\nsleep 60\\n' > {fake}")
    on_node("api-3", f"chmod 755 {fake}; rm -f /tmp/uname.log")
    try:
        yield "/tmp/uname.log"
    finally:
        on_node("api-3", f"rm -f {fake} /tmp/uname.log")


def test_a_probe_that_hangs_is_run_once_not_once_per_precheck(
    run_suite: Callable[..., SuiteRun], fleet_target: Callable[..., Path], hanging_uname: str
) -> None:
    override = """ nexus_overrides="{'command_timeout_s': 2.0}\""""
    inventory = re.sub(r"^(api-3 .*)$", rf"\1{override}", INVENTORY.read_text(), flags=re.M)
    run = run_suite("-m", "precheck", target=fleet_target(inventory=inventory), timeout=120)
    assert run.rc == pytest.ExitCode.TESTS_FAILED, run.output
    failed = {label for label, status in audit_statuses(run).items() if status == "FAIL"}
    assert failed and all(label.endswith("[api-3]") for label in failed), failed
    started = subprocess.run(
        ["docker", "exec", container("api-3"), "cat", hanging_uname],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # Once in the node's batch of probes, once asked alone; then every asker gets the timeout.
    assert started.count("-s") <= 2, started
