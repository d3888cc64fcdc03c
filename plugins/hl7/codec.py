"""The HL7 v2 codec: Client, Encounter and Referral records to and from a batch of messages.

Encoding renders each record with :mod:`plugins.hl7.render` (``ADT^A31`` for a client,
``ADT^A08`` for an encounter, ``REF^I12`` for a referral) and adds ARV segments for the
record's restrictions (HL7 table 0717 / v3 codes: ``SUD``, ``HIV``, ``BH``, ``DV``, and ``R``
for data that may not leave its owner), so the receiving side keeps them. MSH-7 carries the
record's version and MSH-10 a control id derived from the record's key and version.

Decoding splits the bytes into messages (each starts with ``MSH``), parses each with
:mod:`plugins.hl7.parser` and maps it with :mod:`plugins.hl7.mapping`; every record is keyed
in the caller's ``source`` and owned by the caller's ``owner``. An encounter or referral
message also yields the Client its PID names (with the identifiers PID carries).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from hub.plugin_api import CodecError, Record, SourceKey, payload_hash
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.mapping import MappingError, SenderContext, map_message, message_event
from plugins.hl7.mapping import structure_of as expected_structure
from plugins.hl7.parser import Hl7ParseError, decode_bytes, normalise, parse_message
from plugins.hl7.render import Envelope, RenderError, render_record

SENSITIVITY_CODES: dict[str, str] = {
    "substance_use": "SUD",
    "hiv": "HIV",
    "behavioral_health": "BH",
    "dv": "DV",
}
"""Consent category → the ARV-3 code :mod:`plugins.hl7.arv` reads back as that category."""
RESTRICTED_CODE = "R"
"""ARV-3 for a record that may never leave its owner (v3 Confidentiality: restricted)."""

_CLIENT = frozenset(
    {
        "key",
        "version",
        "identifiers",
        "names",
        "birth_date",
        "birth_date_precision",
        "ssn",
        "telecom",
        "addresses",
        "sex",
        "race",
        "ethnicity",
        "deceased",
        "restricted",
        "sensitivity",
    }
)
_ENCOUNTER = frozenset(
    {
        "key",
        "version",
        "client",
        "patient_class",
        "location",
        "visit_number",
        "admit_time",
        "discharge_time",
        "facility",
        "diagnoses",
        "restricted",
        "sensitivity",
    }
)
_REFERRAL = frozenset(
    {
        "key",
        "version",
        "client",
        "status",
        "priority",
        "requester",
        "performer",
        "service_codes",
        "reason",
        "diagnoses",
        "notes",
        "authored_on",
        "restricted",
        "sensitivity",
    }
)


def _stamp(version: str) -> datetime | None:
    """A record version that is an ISO date-time, as an aware UTC datetime (for MSH-7)."""
    try:
        when = datetime.fromisoformat(version)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def control_id(record: Record) -> str:
    """MSH-10 for a record: 20 hex characters of a hash of its kind, key and version."""
    m = record.meta
    raw = f"{m.kind}|{m.key.source}|{m.key.id}|{m.version}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


def arv_segments(record: Record) -> list[str]:
    """ARV segments for the record's sensitivity and restriction (empty when it has none)."""
    codes = sorted(SENSITIVITY_CODES[c] for c in record.meta.sensitivity if c in SENSITIVITY_CODES)
    if record.meta.restricted:
        codes.append(RESTRICTED_CODE)
    return [f"ARV|{i}|A|{code}" for i, code in enumerate(codes, start=1)]


def with_arv(text: str, record: Record) -> str:
    """A rendered message with the record's ARVs inserted: after PV1 for an encounter (visit
    level), else after PID, so the receiver keeps the record's sensitivity."""
    arvs = arv_segments(record)
    if not arvs:
        return text
    segments = text.rstrip("\r").split("\r")
    anchor = "PV1" if record.meta.kind == "encounter" else "PID"
    at = next((i for i, s in enumerate(segments) if s.startswith(anchor)), len(segments) - 1)
    segments[at + 1 : at + 1] = arvs
    return "\r".join(segments) + "\r"


