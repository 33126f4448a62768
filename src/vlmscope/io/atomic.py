"""Atomic writes: a killed run never leaves an artifact that looks complete.

Directories are built under a sibling temporary name and renamed into place
only when finished; files are written to a temporary name and ``os.replace``d.
Temporary directories carry the writer's pid (``.<name>.tmp-<pid>-*``), so a
later run removes the ones a killed process left behind. Running out of disk
removes the temporary directory and raises one :class:`DiskFull` line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from vlmscope.errors import DiskFull
from vlmscope.io.diskspace import dir_size, disk_full_error, is_disk_full
from vlmscope.io.outguard import check_out, write_marker

__all__ = ["atomic_dir", "atomic_write_bytes", "atomic_write_text", "remove_stale"]


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale(final: str | os.PathLike[str]) -> None:
    """Remove ``final``'s temporary siblings whose writer is dead (killed mid-write).

    Names without a pid (written before pids were recorded) are stale too.
    A live writer's directory is left alone.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?:tmp-(?:(\d+)-)?|old-(\d+)$)")
    for p in final.parent.iterdir():
        m = pattern.match(p.name)
        pid = None if m is None else (m.group(1) or m.group(2))
        if m is None or (pid is not None and _alive(int(pid))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike[str],
    *,
    kind: str | None = None,
    inputs: Iterable[object] = (),
    may_nest: bool = False,
    resumes: bool = False,
) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final`` on success.

    With ``kind`` (a user-facing ``--out``), ``final`` is first checked by
    :func:`vlmscope.io.outguard.check_out` against ``inputs`` and the result
    is marked as that kind. Without it (internal directories such as
    checkpoints) no check is made. ``resumes`` words the disk-full message
    for writes a rerun resumes from (training checkpoints).

    On an exception the temporary directory is removed and ``final`` is left
    as it was. An existing ``final`` is replaced only after the new one is
    complete (rename old away, rename new in, delete old); if the second
    rename fails the old directory is put back. The result gets the usual
    permissions (``0o777 & ~umask``), not ``mkdtemp``'s private ``0o700``.
    """
    final = Path(final)
    inputs = list(inputs)
    if kind is not None:
        check_out(final, kind, inputs, may_nest=may_nest)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(final, None) from e
        raise
    try:
        yield tmp
        if kind is not None:
            write_marker(tmp, kind)
        os.chmod(tmp, 0o777 & ~_umask())
    except BaseException as e:
        full = is_disk_full(e, tmp) and not isinstance(e, DiskFull)
        written = dir_size(tmp) if full else 0
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(final, None, written, resumes=resumes) from e
        raise
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a sibling temporary file, then rename it onto ``path``.

    Readers see the old content or the new, never a prefix. The file gets
    ``0o666 & ~umask`` permissions (``mkstemp`` alone would leave ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise disk_full_error(path, len(data)) from e
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """``atomic_write_bytes`` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
