"""Refuse ``--out`` values that name the working directory or something above it.

Every verb replaces its ``--out`` as a whole when it finishes, so ``--out .``
(or ``..``, ``~``, the repository root) would swap the user's working tree
for one artifact. Whether an existing ``--out`` may be replaced at all is
decided in the library (the artifact-kind guard); this check only catches,
at the edge and before any work is done, the directories that can never be
an output, with one line naming the fix.
"""

from __future__ import annotations

from pathlib import Path

from vlmscope.errors import ConfigError

__all__ = ["refuse_cwd_out"]

_REPO_MARKERS = (".git", ".dvc")


def refuse_cwd_out(out: Path | None) -> Path | None:
    """``--out`` unchanged, or :class:`ConfigError` when it is the cwd, one of its parents, home or a repo root.

    Used as the typer ``callback`` of every ``--out`` option, so the error
    is raised while the options are parsed (the CLI prints it in one line).
    """
    if out is None:
        return out
    target = Path(out).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        what = "the current directory" if target == cwd else "a parent of the current directory"
    elif target == Path.home().resolve():
        what = "your home directory"
    elif any((target / m).exists() for m in _REPO_MARKERS):
        what = "the root of a git/DVC repository"
    else:
        return out
    raise ConfigError(
        f"--out {out}: refusing to write over {what} (vlmscope replaces --out as a whole); "
        "name a new subdirectory, e.g. --out out/run1"
    )
