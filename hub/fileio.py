"""Small file-system helpers shared by the hub and its plugins."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed directory entry in ``folder`` durable, where the platform
    allows it (a file's own fsync does not cover its name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def locked_file(path: Path, operation: int) -> int | None:
    """``path`` (created, mode 0600) opened and locked with ``operation`` (``LOCK_SH`` or
    ``LOCK_EX``) at once, held until its descriptor is closed (or the process ends, however
    it ends): the descriptor, or None when another process holds a lock that excludes it.
    ``OSError`` when it cannot be opened or locked at all."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd
