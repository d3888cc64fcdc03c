"""A client read by one connector is written correctly by another: FHIR, HL7 and HUD CSV
share one vocabulary for sex, race and deceased (``hub.core.records.Client``). A plain
partner Patient used to come in as sex ``F`` and race ``Asian``, which the HUD export wrote
as Sex 99 and every race column 0."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from hub.core.records import Client, Provenance, RecordMeta, SourceKey
from hub.core.serialize import record_from_payload
from plugins.clarity.codec import ClientCsvCodec
from plugins.clarity.spec import FY2026
from plugins.fhir.patient_map import patient_to_client
from plugins.hl7.parser import parse_message
from plugins.hl7.render import Envelope, render_client

PARTNER_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "gender": "female",
    "birthDate": "1980-04-05",
    "name": [{"family": "Quixtanova", "given": ["Zebulon"]}],
    "extension": [
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [
                {
                    "url": "ombCategory",
                    "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2028-9"},
                },
                {"url": "text", "valueString": "Asian"},
            ],
        }
    ],
    "deceasedBoolean": False,
}


def from_fhir(patient: dict[str, Any]) -> Client:
    meta = RecordMeta(
        "client",
        SourceKey("fhir:hospital-x", "p-1"),
        "hospital-x",
        Provenance("fhir", datetime(2025, 3, 1, tzinfo=UTC), "0" * 64),
        "2025-03-01T00:00:00",
    )
    client = record_from_payload(meta, patient_to_client(patient))
    assert isinstance(client, Client)
    return client


def test_a_fhir_patient_exports_to_hud_csv_with_its_sex_and_race() -> None:
    client = from_fhir(PARTNER_PATIENT)
    assert (client.sex, client.race, client.deceased) == ("female", ("2028-9",), "false")
    text = ClientCsvCodec(FY2026).encode([client]).decode()
    row = next(csv.DictReader(io.StringIO(text)))
    assert (row["Sex"], row["Asian"], row["White"]) == ("0", "1", "0")


def test_a_fhir_patient_renders_as_hl7_with_its_sex_race_and_death_flag() -> None:
    client = from_fhir(PARTNER_PATIENT)
    pid = parse_message(render_client(client, Envelope("C1"))).first("PID")
    assert pid is not None
    assert (pid.get(8), pid.get(10), pid.get(30)) == ("F", "2028-9", "N")


def test_values_stored_before_the_shared_vocabulary_still_export() -> None:
    legacy = from_fhir(PARTNER_PATIENT)
    old = record_from_payload(
        legacy.meta, {"sex": "F", "race": ["Asian"], "deceased": "Y", "names": []}
    )
    assert isinstance(old, Client)
    row = next(csv.DictReader(io.StringIO(ClientCsvCodec(FY2026).encode([old]).decode())))
    assert (row["Sex"], row["Asian"]) == ("0", "1")
    pid = parse_message(render_client(old, Envelope("C2"))).first("PID")
    assert pid is not None and pid.get(30) == "Y"
