"""The machine a run was made on: CPUs, CPU model, memory, Python, SQLite, the hub version."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sqlite3
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    """What the figures of a run depend on, for the JSON file and the documentation."""
    return {
        "nproc": _usable_cpus(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_mb(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "hub": _version("cie-hub"),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line: ``2 CPUs (AMD EPYC), 23.5 GiB RAM, Python 3.11.9, SQLite 3.40.1``."""
    memory = info.get("memory_mb")
    ram = f"{memory / 1024:.1f} GiB RAM" if memory else "RAM unknown"
    return (
        f"{info.get('nproc')} CPUs ({info.get('cpu_model')}), {ram}, "
        f"Python {info.get('python')}, SQLite {info.get('sqlite')}"
    )
