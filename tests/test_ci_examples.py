"""The CI pipelines to copy (.github/workflows/deploy.yml, .gitlab-ci.yml): valid and gated.

Each file is validated offline against its published schema, which check-jsonschema vendors; a
broken copy is rejected, so the validation can fail. Then, read with PyYAML: the activation
runs after the prechecks and behind a person's approval, every job keeps reports/ even when it
fails, and every pytest command line uses only the deployer's options.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from suite import REPO

GITHUB_WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
GITLAB_CI = REPO / ".gitlab-ci.yml"
SCHEMAS = {GITHUB_WORKFLOW: "vendor.github-workflows", GITLAB_CI: "vendor.gitlab-ci"}

# What a pipeline may pass to pytest: `-m precheck`, `--target=...` and the activation request.
KNOWN_OPTIONS = {"-m", "--activate", "--step", "--mode", "--plan"}


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Validate with the vendored schema: no network, the same interpreter as the tests."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def github_jobs() -> dict[str, Any]:
    jobs: dict[str, Any] = load(GITHUB_WORKFLOW)["jobs"]
    return jobs


def gitlab_jobs() -> dict[str, Any]:
    # Top-level mappings with a script are jobs; the rest are keywords (default, variables, ...).
    return {
        name: job
        for name, job in load(GITLAB_CI).items()
        if isinstance(job, dict) and "script" in job and not name.startswith(".")
    }


def job_scripts() -> dict[str, list[str]]:
    """Every job's shell scripts, by "file:job": GitHub's `run:` steps, GitLab's script lines."""
    scripts = {
        f"github:{name}": [step["run"] for step in job["steps"] if "run" in step]
        for name, job in github_jobs().items()
    }
    for name, job in gitlab_jobs().items():
        keys = ("before_script", "script", "after_script")
        scripts[f"gitlab:{name}"] = [line for key in keys for line in job.get(key, [])]
    return scripts


def pytest_command_lines(scripts: list[str]) -> list[list[str]]:
    """The arguments after `pytest` on every command line of these scripts that runs it."""
    found = []
    for script in scripts:
        for line in script.splitlines():
            words = shlex.split(line, comments=True)
            names = [Path(word).name for word in words]
            if "pytest" in names:
                found.append(words[names.index("pytest") + 1 :])
    return found


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda path: path.name)
def test_file_is_valid_against_its_published_schema(path):
    result = check_jsonschema(SCHEMAS[path], path)
    assert result.returncode == 0, result.stdout + result.stderr


# A typo'd key added to the precheck job, in the text: the copy differs by that line only.
TYPOS = {  # file: (a line of its precheck job, the line added after it)
    GITHUB_WORKFLOW: ("    runs-on: [self-hosted, nexus-cos]\n", "    runs-onn: [nexus-cos]\n"),
    GITLAB_CI: ("  stage: precheck\n", "  runs-onn: [nexus-cos]\n"),
}


@pytest.mark.parametrize("path", list(SCHEMAS), ids=lambda path: path.name)
def test_a_job_with_an_unknown_key_is_rejected(path, tmp_path):
    text = path.read_text()
    line, typo = TYPOS[path]
    assert line in text
    broken = tmp_path / path.name
    broken.write_text(text.replace(line, line + typo, 1))
    result = check_jsonschema(SCHEMAS[path], broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'runs-onn' was unexpected" in result.stdout


def test_github_activation_waits_for_the_prechecks_and_an_approval():
    jobs = github_jobs()
    assert set(jobs) == {"precheck", "activate"}
    assert jobs["activate"]["needs"] == "precheck"
    assert jobs["activate"]["environment"] == "production-activation"
    assert "environment" not in jobs["precheck"]
    # Never two deployments at once, and a running one is never cancelled.
    assert load(GITHUB_WORKFLOW)["concurrency"]["cancel-in-progress"] is False


def test_gitlab_activation_waits_for_the_prechecks_and_a_person():
    jobs = gitlab_jobs()
    assert set(jobs) == {"precheck", "activate"}
    assert [need["job"] for need in jobs["activate"]["needs"]] == ["precheck"]
    assert jobs["activate"]["when"] == "manual"
    assert jobs["activate"]["allow_failure"] is False
    assert jobs["activate"]["environment"]["name"] == "production"
    assert jobs["precheck"]["resource_group"] == jobs["activate"]["resource_group"]


@pytest.mark.parametrize("name", ["precheck", "activate"])
def test_github_job_keeps_its_reports_even_when_it_fails(name):
    uploads = [
        step
        for step in github_jobs()[name]["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert uploads, f"{name} uploads no artifact"
    for step in uploads:
        assert step["with"]["path"] == "reports/"
        assert step["if"] == "always()"


@pytest.mark.parametrize("name", ["precheck", "activate"])
def test_gitlab_job_keeps_its_reports_even_when_it_fails(name):
    artifacts = gitlab_jobs()[name]["artifacts"]
    assert "reports/" in artifacts["paths"]
    assert artifacts["when"] == "always"


def test_pytest_command_lines_use_only_the_deployers_options():
    command_lines = pytest_command_lines([s for scripts in job_scripts().values() for s in scripts])
    assert len(command_lines) == 10  # per file: precheck, then plan and activation (phase3, phase4)
    for words in command_lines:
        for option in (word for word in words if word.startswith("-")):
            assert option in KNOWN_OPTIONS or option.startswith("--target="), (option, words)
        if "-m" in words:
            assert words[words.index("-m") + 1] == "precheck", words
        if "--activate" in words:
            assert words[words.index("--activate") + 1] in {"phase3", "phase4"}, words


@pytest.mark.parametrize("job", ["github:precheck", "gitlab:precheck"])
def test_precheck_job_changes_nothing(job):
    for words in pytest_command_lines(job_scripts()[job]):
        assert "--plan" in words or words[:2] == ["-m", "precheck"], words


@pytest.mark.parametrize("job", ["github:activate", "gitlab:activate"])
def test_activation_job_applies_the_request(job):
    command_lines = pytest_command_lines(job_scripts()[job])
    assert len(command_lines) == 2  # phase3 --step, phase4 --mode
    for words in command_lines:
        assert "--activate" in words and "--plan" not in words, words
