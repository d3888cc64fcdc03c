"""Partner CSV and birth dates known only to the year or month: read and written at the
precision known; a format that needs a day never gets a made-up one silently."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from typing import Any

import pytest

from hub.core.ports import Delivery
from hub.core.records import Client
from hub.core.serialize import record_payload
from hub.plugin_api import CodecError
from hub.synthetic import client
from plugins.csv.codec import CLIENT_ROSTER, CsvCodec, mapping_of
from plugins.csv.sink import render_csv


def roster(fmt: str | None, *, precision_column: bool = False) -> CsvCodec:
    dob: dict[str, Any] = {"column": "DOB", "field": "birth_date"}
    if fmt:
        dob["format"] = fmt
    columns = [{"column": "Last Name", "field": "names.0.family"}, dob]
    if precision_column:
        columns.append({"column": "DOB Precision", "field": "birth_date_precision"})
    return CsvCodec(mapping_of("roster", {"kind": "client", "id_column": "ID", "columns": columns}))


def born(precision: str, day: date) -> Client:
    return dataclasses.replace(client("1"), birth_date=day, birth_date_precision=precision)


def cells(codec: CsvCodec, record: Client) -> dict[str, str]:
    header, row = codec.encode([record]).decode().splitlines()
    return dict(zip(header.split(","), row.split(","), strict=True))


def read_back(codec: CsvCodec, record: Client) -> tuple[date | None, str]:
    (back,) = codec.decode(codec.encode([record]), source="csv:p", owner="shelter-a")
    assert isinstance(back, Client)
    return back.birth_date, back.birth_date_precision


@pytest.mark.parametrize(
    ("precision", "day", "cell"),
    [("year", date(1980, 1, 1), "1980"), ("month", date(1980, 5, 1), "1980-05")],
)
def test_csv_iso_birth_dates_are_written_and_read_at_their_precision(
    precision: str, day: date, cell: str
) -> None:
    codec = CsvCodec(CLIENT_ROSTER)
    assert cells(codec, born(precision, day))["Birth Date"] == cell
    assert read_back(codec, born(precision, day)) == (day, precision)


def test_csv_a_day_format_leaves_a_partial_birth_date_blank_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    codec = roster("%m/%d/%Y")
    with caplog.at_level(logging.WARNING, logger="hub.csv"):
        row = cells(codec, born("month", date(1980, 5, 1)))
    assert row["DOB"] == ""  # not 05/01/1980: that day was never reported
    [message] = [r.getMessage() for r in caplog.records if r.name == "hub.csv"]
    assert "'roster'" in message and "'DOB'" in message and "month" in message
    assert "1980" not in message  # no client data in the log
    assert cells(codec, born("", date(1980, 5, 17)))["DOB"] == "05/17/1980"


def test_csv_a_day_format_writes_the_first_day_when_the_row_says_it_is_partial() -> None:
    codec = roster("%m/%d/%Y", precision_column=True)
    row = cells(codec, born("month", date(1980, 5, 1)))
    assert (row["DOB"], row["DOB Precision"]) == ("05/01/1980", "month")
    assert read_back(codec, born("month", date(1980, 5, 1))) == (date(1980, 5, 1), "month")
    # What a partner sends is settled the same way: the precision column says how much of
    # the date is known (its words are checked), the date is held as its period's first day.
    data = b"Last Name,DOB,DOB Precision,ID\r\nDoe,05/17/1980,month,7\r\nRoe,05/17/1980,Day,8\r\n"
    month, day = codec.decode(data, source="s", owner="o")
    assert isinstance(month, Client) and isinstance(day, Client)
    assert (month.birth_date, month.birth_date_precision) == (date(1980, 5, 1), "month")
    assert (day.birth_date, day.birth_date_precision) == (date(1980, 5, 17), "")
    with pytest.raises(CodecError, match="DOB Precision"):
        codec.decode(
            b"Last Name,DOB,DOB Precision,ID\r\nDoe,05/17/1980,decade,7\r\n", source="s", owner="o"
        )


def test_csv_a_format_without_a_day_reads_and_writes_a_month() -> None:
    codec = roster("%m/%Y")
    assert cells(codec, born("month", date(1980, 5, 1)))["DOB"] == "05/1980"
    assert read_back(codec, born("month", date(1980, 5, 1))) == (date(1980, 5, 1), "month")
    (record,) = codec.decode(b"Last Name,DOB,ID\r\nDoe,05/1980,7\r\n", source="s", owner="o")
    assert isinstance(record, Client)
    assert (record.birth_date, record.birth_date_precision) == (date(1980, 5, 1), "month")


def test_csv_sink_files_never_carry_a_made_up_day() -> None:
    codec = roster("%m/%d/%Y")
    delivery = Delivery(
        1, "feed", "cie-211", "k1", None, record_payload(born("year", date(1980, 1, 1))), {}
    )
    text = render_csv(codec.mapping, [delivery], None).decode()
    assert text.splitlines()[1] == "Alvarez,"
    iso = render_csv(CsvCodec(CLIENT_ROSTER).mapping, [delivery], None).decode()
    assert ",1980," in iso.splitlines()[1]
