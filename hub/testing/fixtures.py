"""The kit's canonical fixture records: every record kind, every consent category, the edge cases.

Connectors are tested on these records rather than on data each author invents, so every
connector meets the same hard cases:

* unicode names (``Renée Adèle``, ``Iñaki``, ``漢字``) and an address with ``Ñ``;
* two different people with the same name (``Marisol Etxeberria``, different birth dates);
* a client without a birth date and without an SSN;
* a client of a victim service provider (``restricted``, fleeing domestic violence);
* Enrollment, Exit, Service, Referral and Encounter records, and two source rows (income and
  a domestic-violence row), together carrying every consent category — the sensitive ones
  (behavioral health, substance use, HIV, DV) included.

Everything is synthetic. :func:`pii_strings` lists the values that must never appear in a
log line or an error message; :data:`GATE_CONSENTED` and :data:`GATE_REFUSED` say which
clients the kit's gated hub gives a consent and which must never reach a sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from hub.core.records import (
    FLAG_FLEEING_DV,
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
    Service,
    SourceKey,
    SourceRow,
)

SOURCE = "kit:hmis"
"""The source namespace of every fixture record."""
OWNER = "kit-shelter"
"""The agency owning the fixture records (a shelter in the ``hmis`` and ``cie`` networks)."""
VSP_OWNER = "kit-vsp"
"""A victim service provider: its records never leave it, whatever a consent says."""
RECIPIENT = "kit-partner"
"""The agency the kit's feed delivers to (a CIE partner in the ``cie`` network)."""
RECEIVED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
"""When the fixture records reached the hub."""
VERSION = "2025-03-01T10:00:00"
"""The version of every fixture record (a HUD ``DateUpdated`` style timestamp)."""


def key(record_id: str) -> SourceKey:
    """A source key in the fixtures' source."""
    return SourceKey(SOURCE, record_id)


def meta(
    kind: str,
    record_id: str,
    *,
    owner: str = OWNER,
    version: str = VERSION,
    sensitivity: Iterable[str] = (),
    restricted: bool = False,
    flags: Iterable[str] = (),
) -> RecordMeta:
    """The envelope of a fixture record."""
    return RecordMeta(
        kind=kind,
        key=key(record_id),
        owner=owner,
        provenance=Provenance("kit", RECEIVED_AT, "0" * 64),
        version=version,
        sensitivity=frozenset(sensitivity),
        restricted=restricted,
        flags=frozenset(flags),
    )


def _pi(record_id: str) -> tuple[Identifier, ...]:
    return (Identifier(SOURCE, record_id, "PI"),)


# ---- clients -------------------------------------------------------------------------------

CLIENT_RENEE = Client(
    meta=meta("client", "C-1001"),
    identifiers=_pi("C-1001"),
    names=(HumanName(family="Quintanilla-Ruiz", given=("Renée", "Adèle")),),
    birth_date=date(1984, 2, 29),
    ssn="219-45-8876",
    telecom=(ContactPoint("phone", "+1 619 555 0142", "home"),),
    addresses=(Address(("1180 Calle Ñandú", "Apt 4"), "San Diego", "CA", "92101", "US", "home"),),
    name_quality="1",
    ssn_quality="1",
    birth_date_quality="1",
    sex="female",
    gender=("woman",),
    race=("2106-3",),
    ethnicity="2135-2",
    veteran_status="0",
)
"""Unicode given names (é, è), a hyphenated family name, a leap-day birth date, full PII."""

CLIENT_INAKI = Client(
    meta=meta("client", "C-1002"),
    identifiers=_pi("C-1002"),
    names=(HumanName(family="Zubizarreta", given=("Iñaki",)),),
    birth_date=None,
    birth_date_quality="99",
    ssn_quality="99",
    name_quality="1",
    sex="male",
    veteran_status="1",
)
"""No birth date and no SSN (ñ in the given name)."""

CLIENT_KANJI = Client(
    meta=meta("client", "C-1003"),
    identifiers=_pi("C-1003"),
    names=(HumanName(family="王", given=("漢字",)),),
    birth_date=date(2001, 7, 4),
    ssn="530-72-6614",
    name_quality="1",
    ssn_quality="1",
    birth_date_quality="1",
    sex="male",
    race=("2028-9",),
    ethnicity="2186-5",
    veteran_status="0",
)
"""A name in CJK characters only."""

CLIENT_MARISOL_A = Client(
    meta=meta("client", "C-1004"),
    identifiers=_pi("C-1004"),
    names=(HumanName(family="Etxeberria", given=("Marisol",)),),
    birth_date=date(1990, 5, 17),
    ssn="401-88-2291",
    name_quality="1",
    ssn_quality="1",
    birth_date_quality="1",
    sex="female",
    veteran_status="0",
)
"""One of two different people with the same name."""

