"""Records to payloads and back: every field type survives the trip, stray keys are dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from hub.core.records import (
    Address,
    Client,
    ContactPoint,
    Encounter,
    HumanName,
    Identifier,
    Provenance,
    RecordMeta,
    SourceKey,
    SourceRow,
)
from hub.core.serialize import record_from_payload, record_payload


def _meta(kind: str) -> RecordMeta:
    return RecordMeta(
        kind=kind,
        key=SourceKey("hmis:test", "c-1"),
        owner="shelter",
        provenance=Provenance("test", datetime(2025, 1, 2, tzinfo=UTC), "h"),
        version="2025-01-02T00:00:00",
    )


def _client() -> Client:
    return Client(
        meta=_meta("client"),
        identifiers=(Identifier(system="hmis:test", value="MRN1", type="PI"),),
        names=(HumanName(family="Doe", given=("Jane", "Q")), HumanName(family="Roe")),
        birth_date=date(1980, 5, 17),
        telecom=(ContactPoint(system="phone", value="555-0100"),),
        addresses=(Address(lines=("1 Main St", "Apt 2"), city="Town", postal_code="90000"),),
        sex="Female",
        race=("white", "asian"),
    )


def test_a_client_comes_back_equal_from_its_stored_json() -> None:
    client = _client()
    payload = orjson.loads(orjson.dumps(record_payload(client)))
    back = record_from_payload(client.meta, payload)
    assert back == client
    assert isinstance(back, Client)
    assert isinstance(back.names[0].given, tuple)
    assert isinstance(back.addresses[0].lines, tuple)


def test_dates_times_and_references_are_decoded() -> None:
    encounter = Encounter(
        meta=_meta("encounter"),
        client=SourceKey("hl7:h", "p-9"),
        admit_time=datetime(2025, 2, 3, 4, 5, tzinfo=UTC),
        diagnoses=("J10",),
    )
    payload = orjson.loads(orjson.dumps(record_payload(encounter)))
    assert record_from_payload(encounter.meta, payload) == encounter


def test_unknown_keys_are_ignored_at_every_level_and_missing_ones_default() -> None:
    payload = {
        "names": [{"family": "Doe", "nickname": "JD"}],
        "identifiers": [{"system": "s", "value": "v", "issued": "2020"}],
        "favourite_colour": "blue",
        "meta": {"owner": "someone else"},
    }
    meta = _meta("client")
    back = record_from_payload(meta, payload)
    assert back == Client(
        meta=meta,
        names=(HumanName(family="Doe"),),
        identifiers=(Identifier(system="s", value="v"),),
    )


def test_a_kind_without_a_type_comes_back_as_a_source_row() -> None:
    row = SourceRow(
        meta=_meta("hmis.IncomeBenefits"),
        fields={"IncomeFromAnySource": "1", "Address": "x"},
        categories={"IncomeFromAnySource": "income", "Address": "identity"},
        client=SourceKey("hmis:test", "c-1"),
        locations=frozenset({"Address"}),
    )
    payload = orjson.loads(orjson.dumps(record_payload(row)))
    back = record_from_payload(row.meta, payload)
    assert back == row
    assert isinstance(back.locations, frozenset)
