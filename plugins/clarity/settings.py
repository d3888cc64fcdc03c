"""The ``[clarity]`` section of ``hub.toml``: parsing and validation.

```toml
[clarity]
default_agency = "sd-hmis-lead"      # owner of records not tied to an enrollment
batch_size = 2000                    # rows per engine.ingest call
report_dir = "hub-data/clarity-reports"
report_limit = 1000                  # report lines per (file, column, rule); 0 = all
drop_folder = "drop/clarity"         # optional: imported every drop_interval_seconds
drop_interval_seconds = 60
drop_settle_seconds = 5              # skip entries modified more recently than this
export_purpose = "coordination"      # default --purpose of recipient exports
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent.categories import PURPOSES

SECTION = "clarity"


@dataclass(frozen=True, slots=True)
class ClaritySettings:
    """Validated ``[clarity]`` settings with their defaults."""

    default_agency: str = ""
    batch_size: int = 2000
    report_folder: str = "hub-data/clarity-reports"
    report_limit: int = 1000
    drop_folder: str = ""
    drop_interval_seconds: float = 60.0
    drop_settle_seconds: float = 5.0
    export_purpose: str = "coordination"

    def report_dir(self, config: Any) -> Path:
        """The folder import reports go to (relative paths are relative to hub.toml)."""
        return Path(config.resolve(self.report_folder))

    def drop_dir(self, config: Any) -> Path | None:
        """The drop folder, or None when not configured."""
        return Path(config.resolve(self.drop_folder)) if self.drop_folder else None


_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "default_agency": (str, "default_agency"),
    "batch_size": (int, "batch_size"),
    "report_dir": (str, "report_folder"),
    "report_limit": (int, "report_limit"),
    "drop_folder": (str, "drop_folder"),
    "drop_interval_seconds": ((int, float), "drop_interval_seconds"),
    "drop_settle_seconds": ((int, float), "drop_settle_seconds"),
    "export_purpose": (str, "export_purpose"),
}


def validate_section(value: Any, agencies: frozenset[str]) -> list[str]:
    """Errors in a ``[clarity]`` section, each naming its key (``clarity.batch_size: …``)."""
    if not isinstance(value, Mapping):
        return [f"{SECTION}: expected a table"]
    errors: list[str] = []
    for key, item in value.items():
        spec = _KEYS.get(key)
        if spec is None:
            errors.append(f"{SECTION}.{key}: unknown key (known: {', '.join(sorted(_KEYS))})")
            continue
        types = spec[0]
        if isinstance(item, bool) or not isinstance(item, types):
            want = "a number" if isinstance(types, tuple) else f"a {types.__name__}"
            errors.append(f"{SECTION}.{key}: expected {want}, got {type(item).__name__}")
            continue
        problem = _problem(key, item, agencies)
        if problem:
            errors.append(f"{SECTION}.{key}: {problem}")
    return errors


def _problem(key: str, item: Any, agencies: frozenset[str]) -> str:
    """What is wrong with one well-typed value ("" when nothing)."""
    if key == "default_agency" and item not in agencies:
        return f"unknown agency {item!r}"
    if key == "batch_size" and not 100 <= item <= 100_000:
        return f"{item} out of range 100-100000"
    if key == "report_limit" and item < 0:
        return "must be 0 (no limit) or more"
    if key == "drop_interval_seconds" and item <= 0:
        return "must be more than 0"
    if key == "drop_settle_seconds" and item < 0:
        return "must be 0 or more"
    if key == "export_purpose" and item not in PURPOSES:
        return f"unknown purpose {item!r}"
    if key in ("drop_folder", "report_dir") and not item.strip():
        return "must not be empty"
    return ""


def settings_of(config: Any) -> ClaritySettings:
    """The settings of a loaded config (validated at load; unknown keys are ignored here)."""
    raw = config.section(SECTION)
    kwargs: dict[str, Any] = {}
    for key, (_types, attr) in _KEYS.items():
        if key in raw:
            kwargs[attr] = raw[key]
    for attr in ("drop_interval_seconds", "drop_settle_seconds"):
        if attr in kwargs:
            kwargs[attr] = float(kwargs[attr])
    return ClaritySettings(**kwargs)
