"""Canonical records: the one shape every connector parses into and renders from.

Records are immutable values. Each carries a :class:`RecordMeta` (kind, source key, owner
agency, provenance, version) and a consent category for every data field, so the consent gate
can release or withhold a record field by field without knowing where it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from hub.core.partial_dates import DAY, iso_text


@dataclass(frozen=True, slots=True)
class SourceKey:
    """Where a record came from and its id there: ids are unique only within one source.

    ``source`` names the source namespace, e.g. ``hmis:<ImplementationID>`` for a HUD CSV
    export, ``hl7:<facility>`` for a hospital feed, ``fhir:<agency>`` for a FHIR partner.
    """

    source: str
    id: str

    def __str__(self) -> str:
        return f"{self.source}/{self.id}"


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a record reached the hub: the sending system, when, and the raw payload's hash."""

    source_system: str
    received_at: datetime
    payload_hash: str


def payload_hash(raw: bytes | str) -> str:
    """SHA-256 hex digest of a raw inbound payload (kept as provenance, never the payload)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """Envelope of every canonical record.

    ``version`` orders versions of the same record: the source's ``DateUpdated`` as an ISO
    string (``2025-01-31T10:00:00``) or, for sources without one, a zero-padded received
    sequence. A version never compares lower than the one it replaces.
    ``sensitivity`` holds extra consent categories that apply to the whole record (an HL7 ARV
    segment, data from a Part 2 program). ``restricted`` marks data that may never leave its
    owner (a victim service provider's record).
    ``as_of`` is the ISO date the record's facts describe (a HUD row's ``InformationDate``)
    when the source gives one, else ``""`` (unknown). It orders the facts its ``flags``
    carry: of two words on the same client, the one with the later ``as_of`` is the current
    one, whatever order the records arrive in (``version`` orders versions of one record,
    not facts across records). Read at intake only: the store keeps it with the fact it
    orders (``dv_words``), not on the record row, so a record read back from the store has
    ``""``.
    """

    kind: str
    key: SourceKey
    owner: str
    provenance: Provenance
    version: str
    deleted: bool = False
    sensitivity: frozenset[str] = frozenset()
    restricted: bool = False
    flags: frozenset[str] = frozenset()
    as_of: str = ""


FLAG_FLEEING_DV = "fleeing_dv"
"""A record flag: the client is currently fleeing domestic violence (as of this record)."""
FLAG_NOT_FLEEING_DV = "not_fleeing_dv"
"""A record flag: the client is, as of this record, not fleeing domestic violence."""
FLAG_DV_UNSAID = "dv_unsaid"
"""A record flag: the record is one that may say whether its client is fleeing domestic
violence, and says nothing definite (blank, the client does not know or refused, not
collected): whatever an earlier version of it said no longer counts."""


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier of a person or thing, with the system (assigning authority) that issued it.

    ``type`` follows HL7 table 0203 where known: ``MR`` medical record number, ``SS`` SSN,
    ``PI`` patient internal id (HMIS PersonalID).
    """

    system: str
    value: str
    type: str = ""