class Hl7Codec:
    """Client, Encounter and Referral records as HL7 v2 messages (codec ``hl7v2``)."""

    name = "hl7v2"
    kinds = frozenset({"client", "encounter", "referral"})
    carries: ClassVar[dict[str, frozenset[str]]] = {
        "client": _CLIENT,
        "encounter": _ENCOUNTER,
        "referral": _REFERRAL,
    }
    """The ADT event of an encounter travels as A08 (an update); quality codes, gender,
    veteran status and referral consent/outputs have no HL7 field here."""

    def __init__(self, version: str = "2.5.1", sending_facility: str = "CIEHUB") -> None:
        self.version = version
        self.sending_facility = sending_facility

    def encode(self, records: Sequence[Record]) -> bytes:
        """One message per record, each segment ending in ``\\r``; UTF-8.

        Raises :class:`CodecError` for a record HL7 v2 cannot express (its kind, or an
        encounter or referral without a client).
        """
        out: list[str] = []
        for index, record in enumerate(records):
            env = Envelope(
                control_id=control_id(record),
                sending_facility=self.sending_facility,
                version=self.version,
                timestamp=_stamp(record.meta.version),
            )
            try:
                text = render_record(record, env)
            except RenderError as exc:
                raise CodecError(str(exc), location=f"record {index + 1}") from None
            out.append(with_arv(text, record))
        return "".join(out).encode("utf-8")

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The records of every message in ``data`` (see the module docstring)."""
        text = normalise(decode_bytes(data))
        records: list[Record] = []
        received = datetime.now(UTC)
        for number, message_text in enumerate(split_messages(text), start=1):
            records.extend(self._one(message_text, number, source, owner, received))
        return records

    def _one(
        self, text: str, number: int, source: str, owner: str, received: datetime
    ) -> list[Record]:
        where = f"message {number}"
        try:
            message = parse_message(text)
        except Hl7ParseError as exc:
            spot = f" {exc.segment}-{exc.field}" if exc.segment and exc.field else ""
            spot = spot or (f" {exc.segment}" if exc.segment else "")
            raise CodecError(exc.reason, location=where + spot) from None
        header = message.header
        event = message_event(message)
        if expected_structure(header.message_type, event) is None:
            raise CodecError(
                "not an ADT or REF^I12 message the hub reads", location=f"{where} MSH-9"
            )
        sender = SenderContext(
            facility=header.sending_facility or "unknown",
            owner=owner,
            received_at=received,
            payload_hash=payload_hash(text),
            directory=AgencyDirectory(),
        )
        try:
            mapped = map_message(message, sender)
        except MappingError as exc:
            spot = f"{exc.segment}-{exc.field}" if exc.field else exc.segment
            raise CodecError(exc.reason, location=f"{where} {spot}") from None
        return [_rekeyed(r, source) for r in mapped]


def split_messages(text: str) -> list[str]:
    """Normalised text (segments end in ``\\r``) cut into messages at each MSH segment.

    Text before the first MSH is refused: it cannot belong to a message.
    """
    messages: list[list[str]] = []
    for number, line in enumerate(text.split("\r"), start=1):
        if not line.strip():
            continue
        if line.startswith("MSH"):
            messages.append([line])
        elif not messages:
            raise CodecError("data before the first MSH segment", location=f"line {number}")
        else:
            messages[-1].append(line)
    if not messages:
        raise CodecError("no MSH segment: not HL7 v2", location="line 1")
    return ["\r".join(m) + "\r" for m in messages]


def _rekeyed(record: Record, source: str) -> Record:
    """The record keyed in ``source`` (and its client reference too)."""
    meta = dataclasses.replace(record.meta, key=SourceKey(source, record.meta.key.id))
    changes: dict[str, object] = {"meta": meta}
    client = getattr(record, "client", None)
    if isinstance(client, SourceKey):
        changes["client"] = SourceKey(source, client.id)
    return dataclasses.replace(record, **changes)  # type: ignore[type-var]


CODECS = (Hl7Codec,)
"""The codec classes of this plugin (for ``hub_codecs``)."""
