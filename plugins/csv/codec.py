"""The partner CSV codec: records of one kind to and from a CSV file laid out by a mapping.

A :class:`CsvCodec` is driven by one ``[csv.mappings.<name>]`` mapping (see
:mod:`plugins.csv.mapping`): encoding writes the mapping's header, then one row per record
(codes mapped back, dates formatted, list items joined), the record id in ``id_column`` and
its version in ``version_column``; decoding reads rows exactly as ``hub import csv`` does
(:func:`plugins.csv.importer.read_rows` and :func:`~plugins.csv.importer.map_row`) and
builds records keyed in the caller's ``source``. The first bad row refuses the data with a
:class:`CodecError` naming its line and column, never the cell's value.

:data:`CLIENT_ROSTER` is the layout the plugin offers as its ``csv`` codec: a client
roster with one name, one identifier and the HUD demographics.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.plugin_api import (
    CodecError,
    Provenance,
    Record,
    RecordMeta,
    SourceKey,
    payload_hash,
    record_from_payload,
    record_payload,
)
from plugins.csv.importer import CsvFileError, RowError, map_row, read_rows
from plugins.csv.mapping import CsvMapping, parse_mapping, partner_cells, version_of

CLIENT_ROSTER_TABLE: dict[str, Any] = {
    "kind": "client",
    "id_column": "Record ID",
    "version_column": "Updated",
    "columns": [
        {"column": "Identifier", "field": "identifiers.0.value"},
        {"column": "Identifier System", "field": "identifiers.0.system"},
        {"column": "Identifier Type", "field": "identifiers.0.type"},
        {"column": "Family Name", "field": "names.0.family"},
        {"column": "Given Name", "field": "names.0.given.0"},
        {"column": "Middle Name", "field": "names.0.given.1"},
        {"column": "Name Use", "field": "names.0.use"},
        {"column": "Birth Date", "field": "birth_date"},
        {"column": "SSN", "field": "ssn"},
        {"column": "Name Quality", "field": "name_quality"},
        {"column": "SSN Quality", "field": "ssn_quality"},
        {"column": "Birth Date Quality", "field": "birth_date_quality"},
        {"column": "Sex", "field": "sex"},
        {"column": "Gender", "field": "gender", "split": ";"},
        {"column": "Race", "field": "race", "split": ";"},
        {"column": "Ethnicity", "field": "ethnicity"},
        {"column": "Veteran Status", "field": "veteran_status"},
    ],
}
"""The client roster layout, as a ``[csv.mappings.<name>]`` table would give it."""


def mapping_of(name: str, table: Mapping[str, Any]) -> CsvMapping:
    """A mapping from a table; ``ValueError`` with the first problem when it is not valid."""
    errors: list[str] = []
    mapping = parse_mapping(name, table, errors)
    if mapping is None or errors:
        raise ValueError(errors[0] if errors else f"mapping {name!r} is not valid")
    return mapping


CLIENT_ROSTER: CsvMapping = mapping_of("client-roster", CLIENT_ROSTER_TABLE)


def _top_fields(mapping: CsvMapping) -> frozenset[str]:
    """Fields a mapping fills as a whole: single-segment paths (``birth_date``, ``race``)."""
    return frozenset(c.path[0] for c in mapping.columns if len(c.path) == 1)


class CsvCodec:
    """Records of one kind as CSV laid out by a mapping (codec ``csv:<mapping name>``).

    ``carries`` defaults to the fields the mapping fills whole, plus ``key`` and ``version``
    when the mapping has id and version columns; a mapping that fills nested fields
    (``names.0.family``) says what it carries by passing ``carries``.
    """

    def __init__(
        self,
        mapping: CsvMapping,
        *,
        name: str | None = None,
        carries: frozenset[str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.name = name or f"csv:{mapping.name}"
        self.kinds = frozenset({mapping.kind})
        fields = _top_fields(mapping)
        if mapping.id_column:
            fields |= {"key"}
        if mapping.version_column:
            fields |= {"version"}
        self.carries = {mapping.kind: carries if carries is not None else fields}

    # ---- encoding -----------------------------------------------------------------------

    def header(self) -> list[str]:
        """The columns written: the mapped ones, then the id and version columns."""
        extra = [c for c in (self.mapping.id_column, self.mapping.version_column) if c]
        return [*self.mapping.header, *(c for c in extra if c not in self.mapping.header)]

    def encode(self, records: Sequence[Record]) -> bytes:
        """The CSV (UTF-8, CRLF, header first) of the records; :class:`CodecError` for a
        record of another kind."""
        mapping = self.mapping
        out = io.StringIO()
        writer = csv.writer(out, delimiter=mapping.delimiter, lineterminator="\r\n")
        header = self.header()
        writer.writerow(header)
        for index, record in enumerate(records, start=1):
            if record.meta.kind != mapping.kind:
                raise CodecError(
                    f"a {record.meta.kind} record in a {mapping.kind} file",
                    location=f"record {index}",
                )
            payload = record_payload(record)
            cells = dict(zip(mapping.header, partner_cells(mapping, payload), strict=True))
            if mapping.id_column and not cells.get(mapping.id_column):
                cells[mapping.id_column] = record.meta.key.id
            if mapping.version_column and not cells.get(mapping.version_column):
                cells[mapping.version_column] = _version_text(record.meta.version, mapping)
            writer.writerow([cells.get(c, "") for c in header])
        return out.getvalue().encode("utf-8")

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, data: bytes, *, source: str, owner: str) -> list[Record]:
        """The records of the CSV (see the module docstring)."""
        mapping = self.mapping
        if not mapping.id_column:
            raise CodecError(
                f"mapping {mapping.name!r} has no id_column, so it cannot read records",
                location="mapping",
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CodecError("not UTF-8 text", location=f"byte {exc.start}") from None
        received = datetime.now(UTC)
        name = Path(f"{mapping.name}.csv")
        records: list[Record] = []
        try:
            for line, cells in read_rows(name, text, mapping):
                if isinstance(cells, RowError):
                    raise CodecError(cells.message, location=_where(cells.line, cells.column))
                records.append(self._record(line, cells, source, owner, received))
        except CsvFileError as exc:
            reason = str(exc).removeprefix(f"{name} ").removeprefix(f"{name}: ")
            where, _, what = reason.partition(": ")
            if not what:
                where, what = "file", reason
            raise CodecError(what, location=where) from None
        return records

    def _record(
        self, line: int, cells: Mapping[str, str], source: str, owner: str, received: datetime
    ) -> Record:
        mapping = self.mapping
        payload, problems = map_row(mapping, cells)
        if problems:
            raise CodecError(problems[0].message, location=_where(line, problems[0].column))
        assert mapping.id_column is not None
        record_id = cells.get(mapping.id_column, "").strip()
        if not record_id:
            raise CodecError("the record id is blank", location=_where(line, mapping.id_column))
        client = payload.get("client")
        if isinstance(client, dict) and client.get("id") and not client.get("source"):
            client["source"] = source
        raw = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(cells.items()))
        meta = RecordMeta(
            kind=mapping.kind,
            key=SourceKey(source, record_id),
            owner=owner,
            provenance=Provenance(f"csv:{mapping.name}", received, payload_hash(raw)),
            version=self._version(line, cells, received),
        )
        try:
            return record_from_payload(meta, payload)
        except (TypeError, ValueError):
            raise CodecError(
                f"the row cannot be read as a {mapping.kind} record", location=_where(line, None)
            ) from None

    def _version(self, line: int, cells: Mapping[str, str], received: datetime) -> str:
        column = self.mapping.version_column
        cell = cells.get(column, "").strip() if column else ""
        if not column or not cell:
            return received.replace(tzinfo=None).isoformat(timespec="microseconds")
        fmt = self.mapping.version_format
        try:
            when = datetime.strptime(cell, fmt) if fmt else datetime.fromisoformat(cell)
        except ValueError:
            raise CodecError(
                f"not a date-time in the form {fmt or 'ISO 8601'}", location=_where(line, column)
            ) from None
        return version_of(when)


def _version_text(version: str, mapping: CsvMapping) -> str:
    """A record version as the version column writes it (formatted when it is a date-time)."""
    if not mapping.version_format:
        return version
    try:
        return datetime.fromisoformat(version).strftime(mapping.version_format)
    except ValueError:
        return version


def _where(line: int, column: str | None) -> str:
    return f"line {line} column {column!r}" if column else f"line {line}"


def client_roster_codec() -> CsvCodec:
    """The plugin's ``csv`` codec: :data:`CLIENT_ROSTER`, carrying the first name and the
    first identifier whole, and a birth date at its precision (ISO: ``1980``, ``1980-05``)."""
    return CsvCodec(
        CLIENT_ROSTER,
        name="csv",
        carries=_top_fields(CLIENT_ROSTER)
        | {"key", "version", "names", "identifiers", "birth_date_precision"},
    )
