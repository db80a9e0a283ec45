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
    # One porcelain v2 status gives the branch, HEAD and every change; it fails outside a repo.
    status = host.run("git -C %s status --porcelain=v2 --branch --untracked-files=normal", path)
    if status.rc != 0:
        return RepositoryState(is_repository=False)
    fsck = host.run("git -C %s fsck --no-progress --no-dangling", path)
    headers = dict(
        line[2:].split(" ", 1) for line in status.stdout.splitlines() if line.startswith("# ")
    )
    head = headers.get("branch.oid", "(none)")
    return RepositoryState(
        is_repository=True,
        fsck_ok=fsck.rc == 0,
        fsck_output=(fsck.stderr + fsck.stdout).strip(),
        branch=headers.get("branch.head", "(detached)"),
        head=head[:12] if head != "(initial)" else head,
        uncommitted=tuple(
            line.rsplit(" ", 1)[-1] for line in status.stdout.splitlines() if line[:2] != "# "
        ),
    )
