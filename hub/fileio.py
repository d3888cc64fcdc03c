"""Small file-system helpers shared by the hub and its plugins."""

from __future__ import annotations

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
