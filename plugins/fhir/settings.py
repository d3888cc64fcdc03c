"""The ``[fhir]`` section of ``hub.toml``.

```toml
[fhir]
base_url = "https://hub.example.org/fhir"  # public base for links (default: from the request)
default_purpose = "coordination"           # purpose of a Patient read without X-Purpose-Of-Use
page_size = 50                             # default _count
max_page_size = 500                        # largest _count honoured
validation_workers = 1                     # processes validating large Bundles (0: in process)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consent.categories import PURPOSES

SECTION = "fhir"


@dataclass(frozen=True, slots=True)
class FhirSettings:
    """Validated FHIR API settings."""

    base_url: str = ""
    default_purpose: str = "coordination"
    page_size: int = 50
    max_page_size: int = 500
    validation_workers: int = 1


_TYPES: dict[str, type] = {
    "base_url": str,
    "default_purpose": str,
    "page_size": int,
    "max_page_size": int,
    "validation_workers": int,
}


def validate_section(value: Any) -> list[str]:
    """Errors in a raw ``[fhir]`` table (``fhir.<key>: problem``), empty when valid."""
    if not isinstance(value, Mapping):
        return [f"{SECTION}: expected a table"]
    errors: list[str] = []
    for key, item in value.items():
        want = _TYPES.get(key)
        if want is None:
            errors.append(f"{SECTION}.{key}: unknown key (known: {', '.join(sorted(_TYPES))})")
        elif not isinstance(item, want) or isinstance(item, bool):
            errors.append(f"{SECTION}.{key}: expected {want.__name__}")
    if errors:
        return errors
    base = value.get("base_url", "")
    if base and not str(base).startswith(("http://", "https://")):
        errors.append(f"{SECTION}.base_url: expected an http(s) URL")
    if value.get("default_purpose", "coordination") not in PURPOSES:
        errors.append(f"{SECTION}.default_purpose: unknown purpose")
    page, most = value.get("page_size", 50), value.get("max_page_size", 500)
    if not 1 <= most <= 10_000:
        errors.append(f"{SECTION}.max_page_size: must be 1-10000")
    elif not 1 <= page <= most:
        errors.append(f"{SECTION}.page_size: must be 1-max_page_size")
    if not 0 <= value.get("validation_workers", 1) <= 64:
        errors.append(f"{SECTION}.validation_workers: must be 0-64")
    return errors


def settings_of(section: Mapping[str, Any]) -> FhirSettings:
    """Settings from a validated section (defaults for what it leaves out)."""
    d = FhirSettings()
    return FhirSettings(
        base_url=str(section.get("base_url", d.base_url)).rstrip("/"),
        default_purpose=str(section.get("default_purpose", d.default_purpose)),
        page_size=int(section.get("page_size", d.page_size)),
        max_page_size=int(section.get("max_page_size", d.max_page_size)),
        validation_workers=int(section.get("validation_workers", d.validation_workers)),
    )
