"""One inbound message, from frame bytes to the ACK bytes to write back.

The order of checks: readable MSH → not an ACK (never acknowledged) → supported version →
supported type and event → processing id (MSH-11: ``[hl7] processing_ids``, production only
by default) → listed sender → strict validation (when configured) → mapping →
``engine.ingest`` (durable commit) → ACK. Every refusal is answered with the right code and
an ERR segment; nothing raised here reaches the connection, so one bad message never costs
the connection its other messages. Logs carry control ids, facilities and codes only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from hub.plugin_api import InboundMessage, IngestResult, Record, payload_hash
from plugins.hl7.ack import AckError, Outcome, response_bytes
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.mapping import MappingError, SenderContext, map_message, message_event
from plugins.hl7.mapping import structure_of as expected_structure
from plugins.hl7.parser import (
    SUPPORTED_VERSIONS,
    Hl7ParseError,
    Message,
    parse_header,
    parse_message,
)
from plugins.hl7.settings import Hl7Settings, SenderConfig
from plugins.hl7.strict import validate_strict

log = logging.getLogger("hub.hl7")

UNMAPPED_CERTIFICATE = ""
"""``peer_agency`` of a connection whose verified client certificate no
``[[auth.certificates]]`` entry maps, while some are configured: its messages are refused
(AR, ``CERTIFICATE_NOT_MAPPED``), since the sender it claims in MSH-4 is then vouched for by
nothing."""


class IngestPort(Protocol):
    """What the intake needs of the engine: ``ingest`` with message de-duplication."""

    async def ingest(
        self,
        records: Sequence[Record],
        *,
        message: InboundMessage | None = None,
        response: bytes = b"",
    ) -> IngestResult:
        """Store records durably; see :meth:`hub.core.engine.Engine.ingest`."""
        ...


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class Rejected(Exception):
    """A message refused before commit: the outcome, the error and a metric reason."""

    def __init__(self, outcome: Outcome, error: AckError, reason: str) -> None:
        super().__init__(error.text)
        self.outcome = outcome
        self.error = error
        self.reason = reason


class Hl7Intake:
    """Turns frames into records and ACKs, over an engine (``ingest``) and the settings."""

    def __init__(
        self,
        engine: IngestPort,
        settings: Hl7Settings,
        *,
        directory: AgencyDirectory | None = None,
        metrics: Any = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.directory = directory or AgencyDirectory()
        self.metrics = metrics
        self.clock = clock

    # ---- metrics ---------------------------------------------------------------------------

    def count_error(self, reason: str) -> None:
        """Count a refused message or a connection problem (labels are reasons, never data)."""
        if self.metrics is not None:
            self.metrics.errors.labels("hl7", reason).inc()

    def _count_duplicates(self, records: Sequence[Record]) -> None:
        """Records of a re-sent message (the engine counts stored outcomes itself)."""
        if self.metrics is None:
            return
        for record in records:
            self.metrics.records_in.labels(record.meta.kind, "duplicate").inc()

    # ---- the steps -------------------------------------------------------------------------

    def _check(self, message: Message) -> tuple[SenderConfig, str]:
        """Version, type and sender checks; returns (sender, structure) or raises Rejected."""
        header = message.header
        if header.version not in SUPPORTED_VERSIONS:
            raise Rejected(
                "unsupported",
                AckError(
                    "203",
                    f"unsupported HL7 version {header.version or '(empty)'}; "
                    "the hub reads 2.3 to 2.8",
                    "MSH",
                    field=12,
                ),
                "unsupported_version",
            )
        event = message_event(message)
        structure = expected_structure(header.message_type, event)
        if structure is None:
            name = header.message_type or "(empty)"
            if event:
                name += f" event {event}"
            known_type = header.message_type in ("ADT", "REF")
            raise Rejected(
                "unsupported",
                AckError(
                    "201" if known_type else "200",
                    f"unsupported message type {name}; the hub takes ADT events A01, A03, A04, "
                    "A08, A28, A31 and REF event I12",
                    "MSH",
                    field=9,
                ),
                "unsupported_type",
            )
        processing = header.processing_id.upper()
        if processing and processing not in self.settings.processing_ids:
            # A sender's test or debug message must not become a real client's record.
            raise Rejected(
                "unsupported",
                AckError(
                    "202",
                    f"processing id {processing[:1] or '?'} is not taken here "
                    f"(this hub takes {', '.join(sorted(self.settings.processing_ids))})",
                    "MSH",
                    field=11,
                ),
                "unsupported_processing_id",
            )
        sender = self.settings.sender(header.sending_facility)
        if sender is None:
            raise Rejected(
                "unsupported",
                AckError(
                    "207",
                    "sending facility (MSH-4) is not a configured sender",
                    "MSH",
                    field=4,
                    app_code="UNKNOWN_SENDER",
                ),
                "unknown_sender",
            )
        return sender, structure

    async def _validate(self, message: Message, structure: str) -> None:
        finding = await asyncio.to_thread(validate_strict, message.text, structure)
        if finding is not None:
            raise Rejected(
                "reject", AckError(finding.code, finding.text, app_code="VALIDATION"), "validation"
            )

    def _map(
        self, message: Message, sender: SenderConfig, raw_hash: str, received: datetime
    ) -> list[Record]:
        context = SenderContext(
            facility=message.header.sending_facility,
            owner=sender.agency,
            received_at=received,
            payload_hash=raw_hash,
            directory=self.directory,
            zone=self.settings.zone_of(sender),
        )
        try:
            return map_message(message, context)
        except MappingError as exc:
            raise Rejected(
                "reject", AckError(exc.code, exc.reason, exc.segment, field=exc.field), "mapping"
            ) from None

    # ---- the whole message -----------------------------------------------------------------

    async def handle(self, frame: bytes, *, peer_agency: str | None = None) -> bytes:
        """The bytes to answer a frame with (possibly none); never raises.

        ``peer_agency`` is the agency the connection's client certificate is mapped to (mutual
        TLS): a message whose sender (MSH-4) belongs to another agency is rejected, and so is
        every message of a connection whose certificate no ``[[auth.certificates]]`` entry
        maps while some are configured (:data:`UNMAPPED_CERTIFICATE`).
        """
        started = time.perf_counter()
        try:
            return await self._handle(frame, peer_agency)
        except Exception as exc:  # a bug must cost one message, not the connection
            log.error("hl7 message failed unexpectedly", extra={"error_type": type(exc).__name__})
            self.count_error("internal")
            error = AckError("207", "internal error while processing the message")
            return response_bytes(parse_header(frame), "error", error)
        finally:
            if self.metrics is not None:
                self.metrics.intake_seconds.labels("hl7").observe(time.perf_counter() - started)

    async def _handle(self, frame: bytes, peer_agency: str | None = None) -> bytes:
        received = self.clock()
        try:
            message = parse_message(frame)
        except Hl7ParseError as exc:
            header = exc.header or parse_header(frame)
            log.warning(
                "hl7 message unreadable",
                extra={
                    "control_id": header.control_id if header else "",
                    "facility": header.sending_facility if header else "",
                    "reason": exc.reason,
                },
            )
            self.count_error("parse")
            if header is not None and header.message_type == "ACK":
                return b""
            error = AckError(exc.code, exc.reason, exc.segment, exc.sequence, exc.field)
            return response_bytes(header, "reject", error)
        header = message.header
        if header.message_type == "ACK" or message.first("MSA") is not None:
            log.info(
                "hl7 acknowledgement received; not acknowledged",
                extra={"control_id": header.control_id, "facility": header.sending_facility},
            )
            return b""
        try:
            sender, structure = self._check(message)
            if peer_agency == UNMAPPED_CERTIFICATE:
                raise Rejected(
                    "unsupported",
                    AckError(
                        "207",
                        "the client certificate is not mapped to an agency",
                        "MSH",
                        field=4,
                        app_code="CERTIFICATE_NOT_MAPPED",
                    ),
                    "certificate_not_mapped",
                )
            if peer_agency is not None and sender.agency != peer_agency:
                raise Rejected(
                    "unsupported",
                    AckError(
                        "207",
                        "the client certificate belongs to another agency than the sender (MSH-4)",
                        "MSH",
                        field=4,
                        app_code="CERTIFICATE_MISMATCH",
                    ),
                    "certificate_mismatch",
                )
            if sender.strict:
                await self._validate(message, structure)
            text_hash = payload_hash(message.text)
            records = self._map(message, sender, payload_hash(frame), received)
        except Rejected as exc:
            log.warning(
                "hl7 message rejected",
                extra={
                    "control_id": header.control_id,
                    "facility": header.sending_facility,
                    "reason": exc.reason,
                    "hl7_error": exc.error.code,
                },
            )
            self.count_error(exc.reason)
            return response_bytes(header, exc.outcome, exc.error)
        return await self._commit(message, records, text_hash)

    async def _commit(self, message: Message, records: list[Record], text_hash: str) -> bytes:
        header = message.header
        response = response_bytes(header, "accept")
        inbound = InboundMessage(
            sender=header.sender, control_id=header.control_id, content_hash=text_hash
        )
        try:
            result = await self.engine.ingest(records, message=inbound, response=response)
        except Exception as exc:
            log.error(
                "hl7 message not stored; answered with an error so the sender retries",
                extra={
                    "control_id": header.control_id,
                    "facility": header.sending_facility,
                    "error_type": type(exc).__name__,
                },
            )
            self.count_error("store")
            error = AckError("207", "the message could not be stored; send it again later")
            return response_bytes(header, "error", error)
        if result.duplicate:
            log.info(
                "hl7 message re-sent; answered as before",
                extra={"control_id": header.control_id, "facility": header.sending_facility},
            )
            self._count_duplicates(records)
            return result.response
        return response  # the engine counts records_in by outcome
