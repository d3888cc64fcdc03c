"""Resident memory of this process: now and at its peak (Linux ``/proc``, else getrusage)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        text = _STATUS.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss_kb() -> int:
    """The high-water mark of this process's resident set (``VmHWM``), in KiB."""
    value = _status_kb("VmHWM")
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def current_rss_kb() -> int:
    """This process's resident set now (``VmRSS``), in KiB (the peak when unknown)."""
    value = _status_kb("VmRSS")
    return value if value is not None else peak_rss_kb()
