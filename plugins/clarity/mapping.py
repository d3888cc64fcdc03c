"""HUD CSV rows → canonical records (Client, Enrollment, Exit, Service, SourceRow).

Every record is keyed on ``SourceKey(f"hmis:{ImplementationID}", <the file's id>)`` and
versioned by its ``DateUpdated``. Typed records keep the row's columns for faithful
re-export (see :mod:`plugins.clarity.records`); other files become ``SourceRow`` records of
kind ``hmis.<File>`` whose ``fields`` are the row's columns and whose ``categories`` are a
shared per-file mapping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from hub.core.records import FLAG_FLEEING_DV, FLAG_NOT_FLEEING_DV
from hub.plugin_api import HumanName, Identifier, Provenance, RecordMeta, SourceKey, SourceRow
from plugins.clarity.records import HmisClient, HmisEnrollment, HmisExit, HmisService
from plugins.clarity.spec import (
    FY2024,
    FY2026,
    LOCATION_COLUMNS,
    SENSITIVE_DISABILITY,
    SENSITIVE_RECORD_TYPES,
    column_names,
    disability_categories,
    file_categories,
)

RACE_CODES: Mapping[str, str] = {
    "AmIndAKNative": "1002-5",
    "Asian": "2028-9",
    "BlackAfAmerican": "2054-5",
    "NativeHIPacific": "2076-8",
    "White": "2106-3",
    "MidEastNAfrican": "2118-8",
}
"""HUD race columns → CDC Race & Ethnicity codes (the canonical ``Client.race`` codes)."""

HISPANIC = "2135-2"
NOT_HISPANIC = "2186-5"
"""CDC ethnicity codes for ``Client.ethnicity`` (from HispanicLatinaeo / HispanicLatinao)."""

GENDER_CODES: Mapping[str, str] = {
    "Woman": "woman",
    "Man": "man",
    "NonBinary": "non-binary",
    "CulturallySpecific": "culturally-specific",
    "Transgender": "transgender",
    "Questioning": "questioning",
    "DifferentIdentity": "different-identity",
}
"""FY2024 gender columns → canonical ``Client.gender`` codes (FY2026 has none)."""

SEX_CODES: Mapping[str, str] = {"0": "female", "1": "male"}
"""FY2026 ``Sex`` (list 4.21) → canonical ``Client.sex``; 8/9/99 leave it blank."""

HASHED_STATUSES = frozenset({"2", "3", "4"})
"""HashStatus values under which names and SSN are not clear text."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What every record of one import shares."""

    source: str
    version: str
    received_at: datetime
    source_system: str
    hash_status: str


def raw_hash(values: Sequence[str]) -> str:
    """SHA-256 of a row as read (kept as provenance)."""
    return hashlib.sha256("\x1f".join(values).encode("utf-8", "surrogatepass")).hexdigest()


def make_meta(
    bc: BuildContext,
    kind: str,
    rid: str,
    owner: str,
    restricted: bool,
    version: str,
    deleted: bool,
    digest: str,
    sensitivity: frozenset[str] = frozenset(),
    flags: frozenset[str] = frozenset(),
) -> RecordMeta:
    """The envelope of one record."""
    return RecordMeta(
        kind=kind,
        key=SourceKey(bc.source, rid),
        owner=owner,
        provenance=Provenance(bc.source_system, bc.received_at, digest),
        version=version,
        deleted=deleted,
        sensitivity=sensitivity,
        restricted=restricted,
        flags=flags,
    )


class Layout:
    """Column positions of one file in one version (rows arrive in spec order)."""

    def __init__(self, version: str, file: str) -> None:
        self.version = version
        self.file = file
        self.names = column_names(version, file)
        self.ix = {n: i for i, n in enumerate(self.names)}
        self.export_id = self.ix.get("ExportID", -1)
        self.updated = self.ix.get("DateUpdated", -1)
        self.created = self.ix.get("DateCreated", -1)
        self.deleted = self.ix.get("DateDeleted", -1)
        self.personal = self.ix.get("PersonalID", -1)
        self.enrollment = self.ix.get("EnrollmentID", -1)
        self.project = self.ix.get("ProjectID", -1)
        self.categories = file_categories(version, file)

    def __getitem__(self, name: str) -> int:
        return self.ix[name]


def _day(value: str) -> date | None:
    if len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def stored_columns(layout: Layout, v: list[str]) -> tuple[str, ...]:
    """The row as stored: every column but ``ExportID`` (transport metadata, left blank)."""
    if layout.export_id >= 0 and v[layout.export_id]:
        v = list(v)
        v[layout.export_id] = ""
    return tuple(v)


