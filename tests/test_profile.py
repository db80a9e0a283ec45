"""Target profiles: the shipped ones load; a bad one is refused naming file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from suite import REPO

from nexus_deploy.config.profile import ProfileError, load_profile
from nexus_deploy.config.targets import DEFAULT_COMMAND_TIMEOUT_S, resolve_target_path


@pytest.mark.parametrize("name", ["sandbox", "production"])
def test_shipped_profiles_load(name):
    profile = load_profile(REPO / "pfs" / "targets" / f"{name}.yaml")
    assert profile.name == name
    assert profile.disk.min_free_gb == 5 and profile.memory.min_available_gb == 4


def test_no_profile_carries_a_password():
    for path in (REPO / "pfs" / "targets").glob("*.yaml"):
        assert "password:" not in path.read_text(), path


def test_target_is_chosen_by_option_then_environment(monkeypatch, tmp_path):
    assert resolve_target_path("production", REPO) == REPO / "pfs/targets/production.yaml"
    assert resolve_target_path(str(tmp_path / "t.yaml"), REPO) == tmp_path / "t.yaml"
    monkeypatch.setenv("NEXUS_TARGET", "production")
    assert resolve_target_path(None, REPO).name == "production.yaml"
    monkeypatch.delenv("NEXUS_TARGET")
    assert resolve_target_path(None, REPO).name == "sandbox.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "cannot read target profile"),
        ("name: x\n", "system: Field required"),
    ],
)
def test_unusable_files_are_refused(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as refused:
        load_profile(path)
    assert str(refused.value).startswith(str(path))


def test_every_bad_field_is_named(tmp_path):
    profile = yaml.safe_load((REPO / "pfs/targets/sandbox.yaml").read_text())
    profile["database"]["port"] = 70000
    profile["security"]["tls_endpoint"] = "nohost"
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ProfileError) as refused:
        load_profile(path)
    assert "database.port" in str(refused.value)
    assert "security.tls_endpoint" in str(refused.value)


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_profile(Path(tmp_path / "absent.yaml"))


def test_an_unknown_host_backend_is_refused(target_file):
    path = target_file({"host": "nosuchbackend://x"})
    with pytest.raises(ProfileError, match=r"host: .*is not a testinfra host") as refused:
        load_profile(path)
    assert "nosuchbackend" not in str(refused.value), "a refusal names the field, not the value"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("audit.dir", "relative/audit"),
        ("database.password_env", "X; rm -rf /"),
        ("docker.min_api_version", "one.forty"),
        ("gateway.health_path", "health"),
        ("security.hostname", "localhost\r\nX-Injected: 1"),
        ("security.hostname", "-checkhost"),
        ("security.hostname", "a..b"),
        ("security.hostname", "x" * 64 + ".example"),
        ("security.tls_endpoint", "a..b:443"),
        ("security.tls_endpoint", "localhost:70000"),
    ],
)
def test_fields_that_reach_a_shell_or_a_path_are_checked(target_file, field, value):
    with pytest.raises(ProfileError, match=re.escape(field)):
        load_profile(target_file({field: value}))


@pytest.mark.parametrize("value", [0, -5, 7200, "soon", True])
def test_the_host_command_limit_is_a_positive_number_of_seconds(target_file, value):
    path = target_file({"command_timeout_s": value})
    with pytest.raises(ProfileError, match=f"{path}: command_timeout_s: "):
        load_profile(path)


@pytest.mark.parametrize(
    ("field", "value", "wrong"),
    [
        ("gateway.timeout_s", "3", "Input should be a valid number"),
        ("gateway.timeout_s", float("nan"), "Input should be a finite number"),
        ("disk.min_free_gb", True, "Input should be a valid number"),
        ("memory.min_available_gb", "4", "Input should be a valid number"),
        ("security.min_days_valid", True, "Input should be a valid integer"),
        ("database.port", "55432", "Input should be a valid integer"),
    ],
)
def test_thresholds_and_timeouts_are_written_as_numbers(target_file, field, value, wrong):
    with pytest.raises(ProfileError, match=rf"{re.escape(field)}: {wrong}"):
        load_profile(target_file({field: value}))


def test_host_commands_are_bounded_by_default():
    profile = load_profile(REPO / "pfs/targets/sandbox.yaml")
    assert profile.command_timeout_s == DEFAULT_COMMAND_TIMEOUT_S == 60


def test_a_key_given_twice_is_refused_naming_the_line(tmp_path):
    text = (REPO / "pfs/targets/sandbox.yaml").read_text() + "name: production\n"
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"line \d+: key 'name' given twice"):
        load_profile(path)


def test_endpoint_names_must_differ(tmp_path):
    profile = yaml.safe_load((REPO / "pfs/targets/sandbox.yaml").read_text())
    profile["gateway"]["endpoints"][1]["name"] = "direct"
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ProfileError, match=r"gateway\.endpoints: .*endpoint names must differ"):
        load_profile(path)


@pytest.mark.parametrize("value", ["certs/ca.crt", "./nexus.crt", ""])
def test_a_relative_ca_file_is_refused_naming_the_field(target_file, value):
    path = target_file({"gateway.ca_file": value})
    wrong = re.escape(f"{path}: gateway.ca_file: Value error, ")
    # The value itself is not repeated (the Trust issue: a refusal never echoes the file).
    with pytest.raises(
        ProfileError, match=rf"^{wrong}must be an absolute path \(starting with /\)$"
    ):
        load_profile(path)


def test_the_ca_file_may_be_absolute_or_left_out(target_file):
    ca_file = load_profile(target_file({"gateway.ca_file": "/etc/ssl/ca.crt"})).gateway.ca_file
    assert ca_file == Path("/etc/ssl/ca.crt")
    assert load_profile(target_file({"gateway.ca_file": None})).gateway.ca_file is None
