"""The public plugin API: what a connector plugin imports from the hub.

A plugin imports from here (and from ``hub.core`` for canonical records) and from nowhere
else in the hub; plugins never import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from hub.config import TlsConfig
from hub.core.engine import Engine, InboundMessage, IngestResult
from hub.core.ports import Delivery, DeliveryOutcome, Sink
from hub.core.records import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    Enrollment,
    Exit,
    HumanName,
    Identifier,
    Provenance,
    Record,
    RecordMeta,
    Referral,
    SourceKey,
    SourceRow,
    payload_hash,
)
from hub.core.records import (
    Service as ServiceRecord,
)
from hub.hookspecs import hookimpl
from hub.sinks.signing import (
    SigningError,
    check_url,
    outcome_for_status,
    post_signed,
    secrets_from_env,
    signature_header,
)
from hub.tls import server_context


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """One connector of a plugin, as ``hub plugins list`` shows it."""

    name: str
    direction: str
    formats: tuple[str, ...] = ()
    summary: str = ""


class Service(Protocol):
    """A long-running part of ``hub serve`` (a listener, a watcher)."""

    name: str

    async def start(self) -> None:
        """Start serving; return once ready (listening)."""
        ...

    async def stop(self) -> None:
        """Stop accepting work, settle in-flight work, release resources."""
        ...


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job for the scheduler: ``cron`` (crontab text) or ``interval_seconds``."""

    name: str
    func: Callable[[], Awaitable[None]]
    cron: str | None = None
    interval_seconds: float | None = None
    options: dict[str, object] = field(default_factory=dict)


__all__ = [
    "Address",
    "Client",
    "ConnectorInfo",
    "ContactPoint",
    "Delivery",
    "DeliveryOutcome",
    "Encounter",
    "Engine",
    "Enrollment",
    "Exit",
    "HumanName",
    "Identifier",
    "InboundMessage",
    "IngestResult",
    "Provenance",
    "Record",
    "RecordMeta",
    "Referral",
    "ScheduledJob",
    "Service",
    "ServiceRecord",
    "SigningError",
    "Sink",
    "SourceKey",
    "SourceRow",
    "TlsConfig",
    "check_url",
    "hookimpl",
    "outcome_for_status",
    "payload_hash",
    "post_signed",
    "secrets_from_env",
    "server_context",
    "signature_header",
]
