"""ADT A01/A03/A04/A08/A28/A31 and REF^I12 → canonical Client, Encounter, Referral."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from hub.plugin_api import Address, Client, ContactPoint, Encounter, Identifier, Referral
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.mapping import MappingError, SenderContext, map_message
from plugins.hl7.parser import parse_message
from tests.hl7.conftest import PID_ZEBULON, adt

RECEIVED = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
DIRECTORY = AgencyDirectory(
    {
        "clinic-y": SimpleNamespace(
            identifiers=(("urn:ietf:rfc:3986", "urn:oid:2.16.840.1.113883.3.999"),)
        ),
        "hospital-x": SimpleNamespace(identifiers=()),
    }
)


def sender(facility: str = "MERCY") -> SenderContext:
    return SenderContext(facility, "hospital-x", RECEIVED, "f" * 64, DIRECTORY)


def mapped(text: str) -> list[object]:
    return list(map_message(parse_message(text), sender()))


def test_a01_gives_client_and_encounter() -> None:
    client, encounter = mapped(adt("A01", "C1"))
    assert isinstance(client, Client)
    assert isinstance(encounter, Encounter)
    assert str(client.meta.key) == "hl7:MERCY/MRN001"
    assert client.meta.owner == "hospital-x"
    assert client.meta.version == "2025-03-01T18:15:00"
    assert client.meta.provenance.source_system == "hl7v2:EPIC|MERCY"
    assert client.meta.provenance.payload_hash == "f" * 64
    assert client.identifiers == (
        Identifier("MERCY", "MRN001", "MR"),
        Identifier("USSSA", "078051121", "SS"),
    )
    assert [(n.family, n.given, n.suffix, n.use) for n in client.names] == [
        ("Quixtanova", ("Zebulon", "Q"), "JR", "official"),
        ("Quix", ("Zeb",), "", "nickname"),
    ]
    assert client.birth_date == date(1961, 7, 23)
    assert client.sex == "male"
    assert client.race == ("2106-3",)
    assert client.ethnicity == "N"
    assert client.ssn == "078051121"
    assert client.addresses == (
        Address(("4242 Hidden Lane", "Apt 2"), "San Diego", "CA", "92101", "USA", "home"),
    )
    assert client.telecom == (
        ContactPoint("phone", "+1 (619) 5550100", "home"),
        ContactPoint("phone", "(619) 5550199", "work"),
    )
    assert encounter.client == client.meta.key
    assert str(encounter.meta.key) == "hl7:MERCY/V100"
    assert encounter.event == "A01"
    assert encounter.patient_class == "I"
    assert encounter.location == "ER / 101 / B"
    assert encounter.facility == "MERCY"
    assert encounter.visit_number == "V100"
    pacific = timezone(-timedelta(hours=8))
    assert encounter.admit_time == datetime(2025, 3, 1, 10, 0, tzinfo=pacific)
    assert encounter.discharge_time == datetime(2025, 3, 2, 12, 0, tzinfo=pacific)


@pytest.mark.parametrize("event", ["A01", "A03", "A04", "A08"])
def test_visit_events_carry_their_event(event: str) -> None:
    records = mapped(adt(event))
    assert [type(r).__name__ for r in records] == ["Client", "Encounter"]
    assert records[1].event == event  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", ["A28", "A31"])
def test_person_events_give_a_client_only(event: str) -> None:
    assert [type(r).__name__ for r in mapped(adt(event))] == ["Client"]


def test_encounter_without_visit_number_is_keyed_by_control_id() -> None:
    _client, encounter = mapped(adt("A04", "CTL-55", visit=""))
    assert encounter.meta.key.id == "CTL-55"  # type: ignore[attr-defined]


def test_mrn_is_first_mr_else_first_identifier() -> None:
    pid = "PID|1||AAA^^^^PI~BBB^^^HOSP^MR"
    assert mapped(adt(pid=pid))[0].meta.key.id == "BBB"  # type: ignore[attr-defined]
    pid = "PID|1||AAA^^^^PI~CCC^^^^PN"
    client = mapped(adt(pid=pid))[0]
    assert client.meta.key.id == "AAA"  # type: ignore[attr-defined]
    assert client.identifiers[0].system == "MERCY"  # type: ignore[attr-defined]


def test_missing_pid_and_empty_pid3_are_mapping_errors() -> None:
    text = "MSH|^~\\&|A|MERCY|||20250101||ADT^A01|1|P|2.5\rEVN|A01|20250101\rPV1|1|I\r"
    with pytest.raises(MappingError) as info:
        mapped(text)
    assert (info.value.code, info.value.segment) == ("100", "PID")
    with pytest.raises(MappingError) as info:
        mapped(adt(pid="PID|1||||Doe^Jane"))
    assert (info.value.code, info.value.segment, info.value.field) == ("101", "PID", 3)


def test_version_falls_back_to_receipt_time() -> None:
    client = mapped(adt(timestamp="not-a-date"))[0]
    assert client.meta.version == "2025-03-02T12:00:00"  # type: ignore[attr-defined]


def test_deceased_and_null_values() -> None:
    pid = 'PID|1||M9^^^^MR||Doe^Jane||""|F' + "|" * 21 + "20240105|Y"
    client = mapped(adt(pid=pid))[0]
    assert isinstance(client, Client)
    assert client.birth_date is None
    assert client.deceased == "2024-01-05T00:00:00"
    pid = "PID|1||M9^^^^MR||Doe^Jane|||F" + "|" * 22 + "N"
    assert mapped(adt(pid=pid))[0].deceased == "false"  # type: ignore[attr-defined]


def test_escaped_values_are_decoded_in_records() -> None:
    pid = "PID|1||M\\T\\1^^^^MR||O\\S\\Neil\\F\\Smith^Ann"
    client = mapped(adt(pid=pid))[0]
    assert client.meta.key.id == "M&1"  # type: ignore[attr-defined]
    assert client.names[0].family == "O^Neil|Smith"  # type: ignore[attr-defined]


# ---- ARV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sensitivity", "restricted"),
    [
        ("ETH", {"substance_use"}, False),
        ("HIV", {"hiv"}, False),
        ("PSY", {"behavioral_health"}, False),
        ("SDV", {"dv"}, False),
        ("DEM", set(), True),
        ("NO", set(), False),
    ],
)
def test_patient_level_arv_marks_every_record(
    code: str, sensitivity: set[str], restricted: bool
) -> None:
    text = adt()
    text = text.replace("\rPV1", f"\rARV|1|A|{code}^x^HL70717|PAT\rPV1")
    for record in mapped(text):
        assert record.meta.sensitivity == frozenset(sensitivity)  # type: ignore[attr-defined]
        assert record.meta.restricted is restricted  # type: ignore[attr-defined]


def test_visit_level_arv_marks_the_encounter_only() -> None:
    client, encounter = mapped(adt(extra=("ARV|1|A|HIV|PHY",)))
    assert client.meta.sensitivity == frozenset()  # type: ignore[attr-defined]
    assert encounter.meta.sensitivity == frozenset({"hiv"})  # type: ignore[attr-defined]


def test_arv_delete_action_lifts_nothing_and_empty_value_restricts() -> None:
    text = adt().replace("\rPV1", "\rARV|1|D|DEM|PAT\rPV1")
    assert not mapped(text)[0].meta.restricted  # type: ignore[attr-defined]
    text = adt().replace("\rPV1", "\rARV|1|A||PAT\rPV1")
    assert mapped(text)[0].meta.restricted  # type: ignore[attr-defined]


# ---- REF^I12 --------------------------------------------------------------------------------

REF = (
    "MSH|^~\\&|EPIC|MERCY|HUB|CIE|20250301101500||REF^I12^REF_I12|R1|P|2.5.1\r"
    "RF1|P^Pending^HL70283|S^Stat^HL70280|SOC^Social services^L||O|REF-77|20250301|||"
    "HOUSING^Housing need^L||||Needs shelter bed\r"
    "PRD|RP^Referring Provider^HL70286|Kim^Ann|||||2.16.840.1.113883.3.999^OID\r"
    "PRD|RT^Referred to Provider^HL70286|Shelter^Desk|||||UNKNOWN-ORG-9^L\r"
    f"{adt().split(chr(13))[2]}\r"
    "DG1|1||Z59.0^Homelessness^I10||20250301|W\r"
    "NTE|1||First note\\.br\\second line\r"
    "NTE|2||Another note\r"
)


def test_ref_i12_gives_client_and_referral() -> None:
    client, referral = mapped(REF)
    assert isinstance(client, Client)
    assert isinstance(referral, Referral)
    assert str(referral.meta.key) == "hl7:MERCY/REF-77"
    assert referral.client == client.meta.key
    assert referral.status == "requested"
    assert referral.priority == "stat"
    assert referral.service_codes == ("L|SOC|Social services",)
    assert referral.reason == "Needs shelter bed"
    assert referral.requester == "clinic-y"  # OID matched a configured agency identifier
    assert referral.performer == "UNKNOWN-ORG-9"  # no match: the raw id is kept
    assert referral.diagnoses == ("I10|Z59.0|Homelessness",)
    assert referral.notes == ("First note\nsecond line", "Another note")
    assert referral.authored_on == datetime(2025, 3, 1)


def test_ref_without_rf1_id_uses_control_id_and_sender_as_requester() -> None:
    text = "\r".join(
        line if not line.startswith("RF1") else "RF1|A"
        for line in REF.split("\r")
        if not line.startswith("PRD")
    )
    _client, referral = mapped(text)
    assert referral.meta.key.id == "R1"  # type: ignore[attr-defined]
    assert referral.status == "accepted"  # type: ignore[attr-defined]
    assert referral.requester == "hospital-x"  # type: ignore[attr-defined]


def test_ref_without_rf1_is_a_mapping_error() -> None:
    text = "\r".join(line for line in REF.split("\r") if not line.startswith("RF1"))
    with pytest.raises(MappingError) as info:
        mapped(text)
    assert info.value.segment == "RF1"


def test_pid_7_keeps_a_partial_birth_date_at_its_precision() -> None:
    for pid7, birth, precision in (
        ("1980", date(1980, 1, 1), "year"),
        ("198005", date(1980, 5, 1), "month"),
        ("19800517", date(1980, 5, 17), ""),
        ("198005171230-0800", date(1980, 5, 17), ""),
        ("19800517^Y", date(1980, 1, 1), "year"),  # TS degree of precision: the year
        ("198005^L", date(1980, 5, 1), "month"),
        ("1980^D", date(1980, 1, 1), "year"),  # a degree never adds precision
        ("198013", None, ""),
        ("19", None, ""),
    ):
        pid = PID_ZEBULON.replace("||19610723|", f"||{pid7}|")
        client = mapped(adt("A28", "C1", pid=pid))[0]
        assert isinstance(client, Client)
        assert (client.birth_date, client.birth_date_precision) == (birth, precision), pid7
