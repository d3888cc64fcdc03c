"""The ``[hl7]`` section of ``hub.toml``: validation (errors name the key) and typed settings.

```toml
[hl7]
port = 2575                     # MLLP listener; 0 disables it in `hub serve`
host = "127.0.0.1"
max_frame_bytes = 1048576       # a larger frame is refused (AR when its MSH is readable)
idle_timeout_seconds = 30       # a connection silent this long is closed
frame_timeout_seconds = 60      # a frame must be complete this long after it starts
stop_grace_seconds = 5          # how long `stop` lets in-flight messages finish
processing_ids = ["P"]          # MSH-11 accepted; a test ("T") or debug ("D") message gets AR
timezone = "America/Los_Angeles"  # optional: senders' zone for times without an offset
[hl7.tls]                       # optional; client_ca_file turns on mutual TLS
cert_file = "certs/hub.pem"
key_file = "certs/hub.key"
client_ca_file = "certs/partners-ca.pem"
[[hl7.senders]]
facility = "MERCYGEN"           # MSH-4 namespace id
agency = "hospital-x"           # owner of what it sends
validation = "strict"           # optional: check its messages with hl7apy ("none" default)
timezone = "America/New_York"   # optional: this sender's zone (default: [hl7] timezone)
```

HL7 reads a date-time without an offset as the sender's local time. With no ``timezone``
such a value stays as written and is taken as UTC where a zone is needed (FHIR, ordering):
set it when senders leave the offset out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_PORT = 2575
DEFAULT_MAX_FRAME_BYTES = 1 << 20
VALIDATION_MODES = ("none", "strict")
PROCESSING_IDS = ("P", "T", "D")
"""HL7 table 0103: production, training (test), debugging."""

_TOP_KEYS = {
    "port": int,
    "host": str,
    "max_frame_bytes": int,
    "idle_timeout_seconds": (int, float),
    "frame_timeout_seconds": (int, float),
    "stop_grace_seconds": (int, float),
    "processing_ids": list,
    "timezone": str,
    "senders": list,
    "tls": dict,
}
_SENDER_KEYS = {"facility": str, "agency": str, "validation": str, "timezone": str}
_TLS_KEYS = {"cert_file": str, "key_file": str, "client_ca_file": str}


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """A sender the listener accepts: its MSH-4 facility and the agency that owns its data."""

    facility: str
    agency: str
    validation: str = "none"
    zone: tzinfo | None = None
    """Its time zone for date-times without an offset (None: the ``[hl7]`` one)."""

    @property
    def strict(self) -> bool:
        """Whether its messages are validated against the HL7 structures (hl7apy)."""
        return self.validation == "strict"


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Listener TLS: certificate and key, and the CA that signs client certificates (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Hl7Settings:
    """Typed ``[hl7]`` settings (defaults for everything but the senders)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    idle_timeout_seconds: float = 30.0
    frame_timeout_seconds: float = 60.0
    stop_grace_seconds: float = 5.0
    processing_ids: frozenset[str] = frozenset({"P"})
    """MSH-11 values this hub takes: a production hub refuses a sender's test messages."""
    zone: tzinfo | None = None
    """Senders' time zone for date-times without an offset (None: left as written)."""
    senders: Mapping[str, SenderConfig] = field(default_factory=dict)
    tls: TlsSettings | None = None

    def sender(self, facility: str) -> SenderConfig | None:
        """The configured sender with that MSH-4 facility, or None (an unlisted sender)."""
        return self.senders.get(facility)

    def zone_of(self, sender: SenderConfig) -> tzinfo | None:
        """The time zone a sender's date-times without an offset are in."""
        return sender.zone or self.zone


