"""Small pieces: the spec tables, dates, hashing, CSV lines, compact ids."""

from __future__ import annotations

import hashlib

import pytest

from plugins.clarity.csvio import format_row
from plugins.clarity.dates import normalise_date, normalise_datetime
from plugins.clarity.hashing import hash_name, hash_ssn, soundex
from plugins.clarity.importer import ck
from plugins.clarity.spec import (
    FILES,
    column_category,
    column_names,
    columns,
    file_categories,
    parse_csv_version,
)


def test_clarity_spec_has_both_versions() -> None:
    assert len(FILES) == 24
    fy24 = column_names("2024", "Client")
    fy26 = column_names("2026", "Client")
    assert "Woman" in fy24 and "Sex" not in fy24 and "HispanicLatinaeo" in fy24
    assert "Woman" not in fy26 and "HispanicLatinao" in fy26
    assert fy26[fy26.index("DOBDataQuality") + 1] == "Sex"
    e26 = column_names("2026", "Enrollment")
    assert e26[e26.index("DateCreated") - 1] == "MentalHealthConsultation"
    assert (
        "PreferredLanguage" in column_names("2024", "Enrollment") and "PreferredLanguage" not in e26
    )
    source = {c.name: c for c in columns("2026", "Export")}["SourceID"]
    assert source.label == "S350"
    for version in ("2024", "2026"):
        for file in FILES:
            cols = columns(version, file)
            assert cols[0].name.endswith("ID") and cols[0].required
            assert all(c.type in "SIDTM" for c in cols)
    assert {c.name: c for c in columns("2024", "Client")}["SSN"].label == "S9"
    assert {c.name: c for c in columns("2024", "Client")}["DOB"].label == "D"


def test_clarity_categories() -> None:
    hdv = file_categories("2024", "HealthAndDV")
    assert hdv["CurrentlyFleeing"] == "dv" and hdv["MentalHealthStatus"] == "behavioral_health"
    assert hdv["GeneralHealthStatus"] == "health"
    assert column_category("IncomeBenefits", "ADAP") == "hiv"
    assert column_category("IncomeBenefits", "EarnedAmount") == "income"
    assert column_category("Disabilities", "ViralLoad") == "hiv"
    assert column_category("Enrollment", "AlcoholDrugUseDisorderFam") == "substance_use"
    assert column_category("Client", "FirstName") == "identity"
    assert column_category("Client", "White") == "demographics"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("2024 v1.3", "2024"),
        ("FY2026 v1.0", "2026"),
        ("2026", "2026"),
        ("2022 v1.2", None),
        ("", None),
    ],
)
def test_clarity_versions(text: str, family: str | None) -> None:
    assert parse_csv_version(text) == family


def test_clarity_dates() -> None:
    assert normalise_date("2024-01-31") == ("2024-01-31", "")
    assert normalise_date("01/31/2024") == ("2024-01-31", "MM/DD/YYYY")
    assert normalise_date("31/01/2024") is None  # day-first is never guessed
    assert normalise_date("2024-02-30") is None
    assert normalise_datetime("02-07-2023 12:00:00") == (
        "2023-02-07 12:00:00",
        "MM-DD-YYYY hh:mm:ss",
    )
    assert normalise_datetime("2024-01-31 10:11:12.123")[0] == "2024-01-31 10:11:12"  # type: ignore[index]
    assert normalise_datetime("2024-01-31T10:11:12")[0] == "2024-01-31 10:11:12"  # type: ignore[index]
    assert normalise_datetime("1/2/2024 3:04 PM")[0] == "2024-01-02 15:04:00"  # type: ignore[index]


def test_clarity_hashing_rules() -> None:
    assert [soundex(n) for n in ("Robert", "Rupert", "Ashcraft", "Tymczak", "Pfister", "Lee")] == [
        "R163", "R163", "A261", "T522", "P236", "L000",
    ]  # fmt: skip
    assert hash_name("Robert") == hashlib.sha256(b"R163").hexdigest()
    assert hash_name("") == ""
    assert hash_ssn("123456789") == "6789" + hashlib.sha256(b"123456789").hexdigest()
    assert hash_ssn("12345XXXX") == "xxxx" + hashlib.sha256(b"12345xxxx").hexdigest()
    assert hash_ssn("6789") == "6789" + hashlib.sha256(b"xxxxx6789").hexdigest()


def test_clarity_csv_lines() -> None:
    assert format_row(["1", "O'Neil, Jr", "", "2024-01-01"], [True, True, True, False]) == (
        '"1","O\'Neil, Jr",,2024-01-01\n'
    )
    assert format_row(['say "hi"', "3"], [True, False]) == '"say ""hi""",3\n'


def test_clarity_compact_ids() -> None:
    assert ck("12345") == 12345
    assert ck("0123") == "0123"  # a leading zero keeps it a string (no clash with 123)
    assert ck("0") == 0
    assert ck("s_1") == "s_1"
    assert ck("１２") == "１２"
