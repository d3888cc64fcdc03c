"""HUD CSV rows → canonical records (Client, Enrollment, Exit, Service, SourceRow).

Every record is keyed on ``SourceKey(f"hmis:{ImplementationID}", <the file's id>)`` and
versioned by its ``DateUpdated``. Typed records keep the row's columns for faithful
re-export (see :mod:`plugins.clarity.records`); other files become ``SourceRow`` records of
kind ``hmis.<File>`` whose ``fields`` are the row's columns and whose ``categories`` are a
shared per-file mapping.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import compress
from operator import itemgetter

from hub.core.records import FLAG_DV_UNSAID, FLAG_FLEEING_DV, FLAG_NOT_FLEEING_DV
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
    as_of: str = "",
) -> RecordMeta:
    """The envelope of one record (``as_of``: the date its facts describe, see
    :func:`facts_as_of`)."""
    return RecordMeta(
        kind,
        SourceKey(bc.source, rid),
        owner,
        Provenance(bc.source_system, bc.received_at, digest),
        version,
        deleted,
        sensitivity,
        restricted,
        flags,
        as_of,
    )


def _picked(version: str, file: str) -> tuple[str, ...]:
    """The columns, in order, that the typed record of ``file`` reads from a row."""
    if file == "Client":
        common = (
            *("FirstName", "MiddleName", "LastName", "NameSuffix", "SSN", "DOB"),
            *("NameDataQuality", "SSNDataQuality", "DOBDataQuality", "VeteranStatus"),
            "HispanicLatinaeo" if version == FY2024 else "HispanicLatinao",
            *RACE_CODES,
        )
        return (*common, *GENDER_CODES) if version == FY2024 else (*common, "Sex")
    if file == "Enrollment":
        return (
            *("PersonalID", "ProjectID", "HouseholdID", "EntryDate", "RelationshipToHoH"),
            *("LivingSituation", "DisablingCondition", "MoveInDate"),
        )
    if file == "Exit":
        return ("PersonalID", "EnrollmentID", "ExitDate", "Destination")
    if file == "Services":
        return ("PersonalID", "EnrollmentID", "DateProvided", "RecordType", "TypeProvided")
    return ()


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
        self.user = self.ix.get("UserID", -1)
        self.categories = file_categories(version, file)
        self.locations = LOCATION_COLUMNS.get(file, frozenset())
        picked = _picked(version, file)
        self.pick = itemgetter(*(self.ix[n] for n in picked)) if len(picked) > 1 else None
        """The columns a typed record reads (see ``_picked``), fetched in one call."""

    def __getitem__(self, name: str) -> int:
        return self.ix[name]


_DAYS: dict[str, date | None] = {}
_DAYS_CAP = 100_000


def day(value: str) -> date | None:
    """A ``YYYY-MM-DD`` value as a date (None when blank or unreadable); equal values share
    one date object (a bounded cache: dates repeat across rows)."""
    try:
        return _DAYS[value]
    except KeyError:
        pass
    got: date | None = None
    if len(value) == 10:
        try:
            got = date.fromisoformat(value)
        except ValueError:
            got = None
    if len(_DAYS) >= _DAYS_CAP:
        _DAYS.clear()
    _DAYS[value] = got
    return got


_day = day


def stored_columns(layout: Layout, v: list[str]) -> tuple[str, ...]:
    """The row as stored: every column but ``ExportID`` (transport metadata, left blank)."""
    if layout.export_id >= 0 and v[layout.export_id]:
        v = list(v)
        v[layout.export_id] = ""
    return tuple(v)


_RACE_VALUES = tuple(RACE_CODES.values())
_GENDER_VALUES = tuple(GENDER_CODES.values())
_YES = "1".__eq__


def build_client(
    bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta, birth_ok: bool
) -> HmisClient:
    """A Client.csv row as a Client (names, DOB, SSN as given, quality, race, gender/sex)."""
    assert lay.pick is not None
    p = lay.pick(v)
    first, middle, last, suffix, ssn, dob, nq, sq, dq, veteran, hispanic = p[:11]
    hashed = bc.hash_status in HASHED_STATUSES
    names: tuple[HumanName, ...] = ()
    if not hashed and (first or middle or last or suffix):
        given: tuple[str, ...] = (first, middle) if first and middle else (first or middle,)
        names = (HumanName(last, given if first or middle else (), "", suffix),)
    race = tuple(compress(_RACE_VALUES, map(_YES, p[11:17])))
    ethnicity = HISPANIC if hispanic == "1" else NOT_HISPANIC if hispanic == "0" and race else ""
    gender: tuple[str, ...] = ()
    sex = ""
    if lay.version == FY2024:
        gender = tuple(compress(_GENDER_VALUES, map(_YES, p[17:])))
    elif lay.version == FY2026:
        sex = SEX_CODES.get(p[17], "")
    return HmisClient(
        meta,  # positional: the field order is checked at import (_FIELD_ORDER)
        (Identifier(bc.source, v[0], "PI"),),
        names,
        day(dob) if birth_ok else None,
        ssn or None,
        (),
        (),
        nq,
        sq,
        dq,
        sex,
        gender,
        race,
        ethnicity,
        veteran,
        "",
        "",  # birth_date_precision: HUD CSV has full dates only (DOBDataQuality 2 flags a
        # partial one, whose day is then a stand-in)
        lay.version,
        stored_columns(lay, v),
        bc.hash_status if hashed else "",
    )


def build_enrollment(
    bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta
) -> HmisEnrollment:
    """An Enrollment.csv row as an Enrollment."""
    assert lay.pick is not None
    person, project, household, entry, relationship, living, disabling, move_in = lay.pick(v)
    return HmisEnrollment(
        meta,
        SourceKey(bc.source, person),
        project,
        household,
        day(entry),
        relationship,
        living,
        disabling,
        day(move_in),
        lay.version,
        stored_columns(lay, v),
    )


def build_exit(bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta) -> HmisExit:
    """An Exit.csv row as an Exit."""
    assert lay.pick is not None
    person, enrollment, exit_date, destination = lay.pick(v)
    return HmisExit(
        meta,
        SourceKey(bc.source, person),
        SourceKey(bc.source, enrollment),
        day(exit_date),
        destination,
        lay.version,
        stored_columns(lay, v),
    )


def service_sensitivity(lay: Layout, v: list[str]) -> frozenset[str]:
    """The sensitive category a Services row carries (HOPWA → hiv, PATH → behavioral_health)."""
    cat = SENSITIVE_RECORD_TYPES.get(v[lay.ix["RecordType"]])
    return frozenset({cat}) if cat else frozenset()


def build_service(bc: BuildContext, lay: Layout, v: list[str], meta: RecordMeta) -> HmisService:
    """A Services.csv row as a Service."""
    assert lay.pick is not None
    person, enrollment, provided, record_type, type_provided = lay.pick(v)
    return HmisService(
        meta,
        SourceKey(bc.source, person),
        SourceKey(bc.source, enrollment),
        day(provided),
        record_type,
        type_provided,
        lay.version,
        stored_columns(lay, v),
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
    """FLAG_FLEEING_DV / FLAG_NOT_FLEEING_DV from a HealthAndDV row's CurrentlyFleeing (1 / 0);
    FLAG_DV_UNSAID for any other value (blank, 8, 9, 99), so that what an earlier version of
    the row said stops counting."""
    if lay.file != "HealthAndDV":
        return frozenset()
    fleeing = v[lay.ix["CurrentlyFleeing"]]
    if fleeing == "1":
        return frozenset({FLAG_FLEEING_DV})
    if fleeing == "0":
        return frozenset({FLAG_NOT_FLEEING_DV})
    return frozenset({FLAG_DV_UNSAID})


def facts_as_of(lay: Layout, v: list[str], flags: frozenset[str]) -> str:
    """The date the facts of a flagged row describe: a HealthAndDV row's ``InformationDate``
    (``YYYY-MM-DD`` as the row checks left it; ``""`` when blank or the row has no flag)."""
    if not flags or lay.file != "HealthAndDV":
        return ""
    return v[lay.ix["InformationDate"]]


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
    return SourceRow(meta, fields, categories, client, lay.locations)


# Records are built with positional arguments (keywords cost twice as much per row on the
# import's hot path); the field orders they rely on are checked here, once.
_FIELD_ORDER: dict[type, tuple[str, ...]] = {
    SourceKey: ("source", "id"),
    Provenance: ("source_system", "received_at", "payload_hash"),
    RecordMeta: (
        *("kind", "key", "owner", "provenance", "version", "deleted", "sensitivity"),
        *("restricted", "flags", "as_of"),
    ),
    Identifier: ("system", "value", "type"),
    HumanName: ("family", "given", "prefix", "suffix", "use"),
    HmisClient: (
        *("meta", "identifiers", "names", "birth_date", "ssn", "telecom", "addresses"),
        *("name_quality", "ssn_quality", "birth_date_quality", "sex", "gender", "race"),
        *("ethnicity", "veteran_status", "deceased", "birth_date_precision"),
        *("hmis_version", "hmis_columns", "hmis_hash_status"),
    ),
    HmisEnrollment: (
        *("meta", "client", "project_id", "household_id", "entry_date"),
        *("relationship_to_hoh", "living_situation", "disabling_condition", "move_in_date"),
        *("hmis_version", "hmis_columns"),
    ),
    HmisExit: (
        *("meta", "client", "enrollment", "exit_date", "destination", "hmis_version"),
        "hmis_columns",
    ),
    HmisService: (
        *("meta", "client", "enrollment", "date_provided", "record_type", "type_provided"),
        *("hmis_version", "hmis_columns"),
    ),
    SourceRow: ("meta", "fields", "categories", "client", "locations"),
}
for _cls, _names in _FIELD_ORDER.items():
    if tuple(f.name for f in dataclasses.fields(_cls)) != _names:
        raise RuntimeError(
            f"{_cls.__name__}'s fields changed order; update plugins.clarity.mapping"
        )