def time_zone(name: str) -> tzinfo | None:
    """The IANA time zone of that name (``America/Los_Angeles``), or None when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _type_name(tp: Any) -> str:
    if isinstance(tp, tuple):
        return "number"
    names = {int: "integer", str: "string", list: "array of tables", dict: "table"}
    return str(names.get(tp, getattr(tp, "__name__", "value")))


def _typed_ok(value: Any, tp: Any) -> bool:
    if isinstance(value, bool):
        return tp is bool
    return isinstance(value, tp)


def _check_table(
    table: Mapping[str, Any], path: str, allowed: Mapping[str, Any], errors: list[str]
) -> None:
    for key, value in table.items():
        tp = allowed.get(key)
        if tp is None:
            known = ", ".join(sorted(allowed))
            errors.append(f"{path}.{key}: unknown key (known: {known})")
        elif not _typed_ok(value, tp):
            errors.append(f"{path}.{key}: expected {_type_name(tp)}, got {type(value).__name__}")


def validate_section(value: Any, agencies: frozenset[str]) -> list[str]:
    """Every problem of an ``[hl7]`` section, each naming its key path; [] when valid."""
    if not isinstance(value, Mapping):
        return [f"hl7: expected a table, got {type(value).__name__}"]
    errors: list[str] = []
    _check_table(value, "hl7", _TOP_KEYS, errors)
    port = value.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and not 0 <= port <= 65535:
        errors.append(f"hl7.port: port {port} out of range 0-65535")
    size = value.get("max_frame_bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size < 1024:
        errors.append("hl7.max_frame_bytes: must be at least 1024")
    for key in ("idle_timeout_seconds", "frame_timeout_seconds", "stop_grace_seconds"):
        number = value.get(key)
        if isinstance(number, int | float) and not isinstance(number, bool) and number <= 0:
            errors.append(f"hl7.{key}: must be greater than 0")
    processing = value.get("processing_ids")
    if isinstance(processing, list) and (
        not processing or any(p not in PROCESSING_IDS for p in processing)
    ):
        errors.append(
            f"hl7.processing_ids: a non-empty list of {', '.join(PROCESSING_IDS)} (HL7 table 0103)"
        )
    _check_zone(value, "hl7", errors)
    senders = value.get("senders", [])
    if isinstance(senders, list):
        seen: dict[str, int] = {}
        for i, sender in enumerate(senders):
            path = f"hl7.senders[{i}]"
            if not isinstance(sender, Mapping):
                errors.append(f"{path}: expected a table, got {type(sender).__name__}")
                continue
            _check_table(sender, path, _SENDER_KEYS, errors)
            facility = sender.get("facility")
            if not isinstance(facility, str) or not facility.strip():
                errors.append(f"{path}.facility: required (the MSH-4 namespace id)")
            elif facility.strip() in seen:
                errors.append(
                    f"{path}.facility: duplicate facility {facility.strip()!r} "
                    f"(also hl7.senders[{seen[facility.strip()]}])"
                )
            else:
                seen[facility.strip()] = i
            agency = sender.get("agency")
            if not isinstance(agency, str) or not agency:
                errors.append(f"{path}.agency: required (the agency that owns its messages)")
            elif agency not in agencies:
                errors.append(f"{path}.agency: unknown agency {agency!r}")
            _check_zone(sender, path, errors)
            mode = sender.get("validation", "none")
            if isinstance(mode, str) and mode not in VALIDATION_MODES:
                modes = ", ".join(VALIDATION_MODES)
                errors.append(f"{path}.validation: unknown mode {mode!r} (one of {modes})")
    tls = value.get("tls")
    if isinstance(tls, Mapping):
        _check_table(tls, "hl7.tls", _TLS_KEYS, errors)
        for key in ("cert_file", "key_file"):
            if not tls.get(key):
                errors.append(f"hl7.tls.{key}: required when [hl7.tls] is present")
    return errors


def _check_zone(table: Mapping[str, Any], path: str, errors: list[str]) -> None:
    name = table.get("timezone")
    if isinstance(name, str) and time_zone(name) is None:
        errors.append(
            f"{path}.timezone: unknown time zone {name!r} (an IANA name such as "
            "'America/Los_Angeles')"
        )


def load_settings(section: Mapping[str, Any], resolve: Callable[[str], Path] = Path) -> Hl7Settings:
    """Typed settings from a validated ``[hl7]`` section; paths resolved with ``resolve``."""
    senders = {
        str(s["facility"]).strip(): SenderConfig(
            facility=str(s["facility"]).strip(),
            agency=str(s["agency"]),
            validation=str(s.get("validation", "none")),
            zone=time_zone(str(s["timezone"])) if s.get("timezone") else None,
        )
        for s in section.get("senders", [])
    }
    tls_raw = section.get("tls")
    tls = None
    if isinstance(tls_raw, Mapping) and tls_raw:
        ca = tls_raw.get("client_ca_file")
        tls = TlsSettings(
            cert_file=resolve(str(tls_raw["cert_file"])),
            key_file=resolve(str(tls_raw["key_file"])),
            client_ca_file=resolve(str(ca)) if ca else None,
        )
    return Hl7Settings(
        host=str(section.get("host", "127.0.0.1")),
        port=int(section.get("port", DEFAULT_PORT)),
        max_frame_bytes=int(section.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES)),
        idle_timeout_seconds=float(section.get("idle_timeout_seconds", 30.0)),
        frame_timeout_seconds=float(section.get("frame_timeout_seconds", 60.0)),
        stop_grace_seconds=float(section.get("stop_grace_seconds", 5.0)),
        processing_ids=frozenset(section.get("processing_ids", ["P"])),
        zone=time_zone(str(section["timezone"])) if section.get("timezone") else None,
        senders=senders,
        tls=tls,
    )
