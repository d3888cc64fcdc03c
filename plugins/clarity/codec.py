"""The HUD HMIS ``Client.csv`` codec: Client records to and from Client.csv rows.

Decoding reads the header by name (any order, any case, FY2024 or FY2026 — FY2026 is known
by its ``Sex`` column), puts each row's cells in spec column order and builds the Client with
the importer's own row mapping (:func:`plugins.clarity.mapping.build_client`): names, DOB,
SSN as given, data quality, race, ethnicity, gender (FY2024) or sex (FY2026), veteran
status. The record is keyed ``SourceKey(source, PersonalID)``, versioned by ``DateUpdated``
and deleted when ``DateDeleted`` is set. A record carrying its original row (read from HUD
CSV) is written back as that row; any other Client is laid out from its canonical fields
(HUD CSV has no partial dates: a birth year or month is written as its first day with
``DOBDataQuality`` 2 unless the record carries a quality of its own).

This is one file of an export, for connectors that move Client rows alone; a whole export
(24 files, ownership from enrollments) goes through ``hub import clarity``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime

from hub.core.partial_dates import first_day, is_partial
from hub.plugin_api import Client, CodecError, Record
from plugins.clarity.csvio import format_row, header_line
from plugins.clarity.dates import normalise_datetime, version_of
from plugins.clarity.mapping import (
    GENDER_CODES,
    HISPANIC,
    NOT_HISPANIC,
    RACE_CODES,
    SEX_CODES,
    BuildContext,
    Layout,
    build_client,
    make_meta,
    raw_hash,
)
from plugins.clarity.records import HmisClient
from plugins.clarity.spec import FY2024, FY2026, columns, rename_column
from plugins.clarity.validate import LOWEST_DATE

FILE = "Client"
CSV_NAME = "Client.csv"
_SEX_COLUMN = {v: k for k, v in SEX_CODES.items()}
PARTIAL_DOB = "2"
"""DOBDataQuality (HUD list 3.03.2): approximate or partial DOB reported."""
_LEGACY_SEX = {"F": "female", "M": "male"}
"""Canonical sex is ``female``/``male``/…; F/M is what hubs once stored from FHIR."""


def _carries(version: str) -> frozenset[str]:
    common = {
        "key",
        "version",
        "deleted",
        "identifiers",
        "names",
        "birth_date",
        "ssn",
        "name_quality",
        "ssn_quality",
        "birth_date_quality",
        "race",
        "ethnicity",
        "veteran_status",
    }
    return frozenset(common | ({"gender"} if version == FY2024 else {"sex"}))


class ClientCsvCodec:
    """Client records as HUD HMIS ``Client.csv`` (codec ``hud-client-csv``)."""

    kinds = frozenset({"client"})

    def __init__(self, version: str = FY2024, *, export_id: str = "") -> None:
        if version not in (FY2024, FY2026):
            raise ValueError(f"csv version must be {FY2024} or {FY2026}")
        self.version = version
        self.export_id = export_id
        self.name = "hud-client-csv" if version == FY2024 else "hud-client-csv-2026"
        self.carries = {"client": _carries(version)}

    # ---- encoding -----------------------------------------------------------------------

    def encode(self, records: Sequence[Record]) -> bytes:
        """The header and one row per client, in HUD style (strings quoted, ``\\n`` ends)."""
        cols = columns(self.version, FILE)
        quoted = [c.type == "S" for c in cols]
        lines = [header_line(cols)]
        for index, record in enumerate(records, start=1):
            if not isinstance(record, Client):
                raise CodecError(
                    f"a {record.meta.kind} record is not a Client.csv row",
                    location=f"record {index}",
                )
            lines.append(format_row(self.row(record), quoted))
        return "".join(lines).encode("utf-8")

    def row(self, client: Client) -> list[str]:
        """The Client.csv cells of a client, in the target version's column order."""
        names = [c.name for c in columns(self.version, FILE)]
        if isinstance(client, HmisClient) and client.hmis_columns:
            source = [c.name for c in columns(client.hmis_version or FY2024, FILE)]
            kept = dict(zip(source, client.hmis_columns, strict=False))
            other = FY2024 if self.version == FY2026 else FY2026
            values = [
                kept.get(n, kept.get(rename_column(FILE, n, self.version, other), ""))
                for n in names
            ]
        else:
            cells = self._cells(client)
            values = [cells.get(n, "") for n in names]
        if "ExportID" in names:
            values[names.index("ExportID")] = self.export_id
        return values

    def _cells(self, client: Client) -> dict[str, str]:
        name = client.names[0] if client.names else None
        given = list(name.given) if name else []
        stamp = _stamp(client.meta.version)
        race = set(client.race)
        cells: dict[str, str] = {
            "PersonalID": client.meta.key.id,
            "FirstName": given[0] if given else "",
            "MiddleName": " ".join(given[1:]),
            "LastName": name.family if name else "",
            "NameSuffix": name.suffix if name else "",
            "NameDataQuality": client.name_quality,
            "SSN": client.ssn or "",
            "SSNDataQuality": client.ssn_quality,
            "DOB": client.birth_date.isoformat() if client.birth_date else "",
            "DOBDataQuality": client.birth_date_quality,
            "VeteranStatus": client.veteran_status,
            "DateCreated": stamp,
            "DateUpdated": stamp,
            "DateDeleted": stamp if client.meta.deleted else "",
        }
        if client.birth_date is not None and is_partial(client.birth_date_precision):
            # HUD CSV has no partial dates: a birth year or month is written as its first
            # day, flagged DOBDataQuality 2 ("approximate or partial DOB reported") unless
            # the record carries its own quality. Nothing else is made up.
            cells["DOB"] = first_day(client.birth_date, client.birth_date_precision).isoformat()
            cells["DOBDataQuality"] = client.birth_date_quality or PARTIAL_DOB
        # Canonical race is CDC codes; HUD column names are what hubs once stored from FHIR.
        race = {RACE_CODES.get(value, value) for value in race}
        for column, code in RACE_CODES.items():
            cells[column] = "1" if code in race else "0"
        if not race:
            cells["RaceNone"] = "99"
        hispanic = {HISPANIC: "1", NOT_HISPANIC: "0"}.get(client.ethnicity, "99")
        cells["HispanicLatinaeo" if self.version == FY2024 else "HispanicLatinao"] = hispanic
        if self.version == FY2024:
            for column, code in GENDER_CODES.items():
                cells[column] = "1" if code in client.gender else "0"
            if not client.gender:
                cells["GenderNone"] = "99"
        else:
            cells["Sex"] = _SEX_COLUMN.get(_LEGACY_SEX.get(client.sex, client.sex), "99")
        return cells

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The clients of a Client.csv (FY2024 or FY2026; see the module docstring)."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CodecError("not UTF-8 text", location=f"{CSV_NAME} byte {exc.start}") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
        except csv.Error:
            raise CodecError("the header is not CSV", location=f"{CSV_NAME} line 1") from None
        if not header:
            raise CodecError("empty file (no header line)", location=f"{CSV_NAME} line 1")
        found = {h.strip().lower(): i for i, h in enumerate(header)}
        version = FY2026 if "sex" in found and "woman" not in found else FY2024
        layout = Layout(version, FILE)
        index = [found.get(n.lower(), -1) for n in layout.names]
        for required in ("PersonalID", "DateUpdated"):
            if index[layout.ix[required]] < 0:
                raise CodecError(
                    "required column is missing", location=f"{CSV_NAME} line 1 column {required}"
                )
        received = datetime.now(UTC)
        context = BuildContext(source, "", received, "hud-client-csv", "1")
        records: list[Record] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                raise CodecError(
                    "the row is not CSV", location=f"{CSV_NAME} line {reader.line_num}"
                ) from None
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise CodecError(
                    f"the row has {len(row)} cells, the header {len(header)}",
                    location=f"{CSV_NAME} line {line}",
                )
            values = [row[i].strip() if i >= 0 else "" for i in index]
            records.append(self._client(context, layout, values, line, owner))
        return records

    def _client(
        self, context: BuildContext, layout: Layout, values: list[str], line: int, owner: str
    ) -> Record:
        def where(column: str) -> str:
            return f"{CSV_NAME} line {line} column {column}"

        pid = values[0]
        if not pid:
            raise CodecError("required value is blank", location=where("PersonalID"))
        updated = normalise_datetime(values[layout.updated])
        if updated is None:
            raise CodecError("not a date-time (YYYY-MM-DD hh:mm:ss)", location=where("DateUpdated"))
        dob = values[layout["DOB"]]
        birth_ok = bool(dob) and LOWEST_DATE <= dob <= date.today().isoformat()
        meta = make_meta(
            context,
            "client",
            pid,
            owner,
            False,
            version_of(updated[0]),
            bool(values[layout.deleted]),
            raw_hash(values),
        )
        return build_client(context, layout, values, meta, birth_ok)


def _stamp(version: str) -> str:
    """A record version as a HUD ``T`` value (``YYYY-MM-DD hh:mm:ss``), else now."""
    try:
        when = datetime.fromisoformat(version)
    except ValueError:
        when = datetime.now(UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%d %H:%M:%S")


CODECS = (ClientCsvCodec,)
"""The codec classes of this module (for the plugin's ``hub_codecs``)."""