CLIENT_MARISOL_B = Client(
    meta=meta("client", "C-1005"),
    identifiers=_pi("C-1005"),
    names=(HumanName(family="Etxeberria", given=("Marisol",)),),
    birth_date=date(1972, 11, 3),
    name_quality="1",
    ssn_quality="99",
    birth_date_quality="1",
    sex="female",
    veteran_status="99",
)
"""The other person with the same name (a different birth date, no SSN)."""

CLIENT_VSP = Client(
    meta=meta("client", "C-2001", owner=VSP_OWNER, restricted=True, flags=(FLAG_FLEEING_DV,)),
    identifiers=_pi("C-2001"),
    names=(HumanName(family="Vanterpool", given=("Dolores",)),),
    birth_date=date(1979, 9, 12),
    ssn="618-20-4473",
    addresses=(Address(("77 Harbor View Rd",), "Chula Vista", "CA", "91910", "US", "home"),),
    name_quality="1",
    ssn_quality="1",
    birth_date_quality="1",
    sex="female",
    veteran_status="0",
)
"""A victim service provider's client, fleeing domestic violence: restricted to its owner."""

CLIENTS: tuple[Client, ...] = (
    CLIENT_RENEE,
    CLIENT_INAKI,
    CLIENT_KANJI,
    CLIENT_MARISOL_A,
    CLIENT_MARISOL_B,
    CLIENT_VSP,
)
"""Every fixture client."""

# ---- the rest of the record kinds -----------------------------------------------------------

ENROLLMENT = Enrollment(
    meta=meta("enrollment", "E-3001"),
    client=key("C-1001"),
    project_id="P-10",
    household_id="H-77",
    entry_date=date(2025, 1, 15),
    relationship_to_hoh="1",
    living_situation="116",
    disabling_condition="1",
)
"""An emergency-shelter stay (housing, and health for the disabling condition)."""

ENROLLMENT_PART2 = Enrollment(
    meta=meta("enrollment", "E-3002", sensitivity=("substance_use",)),
    client=key("C-1002"),
    project_id="P-22",
    household_id="H-91",
    entry_date=date(2025, 2, 3),
    relationship_to_hoh="1",
    living_situation="101",
    disabling_condition="0",
)
"""A stay in a 42 CFR Part 2 program: substance use on the whole record."""

EXIT = Exit(
    meta=meta("exit", "X-3001"),
    client=key("C-1001"),
    enrollment=key("E-3001"),
    exit_date=date(2025, 2, 20),
    destination="410",
)
"""The end of :data:`ENROLLMENT`."""

SERVICE = Service(
    meta=meta("service", "S-4001"),
    client=key("C-1001"),
    enrollment=key("E-3001"),
    date_provided=date(2025, 1, 16),
    record_type="200",
    type_provided="1",
)
"""A bed night."""

SERVICE_HOPWA = Service(
    meta=meta("service", "S-4002", sensitivity=("hiv",)),
    client=key("C-1003"),
    enrollment=key("E-3001"),
    date_provided=date(2025, 1, 20),
    record_type="151",
    type_provided="2",
)
"""A HOPWA service: HIV on the whole record."""

ENCOUNTER_ED = Encounter(
    meta=meta("encounter", "V1001", sensitivity=("behavioral_health",)),
    client=key("C-1003"),
    event="A01",
    patient_class="E",
    location="ED / 12 / B",
    visit_number="V1001",
    admit_time=datetime(2025, 2, 1, 8, 30, tzinfo=UTC),
    facility="KITGEN",
    diagnoses=("http://hl7.org/fhir/sid/icd-10-cm|F32.9|Major depressive disorder",),
)
"""An emergency admission with a mental-health diagnosis (behavioral health)."""

ENCOUNTER_STAY = Encounter(
    meta=meta("encounter", "V1002"),
    client=key("C-1001"),
    event="A03",
    patient_class="I",
    location="4W / 402 / A",
    visit_number="V1002",
    admit_time=datetime(2025, 1, 10, 22, 0, tzinfo=UTC),
    discharge_time=datetime(2025, 1, 14, 11, 15, tzinfo=UTC),
    facility="KITGEN",
)
"""An inpatient stay with a discharge."""

REFERRAL = Referral(
    meta=meta("referral", "R-5001"),
    client=key("C-1001"),
    status="requested",
    priority="routine",
    requester=OWNER,
    performer=RECIPIENT,
    service_codes=("http://loinc.org|LA31996-4|Housing assistance",),
    reason="Needs stable housing before discharge",
    diagnoses=("http://hl7.org/fhir/sid/icd-10-cm|Z59.01|Sheltered homelessness",),
    notes=("Prefers calls before noon at the Ñandú address",),
    authored_on=datetime(2025, 2, 2, 9, 15, tzinfo=UTC),
)
"""A housing referral with free text (reason, notes) that must never reach a log."""

