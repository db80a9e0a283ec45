"""Where a run's files go, known before it writes any: its id, its report folder, its audit log."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nexus_deploy.audit import AuditLog
from nexus_deploy.config.trust import untrusted_path


@dataclass(frozen=True)
class RunFiles:
    """Every file a run writes, known before it writes any."""

    run_dir: Path
    html: Path
    junit: Path
    latest: Path

    @classmethod
    def under(cls, reports_dir: Path, run_id: str) -> RunFiles:
        run_dir = reports_dir / run_id
        return cls(run_dir, run_dir / "report.html", run_dir / "junit.xml", reports_dir / "latest")

    def point_latest_here(self) -> None:
        # Build the new link beside the old one and rename over it: never a moment without one.
        temporary = self.latest.with_name(f".latest-{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self.run_dir.name)
        temporary.replace(self.latest)


def untrusted_directory(directory: Path) -> str | None:
    """Why ``directory`` (or a parent of it) could be changed by someone other than us or root,
    or None. Such a directory is still used for the read-only record of a run (nothing there
    is ever written through a symlink), but no activation relies on it."""
    return untrusted_path(directory, "audit directory")


def open_audit(
    directory: Path, fallback: Path, name: str, key: bytes | None = None
) -> tuple[AuditLog, str | None]:
    """The audit log in the profile's directory, or in the run folder if that cannot be written."""
    try:
        return AuditLog(directory / name, key), None
    except OSError as exc:
        note = f"audit directory {directory} not writable ({exc.strerror}); audit in {fallback}"
        return AuditLog(fallback / name, key), note
