"""Consent record validation: defaults, every kind of bad input, whole files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from consent import (
    Agency,
    ClientRef,
    ConsentPolicy,
    ConsentValidationError,
    parse_consent,
    parse_consent_file,
)

SECRET = "CLIENT-SECRET-4711"
POLICY = ConsentPolicy()


def record(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A full, valid consent record as JSON data."""
    data: dict[str, Any] = {
        "id": f"mpa-{n:04d}",
        "client": {"system": "urn:hmis:personal-id", "value": SECRET},
        "signed_on": "2025-03-01",
        "expires_on": None,
        "method": "written",
        "given_by": "client",
        "networks": ["hmis", "cie"],
        "exclude_agencies": [],
        "sensitive": [],
        "part2_recipients": [],
        "purposes": ["coordination", "referral", "treatment", "eligibility"],
        "revoked_on": None,
        "recorded_by": "shelter",
    }
    data.update(overrides)
    return data


def test_full_record_is_parsed(agencies: dict[str, Agency]) -> None:
    parsed = parse_consent(
        record(
            sensitive=["hiv", "substance_use"],
            part2_recipients=["clinic"],
            exclude_agencies=["partner"],
            revoked_on="2025-04-01",
            expires_on="2026-03-01",
            method="verbal",
            given_by="guardian",
            networks=["hmis"],
        ),
        agencies=agencies,
        policy=POLICY,
    )
    assert parsed.id == "mpa-0001"
    assert parsed.client == ClientRef("urn:hmis:personal-id", SECRET)
    assert (parsed.signed_on, parsed.expires_on) == (date(2025, 3, 1), date(2026, 3, 1))
    assert parsed.revoked_on == date(2025, 4, 1)
    assert (parsed.method, parsed.given_by) == ("verbal", "guardian")
    assert parsed.networks == {"hmis"}
    assert parsed.sensitive == {"hiv", "substance_use"}
    assert parsed.part2_recipients == {"clinic"}
    assert parsed.exclude_agencies == {"partner"}
    assert parsed.recorded_by == "shelter"


def test_missing_fields_take_the_defaults(agencies: dict[str, Agency]) -> None:
    parsed = parse_consent(
        {"id": "mpa-9", "client": {"value": SECRET}, "signed_on": "2025-03-01"},
        agencies=agencies,
        policy=POLICY,
    )
    assert parsed.client.system is None
    assert parsed.expires_on == date(2028, 2, 29)  # 2025-03-01 + 1095 days
    assert (parsed.method, parsed.given_by) == ("written", "client")
    assert parsed.networks == {"hmis", "cie"}
    assert parsed.purposes == {"coordination", "referral", "treatment", "eligibility"}
    assert not (parsed.sensitive or parsed.part2_recipients or parsed.exclude_agencies)
    assert (parsed.revoked_on, parsed.recorded_by) == (None, "")


def test_default_term_comes_from_the_policy(agencies: dict[str, Agency]) -> None:
    parsed = parse_consent(record(), agencies=agencies, policy=ConsentPolicy(default_term_days=30))
    assert parsed.expires_on == date(2025, 3, 31)


def test_to_json_round_trips(agencies: dict[str, Agency]) -> None:
    parsed = parse_consent(
        record(sensitive=["dv"], revoked_on="2025-05-05"), agencies=agencies, policy=POLICY
    )
    again = parse_consent(parsed.to_json(), agencies=agencies, policy=POLICY)
    assert again == parsed
    assert parsed.to_json()["expires_on"] == "2028-02-29"


def drop(key: str) -> Callable[[dict[str, Any]], None]:
    """A mutation removing ``key``."""
    return lambda data: data.pop(key)


