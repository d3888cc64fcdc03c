"""Inbound partner CSV files: a roster mapped row by row to records or consents.

A record mapping (``kind = "client"``, ``"referral"`` …) turns each row into a canonical
record owned by the importing agency and ingests them through the engine (stored, linked,
routed through the consent gate). A consent mapping (``kind = "consent"``) turns each row
into an MPA consent record, validated like ``hub consent import``, and stores the valid ones.

A bad row is reported (file, line, column, what is wrong — never the cell's value) and left
out; the other rows are imported. A row whose quote is never closed swallows the lines below
it into one row: that row is reported and the lines after its first are read again. A file
whose header lacks a mapped column or repeats one, or that is not UTF-8 text, is refused as
a whole. A consent roster speaks for the importing agency: a row whose ``recorded_by`` names
another agency is reported and left out.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consent.parsing import ConsentValidationError, parse_consent
from hub.core.records import Provenance, Record, RecordMeta, SourceKey
from hub.core.serialize import record_from_payload
from plugins.csv.birthdates import settle as settle_birth_date
from plugins.csv.mapping import (
    CONSENT,
    CellError,
    CsvMapping,
    get_path,
    set_path,
    version_of,
)

if TYPE_CHECKING:
    from consent import ConsentRecord
    from hub.context import HubContext

INGEST_CHUNK = 1000


class CsvFileError(ValueError):
    """The file as a whole cannot be imported (names the file and, where known, the line)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where it is and what is wrong (never the cell's value)."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}"
        if self.column:
            where += f" column {self.column!r}"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The error as a JSON object."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass
class ImportSummary:
    """What an import did."""

    file: str
    mapping: str
    agency: str
    kind: str
    rows: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        """Rows left out because of an error."""
        return len({e.line for e in self.errors})

    def to_json(self) -> dict[str, Any]:
        """The summary as printed by ``hub import csv``."""
        return {
            "file": self.file,
            "mapping": self.mapping,
            "agency": self.agency,
            "kind": self.kind,
            "rows": self.rows,
            "imported": self.imported,
            "rejected": self.rejected,
            "outcomes": self.outcomes,
            "errors": [e.to_json() for e in self.errors],
        }


class _RowProblem(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


# ---- reading -------------------------------------------------------------------------------


def load_text(path: Path) -> tuple[str, datetime]:
    """The file's text (UTF-8, a BOM allowed) and modification time; :class:`CsvFileError`."""
    try:
        data = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig"), mtime
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_rows(
    path: Path, text: str, mapping: CsvMapping
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """(line, cells by column) per data row of ``text`` (read from ``path``), or
    (line, RowError) for a malformed row.

    Raises :class:`CsvFileError` when the text is not CSV or lacks a mapped column.
    """
    # The physical lines as csv counts them, so that reading can start again after a row
    # whose unterminated quote swallowed the lines below it.
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(lines, delimiter=mapping.delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvFileError(f"{path} line 1: not valid CSV: {exc}") from None
    if header is None:
        raise CsvFileError(f"{path}: empty file (no header line)")
    header = [h.strip() for h in header]
    missing = [c for c in mapping.needed_columns if c not in header]
    if missing:
        raise CsvFileError(
            f"{path} line 1: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"that mapping {mapping.name!r} needs"
        )
    twice = [c for c in dict.fromkeys(mapping.needed_columns) if header.count(c) > 1]
    if twice:
        raise CsvFileError(
            f"{path} line 1: column(s) {', '.join(repr(c) for c in twice)} that mapping "
            f"{mapping.name!r} reads appear more than once"
        )
    name = str(path)
    base = 0  # lines before the current reader's first
    end = reader.line_num
    while True:
        start = end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A row csv cannot read (a field over csv's size limit): report it, read on.
            yield (
                start,
                RowError(
                    name,
                    start,
                    None,
                    f"not valid CSV: {exc}; the lines after line {start} are read again",
                ),
            )
            reader = csv.reader(lines[start:], delimiter=mapping.delimiter)
            base = end = start
            continue
        end = base + reader.line_num
        if not any(v.strip() for v in values):
            continue
        if (
            end > start
            and '"' in lines[start - 1]
            and (len(values) != len(header) or not _strict_csv(lines[start - 1 : end], mapping))
        ):
            # A quote left open swallows the lines below it until some later quote closes
            # it, whatever the number of cells that makes.
            yield (
                start,
                RowError(
                    name,
                    start,
                    None,
                    f"unterminated quote: lines {start} to {end} read as one row of "
                    f"{len(values)} cells; the lines after line {start} are read again",
                ),
            )
            reader = csv.reader(lines[start:], delimiter=mapping.delimiter)
            base = end = start
            continue
        if len(values) != len(header):
            yield (
                start,
                RowError(
                    name, start, None, f"row has {len(values)} cells, the header has {len(header)}"
                ),
            )
            continue
        yield start, dict(zip(header, values, strict=True))


def _strict_csv(lines: list[str], mapping: CsvMapping) -> bool:
    """Whether ``lines`` read as well-formed CSV: every quoted cell closed and followed by
    a delimiter or the end of its line (how a row that swallowed others gives itself away)."""
    try:
        for _ in csv.reader(lines, delimiter=mapping.delimiter, strict=True):
            pass
    except csv.Error:
        return False
    return True


def map_row(
    mapping: CsvMapping, cells: Mapping[str, str]
) -> tuple[dict[str, Any], list[_RowProblem]]:
    """The canonical payload of a row and the problems of its cells."""
    payload: dict[str, Any] = {}
    problems: list[_RowProblem] = []
    for col in mapping.columns:
        cell = cells.get(col.column, "").strip()
        if not cell:
            if col.required:
                problems.append(_RowProblem(col.column, "required, but blank"))
            continue
        try:
            set_path(payload, col.path, col.to_canonical(cell))
        except CellError as exc:
            problems.append(_RowProblem(col.column, str(exc)))
    for path, value in mapping.defaults.items():
        if get_path(payload, path) is None:
            set_path(payload, path, value)
    if mapping.kind == "client":
        settle_birth_date(payload)
    return payload, problems


# ---- records -------------------------------------------------------------------------------


def _version(mapping: CsvMapping, cells: Mapping[str, str], default: str) -> str:
    if mapping.version_column is None:
        return default
    cell = cells.get(mapping.version_column, "").strip()
    if not cell:
        return default
    try:
        when = (
            datetime.strptime(cell, mapping.version_format)
            if mapping.version_format
            else datetime.fromisoformat(cell)
        )
    except ValueError:
        raise _RowProblem(
            mapping.version_column,
            f"not a date-time in the form {mapping.version_format or 'ISO 8601'}",
        ) from None
    return version_of(when)


def build_record(
    mapping: CsvMapping,
    cells: Mapping[str, str],
    *,
    agency: str,
    source: str,
    default_version: str,
    received_at: datetime,
) -> Record:
    """The canonical record of one row (raises ``_RowProblem`` for the first bad cell)."""
    payload, problems = map_row(mapping, cells)
    if problems:
        raise problems[0]
    assert mapping.id_column is not None
    source_id = cells.get(mapping.id_column, "").strip()
    if not source_id:
        raise _RowProblem(mapping.id_column, "required: the record id is blank")
    client = payload.get("client")
    if isinstance(client, dict) and client.get("id") and not client.get("source"):
        client["source"] = source
    raw = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(cells.items()))
    meta = RecordMeta(
        kind=mapping.kind,
        key=SourceKey(source, source_id),
        owner=agency,
        provenance=Provenance(
            f"csv:{mapping.name}", received_at, hashlib.sha256(raw.encode()).hexdigest()
        ),
        version=_version(mapping, cells, default_version),
    )
    try:
        return record_from_payload(meta, payload)
    except (TypeError, ValueError):
        raise _unbuildable(mapping, meta, payload) from None


def _column_of(mapping: CsvMapping, path: tuple[str, ...]) -> str | None:
    return next((c.column for c in mapping.columns if c.path == path), None)


_MISSING_ARGUMENT = re.compile(r"missing \d+ required [a-z -]*arguments?: '(\w+)'")


def _unbuildable(mapping: CsvMapping, meta: RecordMeta, payload: Mapping[str, Any]) -> _RowProblem:
    """Why a row's payload makes no record, naming the element and its columns.

    Each top-level field (each item of a list) is built alone to find the first that fails.
    The builder's message is not passed on (a value could be in it): only the name of a
    missing field is taken from it.
    """
    for key, value in payload.items():
        items: list[tuple[int | None, Any]] = (
            list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        )
        for index, item in items:
            try:
                record_from_payload(meta, {key: [item] if index is not None else item})
            except (TypeError, ValueError) as exc:
                element = (key,) if index is None else (key, str(index))
                columns = [c.column for c in mapping.columns if c.path[: len(element)] == element]
                where = ".".join(element)
                found = _MISSING_ARGUMENT.search(str(exc))
                if found is None:
                    why = f"{where} is not a valid {key} value"
                else:
                    missing = (*element, found.group(1))
                    why = f"{'.'.join(missing)} is required when {where} has any other field"
                    # The column of the missing field, when one is mapped, is the one to fill.
                    columns.sort(key=lambda c: c != _column_of(mapping, missing))
                if columns:
                    why += f" (columns {', '.join(repr(c) for c in columns)})"
                return _RowProblem(columns[0] if columns else None, why)
    return _RowProblem(None, f"cannot build a {mapping.kind} record from this row")


async def import_records(
    ctx: HubContext, path: Path, mapping: CsvMapping, agency: str
) -> ImportSummary:
    """Import a roster of records (see the module docstring)."""
    if mapping.id_column is None:
        raise CsvFileError(
            f"mapping {mapping.name!r} has no id_column, so it cannot import records"
        )
    summary = ImportSummary(str(path), mapping.name, agency, mapping.kind)
    source = mapping.source or f"csv:{agency}"
    text, mtime = await asyncio.to_thread(load_text, path)
    default_version = mtime.isoformat(timespec="microseconds")
    received = datetime.now(UTC)
    records: list[Record] = []
    first_line: dict[str, int] = {}
    for line, cells in read_rows(path, text, mapping):
        summary.rows += 1
        if isinstance(cells, RowError):
            summary.errors.append(cells)
            continue
        try:
            record = build_record(
                mapping,
                cells,
                agency=agency,
                source=source,
                default_version=default_version,
                received_at=received,
            )
        except _RowProblem as p:
            summary.errors.append(RowError(str(path), line, p.column, p.message))
            continue
        earlier = first_line.setdefault(record.meta.key.id, line)
        if earlier != line:
            summary.errors.append(
                RowError(str(path), line, mapping.id_column, f"same record id as line {earlier}")
            )
            continue
        records.append(record)
    for start in range(0, len(records), INGEST_CHUNK):
        result = await ctx.engine.ingest(records[start : start + INGEST_CHUNK])
        for outcome, n in result.counts().items():
            summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + n
    summary.imported = len(records)
    return summary


# ---- consents ------------------------------------------------------------------------------


async def import_consent_rows(
    ctx: HubContext, path: Path, mapping: CsvMapping, agency: str
) -> ImportSummary:
    """Import a consent roster: each valid row becomes an MPA consent record."""
    summary = ImportSummary(str(path), mapping.name, agency, CONSENT)
    good: list[tuple[int, ConsentRecord]] = []
    first_line: dict[str, int] = {}
    text, _mtime = await asyncio.to_thread(load_text, path)
    for line, cells in read_rows(path, text, mapping):
        summary.rows += 1
        if isinstance(cells, RowError):
            summary.errors.append(cells)
            continue
        payload, problems = map_row(mapping, cells)
        if problems:
            p = problems[0]
            summary.errors.append(RowError(str(path), line, p.column, p.message))
            continue
        recorded_by = payload.setdefault("recorded_by", agency)
        if recorded_by != agency:
            # The roster is the importing agency's word: it may not speak for another.
            summary.errors.append(
                RowError(
                    str(path),
                    line,
                    mapping.column_of("recorded_by"),
                    "consent field 'recorded_by': names another agency than the importing one",
                )
            )
            continue
        try:
            record = parse_consent(
                payload, agencies=ctx.config.agencies, policy=ctx.config.consent_policy, index=line
            )
        except ConsentValidationError as exc:
            column = mapping.column_of(exc.field)
            summary.errors.append(
                RowError(str(path), line, column, f"consent field {exc.field!r}: {exc.problem}")
            )
            continue
        earlier = first_line.setdefault(record.id, line)
        if earlier != line:
            summary.errors.append(
                RowError(
                    str(path), line, mapping.column_of("id"), f"same consent id as line {earlier}"
                )
            )
            continue
        good.append((line, record))
    try:
        await ctx.import_consents([r for _, r in good])
        summary.imported = len(good)
    except ValueError:
        # One ambiguous client reference refuses the whole batch: take them one by one.
        for line, record in good:
            try:
                await ctx.import_consents([record])
            except ValueError as exc:
                summary.errors.append(
                    RowError(str(path), line, mapping.column_of("client"), str(exc))
                )
            else:
                summary.imported += 1
    summary.errors.sort(key=lambda e: e.line)
    return summary


async def import_csv(
    ctx: HubContext, path: Path, mapping: CsvMapping, agency: str
) -> ImportSummary:
    """Import a partner CSV file with a mapping, as ``agency``; see the module docstring."""
    if agency not in ctx.config.agencies:
        raise CsvFileError(f"unknown agency {agency!r}: it must be an [[agencies]] id")
    if mapping.kind == CONSENT:
        return await import_consent_rows(ctx, path, mapping, agency)
    return await import_records(ctx, path, mapping, agency)
