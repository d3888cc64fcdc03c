"""Outbound rendering: canonical (redacted) records → HL7 v2 that parses back and passes
hl7apy's strict validation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hub.plugin_api import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    HumanName,
    Identifier,
    Provenance,
    RecordMeta,
    Referral,
    ServiceRecord,
    SourceKey,
)
from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.mapping import SenderContext, map_message
from plugins.hl7.parser import parse_message
from plugins.hl7.render import Envelope, RenderError, render_record
from plugins.hl7.strict import validate_strict

KEY = SourceKey("hmis:IMPL-1", "P-100")
STAMP = datetime(2025, 3, 1, 18, 0, tzinfo=UTC)


def meta(kind: str, key: SourceKey = KEY) -> RecordMeta:
    return RecordMeta(
        kind, key, "shelter-a", Provenance("test", STAMP, "0" * 64), "2025-03-01T18:00:00"
    )


CLIENT = Client(
    meta=meta("client"),
    identifiers=(Identifier("urn:oid:1.2.3", "X|7", "MR"),),
    names=(HumanName("Quixtanova", ("Zebulon", "Q"), "", "Jr", "official"),),
    birth_date=date(1961, 7, 23),
    ssn="078-05-1121",
    telecom=(ContactPoint("phone", "619-555-0100", "home"), ContactPoint("email", "z@x.org")),
    addresses=(Address(("4242 Hidden Lane", "Apt ^2"), "San Diego", "CA", "92101", "US", "home"),),
    sex="male",
    race=("2106-3",),
    ethnicity="2186-5",
)
ENV = Envelope("CTRL-1", receiving_facility="clinic-y", timestamp=STAMP)


def roundtrip(text: str) -> list[object]:
    context = SenderContext("CIEHUB", "clinic-y", STAMP, "0" * 64, AgencyDirectory())
    return list(map_message(parse_message(text), context))


def test_client_renders_as_a31_and_maps_back() -> None:
    text = render_record(CLIENT, ENV)
    msh = text.split("\r")[0].split("|")
    assert msh[8] == "ADT^A31^ADT_A05"
    assert msh[9] == "CTRL-1"
    assert msh[5] == "clinic-y"
    (back,) = roundtrip(text)
    assert isinstance(back, Client)
    assert back.meta.key == SourceKey("hl7:CIEHUB", "X|7")  # the MR identifier wins
    assert back.identifiers[0] == Identifier("hmis:IMPL-1", "P-100", "PI")  # the source key
    assert back.identifiers[1] == Identifier("urn:oid:1.2.3", "X|7", "MR")
    assert back.names == CLIENT.names
    assert back.birth_date == CLIENT.birth_date
    assert back.ssn == CLIENT.ssn
    assert back.addresses == CLIENT.addresses
    assert back.sex == "male"
    assert back.race == ("2106-3",)
    assert back.ethnicity == "2186-5"
    assert {(t.system, t.value) for t in back.telecom} == {
        ("phone", "619-555-0100"),
        ("email", "z@x.org"),
    }


def test_msh_7_is_the_record_version_time_so_a_redelivery_is_the_same_message() -> None:
    env = Envelope("CTRL-1", receiving_facility="clinic-y")  # no timestamp: not the clock
    first = render_record(CLIENT, env)
    assert render_record(CLIENT, env) == first
    header = parse_message(first).header
    assert header.timestamp == "20250301180000+0000"  # meta.version 2025-03-01T18:00:00
    sequenced = dataclasses.replace(CLIENT, meta=dataclasses.replace(CLIENT.meta, version="0042"))
    stamp = parse_message(render_record(sequenced, env)).header.timestamp
    assert stamp == "20250301180000+0000"  # not a date: the time the hub received it


def test_client_event_option_a08() -> None:
    text = render_record(CLIENT, ENV, {"client_event": "A08"})
    assert text.split("\r")[0].split("|")[8] == "ADT^A08^ADT_A01"
    with pytest.raises(RenderError):
        render_record(CLIENT, ENV, {"client_event": "A40"})


@pytest.mark.parametrize(
    ("birth", "precision", "pid7"),
    [(date(1961, 1, 1), "year", "1961"), (date(1961, 7, 1), "month", "196107")],
)
def test_a_partial_birth_date_renders_at_its_precision(
    birth: date, precision: str, pid7: str
) -> None:
    client = dataclasses.replace(CLIENT, birth_date=birth, birth_date_precision=precision)
    text = render_record(client, ENV)
    pid = parse_message(text).first("PID")
    assert pid is not None and pid.get(7) == pid7  # never 19610101
    (back,) = roundtrip(text)
    assert isinstance(back, Client)
    assert (back.birth_date, back.birth_date_precision) == (birth, precision)


def test_redacted_client_renders_only_its_key() -> None:
    bare = Client(meta=meta("client"))
    (back,) = roundtrip(render_record(bare, ENV))
    assert isinstance(back, Client)
    assert back.names == () and back.birth_date is None and back.ssn is None


def test_encounter_renders_as_a08() -> None:
    pacific = timezone(-timedelta(hours=8))
    encounter = Encounter(
        meta=meta("encounter", SourceKey("hl7:MERCY", "V1")),
        client=SourceKey("hl7:MERCY", "MRN001"),
        event="A01",
        patient_class="E",
        location="ER / 101 / B",
        visit_number="V1",
        admit_time=datetime(2025, 3, 1, 10, 0, tzinfo=pacific),
        facility="MERCY",
        diagnoses=("I10|Z59.0|Homelessness",),
    )
    text = render_record(encounter, ENV)
    _client, back = roundtrip(text)
    assert isinstance(back, Encounter)
    assert back.meta.key.id == "V1"
    assert back.event == "A08"
    assert (back.patient_class, back.location, back.facility) == ("E", "ER / 101 / B", "MERCY")
    assert back.admit_time == encounter.admit_time
    assert back.diagnoses == encounter.diagnoses


def test_an_encounter_without_visit_number_keeps_its_key_across_versions() -> None:
    encounter = Encounter(
        meta=meta("encounter", SourceKey("fhir:cie-211", "ENC-9")),
        client=KEY,
        event="A08",
        patient_class="O",
    )
    keys = set()
    for control in ("CTRL-1", "CTRL-2"):  # two deliveries: two versions, two control ids
        text = render_record(encounter, Envelope(control, timestamp=STAMP))
        _client, back = roundtrip(text)
        keys.add(back.meta.key.id)
    assert keys == {"ENC-9"}  # one encounter at the partner, not one per control id


def test_referral_renders_as_ref_i12() -> None:
    referral = Referral(
        meta=meta("referral", SourceKey("fhir:cie-211", "T-9")),
        client=KEY,
        status="requested",
        priority="routine",
        requester="cie-211",
        performer="shelter-a",
        service_codes=("L|HOUSING|Housing",),
        reason="Needs a bed",
        notes=("line one\nline two",),
        authored_on=datetime(2025, 3, 1, 9, 0),
    )
    _client, back = roundtrip(render_record(referral, ENV))
    assert isinstance(back, Referral)
    assert back.meta.key.id == "T-9"
    assert (back.status, back.priority) == ("requested", "routine")
    assert (back.requester, back.performer) == ("cie-211", "shelter-a")
    assert back.service_codes == referral.service_codes
    assert back.reason == "Needs a bed"
    assert back.notes == referral.notes
    assert back.authored_on == referral.authored_on


def test_unsupported_kind_is_a_render_error() -> None:
    service = ServiceRecord(meta=meta("service"))
    with pytest.raises(RenderError):
        render_record(service, ENV)


@pytest.mark.parametrize("kind", ["client", "encounter", "referral"])
def test_rendered_messages_pass_strict_validation(kind: str) -> None:
    records = {
        "client": CLIENT,
        "encounter": Encounter(
            meta=meta("encounter"),
            client=KEY,
            patient_class="I",
            visit_number="V1",
            diagnoses=("I10|Z59.0|Homelessness",),
        ),
        "referral": Referral(
            meta=meta("referral"),
            client=KEY,
            status="requested",
            requester="a",
            performer="b",
            notes=("n",),
        ),
    }
    structure = {"client": "ADT_A05", "encounter": "ADT_A01", "referral": "REF_I12"}[kind]
    finding = validate_strict(render_record(records[kind], ENV), structure)
    if kind == "client":
        assert finding is None
    else:
        # An encounter or referral names its client by key only: PID-5 stays empty (an empty
        # field means "no change" to the receiver; HL7 null '""' would erase the name there).
        assert finding is None or finding.text.endswith("PID PID_5")
