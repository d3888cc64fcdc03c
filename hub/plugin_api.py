"""The public plugin API: what a connector plugin imports from the hub.

A plugin imports from here (and from ``hub.core`` for canonical records) and from nowhere
else in the hub; plugins never import each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hub.config import TlsConfig
from hub.core.engine import Engine, InboundMessage, IngestResult
from hub.core.ports import Delivery, DeliveryOutcome, Sink
from hub.core.records import (
    RECORD_TYPES,
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
from hub.core.serialize import record_from_payload, record_payload
from hub.hookspecs import hookimpl
from hub.sinks.signing import (
    SigningError,
    check_url,
    outcome_for_status,
    parse_retry_after,
    post_signed,
    secrets_from_env,
    signature_header,
)
from hub.tls import certificate_mapping, server_context


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


class CodecError(ValueError):
    """Input a codec cannot read: ``location`` names where (file, row, field, segment).

    The message says what is wrong and where, never the value found there (it is client
    data): ``CodecError("not a date (YYYY-MM-DD)", location="Client.csv row 3 column DOB")``
    reads ``Client.csv row 3 column DOB: not a date (YYYY-MM-DD)``.
    """

    def __init__(self, reason: str, *, location: str) -> None:
        super().__init__(f"{location}: {reason}" if location else reason)
        self.reason = reason
        self.location = location


@runtime_checkable
class Codec(Protocol):
    """Canonical records to and from one wire format (HL7 v2, FHIR JSON, a CSV layout …).

    ``kinds`` are the record kinds the codec handles. ``decode`` keys every record it reads
    in ``source`` and makes ``owner`` its owner; it raises :class:`CodecError` for input it
    cannot read (never another exception). A codec may also declare ``carries``: for each
    kind, the fields the format keeps (``{"client": frozenset({"names", "birth_date"})}``;
    the pseudo-fields ``key``, ``version``, ``restricted`` and ``sensitivity`` stand for the
    record's envelope). The contract test kit compares those after a round trip.
    """

    name: str
    kinds: frozenset[str]

    def encode(self, records: Sequence[Record]) -> bytes:
        """The records in this format (one document, file or message batch)."""
        ...

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The records ``data`` holds, keyed in ``source`` and owned by ``owner``."""
        ...


CarriedFields = Mapping[str, frozenset[str]]
"""What a codec's ``carries`` declares: record kind → fields the format keeps."""


__all__ = [
    "RECORD_TYPES",
    "Address",
    "CarriedFields",
    "Client",
    "Codec",
    "CodecError",
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
    "certificate_mapping",
    "check_url",
    "hookimpl",
    "outcome_for_status",
    "parse_retry_after",
    "payload_hash",
    "post_signed",
    "record_from_payload",
    "record_payload",
    "secrets_from_env",
    "server_context",
    "signature_header",
]
