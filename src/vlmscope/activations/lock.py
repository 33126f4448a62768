"""One writer per store: an ``fcntl.flock`` on a lock file inside it.

The lock is advisory and released by the kernel when the process dies (even
on SIGKILL), so a killed run never leaves a stale lock behind: the next run
takes it and resumes. A second process that tries while the first runs gets
:class:`StoreLocked` at once (non-blocking), naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from vlmscope.errors import StoreLocked

__all__ = ["StoreLock"]


class StoreLock:
    """Exclusive, non-blocking writer lock on ``path`` (a file; created if missing).

    Use as a context manager or call :meth:`acquire`/:meth:`release`.
    ``release(remove=True)`` unlinks the file first (done when a store
    completes, so a finished store holds only Zarr files).
    """

    def __init__(self, path: str | os.PathLike[str], *, store: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.store = Path(store) if store is not None else self.path.parent
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 64, 0).decode().strip()
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f" (pid {holder})" if holder else ""
                raise StoreLocked(
                    f"{self.store}: another process{who} is writing this activation store; wait for it to "
                    "finish or stop it (a killed run releases the lock and can be resumed), or use another --out"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self, *, remove: bool = False) -> None:
        if self._fd is None:
            return
        if remove:
            # unlink while still holding: a process blocked on the old inode fails, a later one makes a new file
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