def put(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``key``."""
    return lambda data: data.__setitem__(key, value)


def put_client(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a key of ``client``."""
    return lambda data: data["client"].__setitem__(key, value)


BAD_INPUTS = [
    ("unknown field", put("colour", "red"), "colour", "unknown field"),
    ("missing id", drop("id"), "id", "required"),
    ("empty id", put("id", " "), "id", "required"),
    ("id not a string", put("id", 7), "id", "required"),
    ("missing client", drop("client"), "client", "required"),
    ("client not an object", put("client", SECRET), "client", "required"),
    ("missing client value", lambda d: d["client"].pop("value"), "client.value", "required"),
    ("empty client value", put_client("value", ""), "client.value", "required"),
    ("unknown client field", put_client("ssn", SECRET), "client.ssn", "unknown field"),
    ("bad client system", put_client("system", 3), "client.system", "non-empty string"),
    ("missing signed_on", drop("signed_on"), "signed_on", "required"),
    ("bad date format", put("signed_on", "03/01/2025"), "signed_on", "not a date"),
    ("date with time", put("signed_on", "2025-03-01T00:00"), "signed_on", "not a date"),
    ("compact ISO date", put("signed_on", "20250301"), "signed_on", "not a date"),
    ("impossible date", put("signed_on", "2025-02-30"), "signed_on", "impossible date"),
    ("expires before signed", put("expires_on", "2025-02-28"), "expires_on", "before"),
    ("revoked before signed", put("revoked_on", "2025-02-28"), "revoked_on", "before"),
    ("bad revoked date", put("revoked_on", 20250301), "revoked_on", "not a date"),
    ("unknown method", put("method", "telepathy"), "method", "unknown method 'telepathy'"),
    ("unknown given_by", put("given_by", "neighbour"), "given_by", "unknown given by"),
    ("unknown network", put("networks", ["hmis", "foo"]), "networks", "unknown network 'foo'"),
    ("networks not a list", put("networks", "hmis"), "networks", "list of strings"),
    ("null networks", put("networks", None), "networks", "list of strings"),
    ("non-string item", put("purposes", ["referral", 3]), "purposes", "list of strings"),
    ("unknown purpose", put("purposes", ["fun"]), "purposes", "unknown purpose 'fun'"),
    ("unknown category", put("sensitive", ["tattoos"]), "sensitive", "'tattoos'"),
    ("non-sensitive category", put("sensitive", ["housing"]), "sensitive", "'housing'"),
    (
        "unknown excluded agency",
        put("exclude_agencies", ["ghost"]),
        "exclude_agencies",
        "unknown agency 'ghost'",
    ),
    (
        "unknown part2 recipient",
        put("part2_recipients", ["ghost"]),
        "part2_recipients",
        "unknown agency 'ghost'",
    ),
    ("unknown recorder", put("recorded_by", "ghost"), "recorded_by", "unknown agency 'ghost'"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [pytest.param(m, f, x, id=name) for name, m, f, x in BAD_INPUTS],
)
def test_bad_input_names_the_record_and_the_field(
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    fragment: str,
    agencies: dict[str, Agency],
) -> None:
    data = record(3)
    mutate(data)
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent(data, agencies=agencies, policy=POLICY, index=2)
    err = caught.value
    assert (err.record_index, err.field) == (2, field)
    assert err.record_id == (data["id"] if field != "id" else None)
    where = "record 2 (id mpa-0003)" if field != "id" else "record 2"
    assert str(err).startswith(f"{where}: field '{field}': ")
    assert fragment in str(err)
    assert SECRET not in str(err)
    assert SECRET not in repr(err)
    assert isinstance(err, ValueError)


def test_a_stored_consent_may_name_agencies_that_have_left(agencies: dict[str, Agency]) -> None:
    """Loading what was stored (``known_agencies=False``): agencies named need not be
    configured any more; everything else is checked as on import."""
    data = record(exclude_agencies=["ghost"], part2_recipients=["ghost"], recorded_by="ghost")
    parsed = parse_consent(data, agencies=agencies, policy=POLICY, known_agencies=False)
    assert parsed.exclude_agencies == parsed.part2_recipients == frozenset({"ghost"})
    assert parsed.recorded_by == "ghost"
    with pytest.raises(ConsentValidationError, match="exclude_agencies"):
        parse_consent(
            record(exclude_agencies=[3]), agencies=agencies, policy=POLICY, known_agencies=False
        )
    with pytest.raises(ConsentValidationError, match="recorded_by"):
        parse_consent(record(recorded_by=7), agencies=agencies, policy=POLICY, known_agencies=False)


def test_a_record_must_be_an_object(agencies: dict[str, Agency]) -> None:
    with pytest.raises(ConsentValidationError, match="record 0: field '<record>'"):
        parse_consent([], agencies=agencies, policy=POLICY)  # type: ignore[arg-type]


def test_duplicate_keys_in_a_record_are_rejected(agencies: dict[str, Agency]) -> None:
    text = json.dumps(record(1))[:-1] + ', "revoked_on": "2025-04-01"}'
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert (caught.value.field, caught.value.record_id) == ("revoked_on", "mpa-0001")
    assert "more than once" in str(caught.value)


def test_json_array_file(agencies: dict[str, Agency]) -> None:
    text = json.dumps([record(1), record(2, signed_on="2025-04-01")], indent=2)
    parsed = parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert [r.id for r in parsed] == ["mpa-0001", "mpa-0002"]
    assert parsed[1].signed_on == date(2025, 4, 1)


def test_json_lines_file_skips_blank_lines(agencies: dict[str, Agency]) -> None:
    text = "\n".join([json.dumps(record(1)), "", "  ", json.dumps(record(2)), ""])
    parsed = parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert [r.id for r in parsed] == ["mpa-0001", "mpa-0002"]


def test_byte_order_mark_and_empty_files(agencies: dict[str, Agency]) -> None:
    bom = "\ufeff" + json.dumps([record(1)])
    assert len(parse_consent_file(bom, agencies=agencies, policy=POLICY)) == 1
    assert parse_consent_file("", agencies=agencies, policy=POLICY) == []
    assert parse_consent_file("[]", agencies=agencies, policy=POLICY) == []


@pytest.mark.parametrize("lines", [False, True])
def test_one_bad_record_rejects_the_file_naming_it(
    lines: bool, agencies: dict[str, Agency]
) -> None:
    records = [record(1), record(2), record(3), record(4, networks=["foo"]), record(5)]
    text = "\n".join(json.dumps(r) for r in records) if lines else json.dumps(records)
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert str(caught.value) == "record 3 (id mpa-0004): field 'networks': unknown network 'foo'"


@pytest.mark.parametrize("lines", [False, True])
def test_duplicate_ids_are_rejected(lines: bool, agencies: dict[str, Agency]) -> None:
    records = [record(1), record(2), record(1, signed_on="2025-05-01")]
    text = "\n".join(json.dumps(r) for r in records) if lines else json.dumps(records)
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    err = caught.value
    assert (err.record_index, err.record_id, err.field) == (2, "mpa-0001", "id")
    assert "duplicate id (also record 0)" in str(err)


def test_invalid_json_line_names_the_record_and_line(agencies: dict[str, Agency]) -> None:
    text = json.dumps(record(1)) + "\n\n" + '{"id": "mpa-0002", ' + "\n"
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert (caught.value.record_index, caught.value.field) == (1, "<json>")
    assert "line 3" in str(caught.value)


def test_invalid_json_array_is_a_file_error(agencies: dict[str, Agency]) -> None:
    text = "[" + json.dumps(record(1)) + ",]"
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert (caught.value.record_index, caught.value.field) == (-1, "<file>")
    assert str(caught.value).startswith("file: field '<file>': invalid JSON at line 1")
    assert SECRET not in str(caught.value)


def test_array_item_that_is_not_an_object(agencies: dict[str, Agency]) -> None:
    text = json.dumps([record(1), "mpa-0002"])
    with pytest.raises(ConsentValidationError) as caught:
        parse_consent_file(text, agencies=agencies, policy=POLICY)
    assert (caught.value.record_index, caught.value.field) == (1, "<record>")
