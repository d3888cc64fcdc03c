"""HUD CSV has no partial dates: a client born "1980" or "May 1980" is written to Client.csv
as the first day of that period, flagged DOBDataQuality 2 (approximate or partial DOB)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date

import pytest

from hub.core.records import Client
from hub.synthetic import client
from plugins.clarity.codec import ClientCsvCodec
from plugins.clarity.spec import FY2024, FY2026


def row_of(record: Client, version: str = FY2026) -> dict[str, str]:
    text = ClientCsvCodec(version).encode([record]).decode()
    return next(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("version", [FY2024, FY2026])
@pytest.mark.parametrize(
    ("birth", "precision", "dob"),
    [(date(1980, 1, 1), "year", "1980-01-01"), (date(1980, 5, 1), "month", "1980-05-01")],
)
def test_clarity_a_partial_dob_is_its_first_day_with_quality_2(
    version: str, birth: date, precision: str, dob: str
) -> None:
    record = dataclasses.replace(client("1"), birth_date=birth, birth_date_precision=precision)
    row = row_of(record, version)
    assert (row["DOB"], row["DOBDataQuality"]) == (dob, "2")
    # A quality the record carries is its own (nothing else is made up).
    rated = row_of(dataclasses.replace(record, birth_date_quality="8"), version)
    assert (rated["DOB"], rated["DOBDataQuality"]) == (dob, "8")
    (back,) = ClientCsvCodec(version).decode(
        ClientCsvCodec(version).encode([record]), source="hmis:x", owner="shelter-a"
    )
    assert isinstance(back, Client)
    # Read back it is what HUD says: a full date whose quality says it is partial.
    assert (back.birth_date, back.birth_date_quality, back.birth_date_precision) == (
        birth,
        "2",
        "",
    )
