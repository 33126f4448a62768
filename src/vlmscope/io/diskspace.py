"""Out of disk is a user condition, not a bug: one line naming the path and the space.

Writers wrap their work in :func:`disk_full_as_error`; an ``OSError`` with
``errno.ENOSPC`` (or ``EDQUOT``, a full quota) becomes :class:`DiskFull`
naming the output, the free space left there and what the write needed, so
the user knows how much to free before rerunning.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from vlmscope.errors import DiskFull

__all__ = ["dir_size", "disk_full_as_error", "disk_full_error", "free_bytes", "human_bytes", "is_disk_full"]


_MESSAGES = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
"""How ENOSPC / EDQUOT read once a library has rewrapped the OSError without its errno."""


_NEARLY_FULL = 1 << 20
"""Free bytes under which a write failure with no reason given is taken for a full disk."""


def is_disk_full(exc: BaseException, where: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``exc`` (or what it was raised from) is the file system running out of space.

    ``where``: the path being written. torch.save reports ENOSPC as a bare
    ``RuntimeError: ... file write failed`` with no errno or reason, so such a
    failure counts as a full disk when the file system at ``where`` is (nearly) full.
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(m in str(exc) for m in _MESSAGES):  # libraries that drop errno (polars: "os error 28")
            return True
        if where is not None and "write failed" in str(exc):
            free = free_bytes(where)
            return free is not None and free < _NEARLY_FULL
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing ancestor), None if unknown."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes in the regular files under ``path`` (0 when absent)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(p):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def disk_full_error(
    path: str | os.PathLike[str], needed: int | None, written: int = 0, *, resumes: bool = False
) -> DiskFull:
    """The one-line error for a write to ``path`` that ran out of space.

    ``resumes``: the partial output is kept and a rerun continues from it
    (extraction, training checkpoints); otherwise it was removed.
    """
    free = free_bytes(path)
    free_s = "unknown" if free is None else human_bytes(free)
    if needed is not None and needed > 0:
        need_s = f"needed about {human_bytes(needed)}"
    else:
        need_s = f"needed more than the {human_bytes(written)} written before it filled"
    return DiskFull(
        f"no space left on device writing {path}: {free_s} free there, {need_s}; "
        + (
            "free space and rerun: it resumes from what was completed"
            if resumes
            else "the partial output was removed, free space and rerun"
        )
    )


@contextlib.contextmanager
def disk_full_as_error(
    path: str | os.PathLike[str],
    *,
    needed: int | None = None,
    partial: str | os.PathLike[str] | None = None,
    resumes: bool = False,
) -> Iterator[None]:
    """Turn running out of space inside the block into :class:`DiskFull` naming ``path``.

    ``needed`` is the expected size of the output when the caller knows it;
    otherwise the size of ``partial`` (what was written so far) is reported
    as a lower bound.
    """
    try:
        yield
    except DiskFull:
        raise
    except BaseException as e:
        if not is_disk_full(e):
            raise
        written = dir_size(partial) if partial is not None else 0
        raise disk_full_error(path, needed, written, resumes=resumes) from e
