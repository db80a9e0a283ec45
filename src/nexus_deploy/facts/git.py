"""Facts about the platform's git checkout."""

from __future__ import annotations

from dataclasses import dataclass

from testinfra.host import Host


@dataclass(frozen=True)
class RepositoryState:
    is_repository: bool
    fsck_ok: bool = False
    fsck_output: str = ""
    branch: str = ""
    head: str = ""
    uncommitted: tuple[str, ...] = ()


def repository_state(host: Host, path: str) -> RepositoryState:
    """Integrity, branch, HEAD and uncommitted paths of the checkout at ``path``."""
    inside = host.run("git -C %s rev-parse --is-inside-work-tree", path)
    if inside.rc != 0 or inside.stdout.strip() != "true":
        return RepositoryState(is_repository=False)
    fsck = host.run("git -C %s fsck --no-progress --no-dangling", path)
    branch = host.run("git -C %s symbolic-ref --quiet --short HEAD", path)
    head = host.run("git -C %s rev-parse --short=12 HEAD", path)
    status = host.run("git -C %s status --porcelain --untracked-files=normal", path)
    return RepositoryState(
        is_repository=True,
        fsck_ok=fsck.rc == 0,
        fsck_output=(fsck.stderr + fsck.stdout).strip(),
        # A detached HEAD has no branch name; the precheck then names HEAD instead.
        branch=branch.stdout.strip() if branch.rc == 0 else "(detached)",
        head=head.stdout.strip() if head.rc == 0 else "(none)",
        uncommitted=tuple(line[3:] for line in status.stdout.splitlines() if line.strip()),
    )