@dataclass(frozen=True, slots=True)
class HumanName:
    """One name of a person; a person may have several (legal, alias, maiden)."""

    family: str = ""
    given: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""
    use: str = ""


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address; every field is location data (withheld for a client fleeing DV)."""

    lines: tuple[str, ...] = ()
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    use: str = ""


@dataclass(frozen=True, slots=True)
class ContactPoint:
    """A phone number or e-mail address."""

    system: str
    value: str
    use: str = ""


class Record:
    """Behaviour shared by the canonical record dataclasses (a mixin, not a dataclass).

    Subclasses declare ``KIND``, a category for every data field in ``FIELD_CATEGORIES`` and
    the fields that reveal where a person is in ``LOCATION_FIELDS``.
    """

    __slots__ = ()
    KIND: ClassVar[str]
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]]
    LOCATION_FIELDS: ClassVar[frozenset[str]] = frozenset()

    meta: RecordMeta

    def field_categories(self) -> Mapping[str, str]:
        """The consent category of each data field of this record."""
        return self.FIELD_CATEGORIES

    def location_fields(self) -> frozenset[str]:
        """Fields that reveal where the person lives or stays."""
        return self.LOCATION_FIELDS

    def __repr__(self) -> str:
        # Never print field values: they are client data. Ids only.
        return f"<{type(self).__name__} {self.meta.key} owner={self.meta.owner}>"


@dataclass(frozen=True, slots=True, repr=False)
class Client(Record):
    """A person as one source knows them.

    Coded fields use one vocabulary whatever the source, so a record read from one
    connector is written correctly by another: ``sex`` is ``female``, ``male``, ``other``
    or ``unknown``; ``race`` and ``ethnicity`` are CDC Race & Ethnicity codes (``2106-3``,
    ``2135-2``); ``gender`` HUD's words (``woman``, ``non-binary`` …); ``deceased`` is
    ``true``, ``false`` or an ISO date(-time).

    A birth date known only to the year or the month (FHIR ``1980``, HL7 ``198005``) is
    ``birth_date`` = the first day of that period and ``birth_date_precision`` = ``"year"``
    or ``"month"`` (:mod:`hub.core.partial_dates`); the default ``""`` means the day is known.
    That first day was never reported: use :meth:`birth_date_text`, not ``birth_date``, to
    say when someone was born.
    """

    KIND: ClassVar[str] = "client"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "identifiers": "identity",
        "names": "identity",
        "birth_date": "identity",
        "ssn": "identity",
        "telecom": "identity",
        "addresses": "identity",
        "name_quality": "identity",
        "ssn_quality": "identity",
        "birth_date_quality": "identity",
        "birth_date_precision": "identity",
        "sex": "demographics",
        "gender": "demographics",
        "race": "demographics",
        "ethnicity": "demographics",
        "veteran_status": "demographics",
        "deceased": "health",
    }
    LOCATION_FIELDS: ClassVar[frozenset[str]] = frozenset({"addresses"})

    meta: RecordMeta
    identifiers: tuple[Identifier, ...] = ()
    names: tuple[HumanName, ...] = ()
    birth_date: date | None = None
    ssn: str | None = None
    telecom: tuple[ContactPoint, ...] = ()
    addresses: tuple[Address, ...] = ()
    name_quality: str = ""
    ssn_quality: str = ""
    birth_date_quality: str = ""
    sex: str = ""
    gender: tuple[str, ...] = ()
    race: tuple[str, ...] = ()
    ethnicity: str = ""
    veteran_status: str = ""
    deceased: str = ""
    birth_date_precision: str = DAY

    def birth_date_text(self) -> str | None:
        """The birth date as ISO 8601 at the precision known (``1980``, ``1980-05``,
        ``1980-05-17``); None when no birth date is known."""
        if self.birth_date is None:
            return None
        return iso_text(self.birth_date, self.birth_date_precision)


@dataclass(frozen=True, slots=True, repr=False)
class Enrollment(Record):
    """A stay in a project: entry, household, and the project that owns it."""

    KIND: ClassVar[str] = "enrollment"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "client": "housing",
        "project_id": "housing",
        "household_id": "housing",
        "entry_date": "housing",
        "relationship_to_hoh": "housing",
        "living_situation": "housing",
        "disabling_condition": "health",
        "move_in_date": "housing",
    }

    meta: RecordMeta
    client: SourceKey | None = None
    project_id: str = ""
    household_id: str = ""
    entry_date: date | None = None
    relationship_to_hoh: str = ""
    living_situation: str = ""
    disabling_condition: str = ""
    move_in_date: date | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Exit(Record):
    """The end of an enrollment and where the person went."""

    KIND: ClassVar[str] = "exit"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "client": "housing",
        "enrollment": "housing",
        "exit_date": "housing",
        "destination": "housing",
    }

    meta: RecordMeta
    client: SourceKey | None = None
    enrollment: SourceKey | None = None
    exit_date: date | None = None
    destination: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class Service(Record):
    """A service provided to a person during an enrollment (a bed night, a meal, outreach)."""

    KIND: ClassVar[str] = "service"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "client": "services",
        "enrollment": "services",
        "date_provided": "services",
        "record_type": "services",
        "type_provided": "services",
    }

    meta: RecordMeta
    client: SourceKey | None = None
    enrollment: SourceKey | None = None
    date_provided: date | None = None
    record_type: str = ""
    type_provided: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class Referral(Record):
    """A referral of a person from one organisation to another (REF^I12, Gravity Task)."""

    KIND: ClassVar[str] = "referral"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "client": "services",
        "status": "services",
        "priority": "services",
        "requester": "services",
        "performer": "services",
        "service_codes": "services",
        "reason": "health",
        "diagnoses": "health",
        "notes": "services",
        "authored_on": "services",
        "consent_ref": "services",
        "outputs": "services",
    }

    meta: RecordMeta
    client: SourceKey | None = None
    status: str = ""
    priority: str = ""
    requester: str = ""
    performer: str = ""
    service_codes: tuple[str, ...] = ()
    reason: str = ""
    diagnoses: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    authored_on: datetime | None = None
    consent_ref: str = ""
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class Encounter(Record):
    """A health encounter: an ADT admit, discharge, registration or update."""

    KIND: ClassVar[str] = "encounter"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {
        "client": "health",
        "event": "health",
        "patient_class": "health",
        "location": "health",
        "visit_number": "health",
        "admit_time": "health",
        "discharge_time": "health",
        "facility": "health",
        "diagnoses": "health",
    }

    meta: RecordMeta
    client: SourceKey | None = None
    event: str = ""
    patient_class: str = ""
    location: str = ""
    visit_number: str = ""
    admit_time: datetime | None = None
    discharge_time: datetime | None = None
    facility: str = ""
    diagnoses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class SourceRow(Record):
    """A source row with no richer canonical type (a HUD CSV IncomeBenefits row, a Project).

    ``fields`` keeps the row's columns as strings; ``categories`` gives each column's consent
    category (shared per table, so it costs nothing per row). ``client`` links the row to the
    person it is about, when it is about one; ``locations`` names the columns that reveal
    where the person is (withheld for a client fleeing domestic violence).
    """

    KIND: ClassVar[str] = "row"
    FIELD_CATEGORIES: ClassVar[Mapping[str, str]] = {}

    meta: RecordMeta
    fields: Mapping[str, str] = field(default_factory=dict)
    categories: Mapping[str, str] = field(default_factory=dict)
    client: SourceKey | None = None
    locations: frozenset[str] = frozenset()

    def field_categories(self) -> Mapping[str, str]:
        """Per-column categories of this row's table."""
        return self.categories

    def location_fields(self) -> frozenset[str]:
        """Columns of this row's table that reveal where the person is or stays."""
        return self.locations


RECORD_TYPES: dict[str, type[Record]] = {
    cls.KIND: cls for cls in (Client, Enrollment, Exit, Service, Referral, Encounter)
}


def record_client(record: Record) -> SourceKey | None:
    """The source key of the client a record is about (itself, for a Client)."""
    if isinstance(record, Client):
        return record.meta.key
    client: Any = getattr(record, "client", None)
    return client if isinstance(client, SourceKey) else None