def build_client(
    bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta, birth_ok: bool
) -> HmisClient:
    """A Client.csv row as a Client (names, DOB, SSN as given, quality, race, gender/sex)."""
    ix = lay.ix
    hashed = bc.hash_status in HASHED_STATUSES
    first, middle, last, suffix = (
        v[ix["FirstName"]],
        v[ix["MiddleName"]],
        v[ix["LastName"]],
        v[ix["NameSuffix"]],
    )
    names: tuple[HumanName, ...] = ()
    if not hashed and (first or middle or last or suffix):
        names = (
            HumanName(family=last, given=tuple(g for g in (first, middle) if g), suffix=suffix),
        )
    race = tuple(code for col, code in RACE_CODES.items() if v[ix[col]] == "1")
    hispanic = v[ix["HispanicLatinaeo" if lay.version == FY2024 else "HispanicLatinao"]]
    ethnicity = HISPANIC if hispanic == "1" else NOT_HISPANIC if hispanic == "0" and race else ""
    gender: tuple[str, ...] = ()
    sex = ""
    if lay.version == FY2024:
        gender = tuple(code for col, code in GENDER_CODES.items() if v[ix[col]] == "1")
    elif lay.version == FY2026:
        sex = SEX_CODES.get(v[ix["Sex"]], "")
    pid = v[0]
    ssn = v[ix["SSN"]]
    return HmisClient(
        meta=meta,
        identifiers=(Identifier(system=bc.source, value=pid, type="PI"),),
        names=names,
        birth_date=_day(v[ix["DOB"]]) if birth_ok else None,
        ssn=ssn or None,
        name_quality=v[ix["NameDataQuality"]],
        ssn_quality=v[ix["SSNDataQuality"]],
        birth_date_quality=v[ix["DOBDataQuality"]],
        sex=sex,
        gender=gender,
        race=race,
        ethnicity=ethnicity,
        veteran_status=v[ix["VeteranStatus"]],
        hmis_version=lay.version,
        hmis_columns=stored_columns(lay, v),
        hmis_hash_status=bc.hash_status if hashed else "",
    )


def build_enrollment(
    bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta
) -> HmisEnrollment:
    """An Enrollment.csv row as an Enrollment."""
    ix = lay.ix
    return HmisEnrollment(
        meta=meta,
        client=SourceKey(bc.source, v[ix["PersonalID"]]),
        project_id=v[ix["ProjectID"]],
        household_id=v[ix["HouseholdID"]],
        entry_date=_day(v[ix["EntryDate"]]),
        relationship_to_hoh=v[ix["RelationshipToHoH"]],
        living_situation=v[ix["LivingSituation"]],
        disabling_condition=v[ix["DisablingCondition"]],
        move_in_date=_day(v[ix["MoveInDate"]]),
        hmis_version=lay.version,
        hmis_columns=stored_columns(lay, v),
    )


def build_exit(bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta) -> HmisExit:
    """An Exit.csv row as an Exit."""
    ix = lay.ix
    return HmisExit(
        meta=meta,
        client=SourceKey(bc.source, v[ix["PersonalID"]]),
        enrollment=SourceKey(bc.source, v[ix["EnrollmentID"]]),
        exit_date=_day(v[ix["ExitDate"]]),
        destination=v[ix["Destination"]],
        hmis_version=lay.version,
        hmis_columns=stored_columns(lay, v),
    )


def service_sensitivity(lay: Layout, v: list[str]) -> frozenset[str]:
    """The sensitive category a Services row carries (HOPWA → hiv, PATH → behavioral_health)."""
    cat = SENSITIVE_RECORD_TYPES.get(v[lay.ix["RecordType"]])
    return frozenset({cat}) if cat else frozenset()


def build_service(bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta) -> HmisService:
    """A Services.csv row as a Service."""
    ix = lay.ix
    return HmisService(
        meta=meta,
        client=SourceKey(bc.source, v[ix["PersonalID"]]),
        enrollment=SourceKey(bc.source, v[ix["EnrollmentID"]]),
        date_provided=_day(v[ix["DateProvided"]]),
        record_type=v[ix["RecordType"]],
        type_provided=v[ix["TypeProvided"]],
        hmis_version=lay.version,
        hmis_columns=stored_columns(lay, v),
    )


def row_categories(lay: Layout, v: list[str]) -> tuple[Mapping[str, str], frozenset[str]]:
    """(column categories, record sensitivity) of a SourceRow; Disabilities rows of type 8, 9
    or 10 carry hiv / behavioral_health / substance_use on every column."""
    if lay.file == "Disabilities":
        cat = SENSITIVE_DISABILITY.get(v[lay.ix["DisabilityType"]])
        if cat is not None:
            return disability_categories(lay.version, cat), frozenset({cat})
    return lay.categories, frozenset()


def dv_flags(lay: Layout, v: list[str]) -> frozenset[str]:
    """FLAG_FLEEING_DV / FLAG_NOT_FLEEING_DV from a HealthAndDV row's CurrentlyFleeing."""
    if lay.file != "HealthAndDV":
        return frozenset()
    fleeing = v[lay.ix["CurrentlyFleeing"]]
    if fleeing == "1":
        return frozenset({FLAG_FLEEING_DV})
    if fleeing == "0":
        return frozenset({FLAG_NOT_FLEEING_DV})
    return frozenset()


def build_row(
    bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta, categories: Mapping[str, str]
) -> SourceRow:
    """Any other file's row as a SourceRow (every column as a string)."""
    fields = dict(zip(lay.names, v, strict=True))
    if "ExportID" in fields:
        fields["ExportID"] = ""
    client = (
        SourceKey(bc.source, v[lay.personal]) if lay.personal >= 0 and v[lay.personal] else None
    )
    return SourceRow(
        meta=meta,
        fields=fields,
        categories=categories,
        client=client,
        locations=LOCATION_COLUMNS.get(lay.file, frozenset()),
    )