INCOME_ROW = SourceRow(
    meta=meta("hmis.IncomeBenefits", "I-6001"),
    fields={
        "IncomeBenefitsID": "I-6001",
        "PersonalID": "C-1001",
        "IncomeFromAnySource": "1",
        "TotalMonthlyIncome": "850.00",
    },
    categories={
        "IncomeBenefitsID": "income",
        "PersonalID": "identity",
        "IncomeFromAnySource": "income",
        "TotalMonthlyIncome": "income",
    },
    client=key("C-1001"),
)
"""A HUD income row (income)."""

DV_ROW = SourceRow(
    meta=meta(
        "hmis.HealthAndDV",
        "D-7001",
        owner=VSP_OWNER,
        restricted=True,
        sensitivity=("dv",),
        flags=(FLAG_FLEEING_DV,),
    ),
    fields={
        "HealthAndDVID": "D-7001",
        "PersonalID": "C-2001",
        "DomesticViolenceSurvivor": "1",
        "CurrentlyFleeing": "1",
    },
    categories={
        "HealthAndDVID": "dv",
        "PersonalID": "identity",
        "DomesticViolenceSurvivor": "dv",
        "CurrentlyFleeing": "dv",
    },
    client=key("C-2001"),
)
"""A domestic-violence row of the victim service provider's client (dv, restricted)."""

RECORDS: tuple[Record, ...] = (
    *CLIENTS,
    ENROLLMENT,
    ENROLLMENT_PART2,
    EXIT,
    SERVICE,
    SERVICE_HOPWA,
    ENCOUNTER_ED,
    ENCOUNTER_STAY,
    REFERRAL,
    INCOME_ROW,
    DV_ROW,
)
"""Every fixture record, clients first."""

GATE_CONSENTED: frozenset[str] = frozenset({"C-1001", "C-1003", "C-1004", "C-2001"})
"""Clients the gated hub gives an MPA consent (C-2001 is the VSP's: the gate still refuses)."""
GATE_PERMITTED: frozenset[str] = frozenset({"C-1001", "C-1003", "C-1004"})
"""Clients whose records may reach the kit's recipient."""
GATE_REFUSED: frozenset[str] = frozenset({"C-1002", "C-1005", "C-2001"})
"""Clients whose records must never reach it (no consent, or a victim service provider's)."""


def records_of(kinds: Iterable[str]) -> list[Record]:
    """The fixture records of the given kinds, in fixture order."""
    wanted = set(kinds)
    return [r for r in RECORDS if r.meta.kind in wanted]


def about(record: Record) -> str | None:
    """The id of the fixture client a record is about (itself, for a client)."""
    if isinstance(record, Client):
        return record.meta.key.id
    client: Any = getattr(record, "client", None)
    return client.id if isinstance(client, SourceKey) else None


def consents(clients: Iterable[str] = GATE_CONSENTED) -> list[dict[str, Any]]:
    """MPA consent records (``hub consent import`` JSON) for the given fixture clients."""
    return [
        {
            "id": f"kit-mpa-{cid}",
            "client": {"system": SOURCE, "value": cid},
            "signed_on": "2025-01-01",
            "networks": ["hmis", "cie"],
            "purposes": ["coordination", "referral", "treatment", "eligibility"],
        }
        for cid in sorted(clients)
    ]


# ---- what must never be logged ------------------------------------------------------------


def _date_forms(day: date) -> list[str]:
    return [day.isoformat(), day.strftime("%Y%m%d"), day.strftime("%m/%d/%Y")]


def pii_strings(records: Sequence[Record] = RECORDS) -> frozenset[str]:
    """Values of the records that are client data: names, SSNs, birth dates, addresses,
    phones and free text — each in the forms a connector is likely to write them."""
    found: set[str] = set()
    for record in records:
        if isinstance(record, Client):
            for name in record.names:
                found.update(p for p in (name.family, *name.given) if p)
                found.add(" ".join((*name.given, name.family)).strip())
            if record.ssn:
                found.update({record.ssn, record.ssn.replace("-", "")})
            if record.birth_date is not None:
                found.update(_date_forms(record.birth_date))
            for address in record.addresses:
                found.update(line for line in address.lines if line)
            found.update(t.value for t in record.telecom if t.value)
        elif isinstance(record, Referral):
            found.update(n for n in record.notes if n)
            if record.reason:
                found.add(record.reason)
    return frozenset(found)


def distinct_pii(refused: Sequence[Record], permitted: Sequence[Record]) -> frozenset[str]:
    """PII of ``refused`` records that no ``permitted`` record shares (two people may share a
    name; only what identifies the refused ones can prove a leak)."""
    return pii_strings(refused) - pii_strings(permitted)
