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
    # The branch's upstream (origin/main) and how many of its commits HEAD lacks, as of the
    # last fetch (a precheck fetches nothing); None without an upstream.
    upstream: str | None = None
    behind: int | None = None


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
    ahead_behind = headers.get("branch.ab", "").split()  # "+0 -2"
    return RepositoryState(
        is_repository=True,
        fsck_ok=fsck.rc == 0,
        fsck_output=(fsck.stderr + fsck.stdout).strip(),
        branch=headers.get("branch.head", "(detached)"),
        head=head[:12] if head != "(initial)" else head,
        uncommitted=tuple(
            changed_path(line) for line in status.stdout.splitlines() if line[:2] != "# "
        ),
        upstream=headers.get("branch.upstream"),
        behind=abs(int(ahead_behind[1])) if len(ahead_behind) == 2 else None,
    )


# Fields before the path in each kind of porcelain v2 line (git-status(1)).
_FIELDS_BEFORE_PATH = {"1": 8, "2": 9, "u": 10, "?": 1, "!": 1}


def changed_path(line: str) -> str:
    """The path of one porcelain v2 change line (a rename's new path), spaces and all."""
    path = line.split(" ", _FIELDS_BEFORE_PATH.get(line[:1], 1))[-1]
    return path.split("\t", 1)[0]
