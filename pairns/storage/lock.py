"""A directory lock so that only one process at a time uses a data directory.

``<dir>/pairns.lock`` is held with ``flock(LOCK_EX | LOCK_NB)`` for as long as the
storage is open, and holds the owner's pid for the error message. The kernel drops a
flock when its process dies, even by SIGKILL, so a crash never leaves a stale lock;
the pid in the file is only informative and is never trusted to decide anything.
"""

from __future__ import annotations

import errno
import fcntl
import os

from pairns.errors import StorageError

__all__ = ["LOCK_NAME", "DirectoryLock", "os_reason"]

LOCK_NAME = "pairns.lock"

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOENT: "no such file or directory",
}


def os_reason(exc: OSError) -> str:
    """A short lower-case reason for an ``OSError`` ("permission denied", ...)."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or str(exc)).lower()


class DirectoryLock:
    """An exclusive, process-lifetime lock on a data directory (blocking calls)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StorageError` saying who holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot use storage directory ({os_reason(exc)}): {self.directory}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise StorageError(f"database in use by {who}: {self.directory}") from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"cannot lock storage directory ({os_reason(exc)}): {self.directory}"
            ) from exc
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"cannot use storage directory ({os_reason(exc)}): {self.directory}"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The pid stays in the file; it is harmless."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
