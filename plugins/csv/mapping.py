"""Declarative column mappings between partner CSV columns and canonical fields.

A mapping is a ``[csv.mappings.<name>]`` table in ``hub.toml``::

    [csv.mappings.roster]
    kind = "client"                 # a canonical record kind, or "consent"
    id_column = "Client ID"         # import: the column with the record's id at the partner
    source = "csv:partner-x"        # import: the id namespace (default "csv:<agency>")
    version_column = "Updated"      # import: optional; default the file's modification time
    version_format = "%m/%d/%Y %H:%M"
    delimiter = ","
    defaults = { "identifiers.0.system" = "urn:partner-x" }   # set on every imported record
    columns = [
      { column = "First Name", field = "names.0.given.0" },
      { column = "DOB", field = "birth_date", format = "%m/%d/%Y" },
      { column = "Gender", field = "sex", codes = { F = "Female", M = "Male" } },
      { column = "Services", field = "service_codes", split = ";" },
    ]

``field`` is a path into the canonical payload (``names.0.given.0``: first given name of the
first name). ``format`` is a ``strftime`` pattern for date and date-time fields (ISO when
absent); ``codes`` maps the partner's codes to canonical values (and back on export);
``split`` separates the items of a list field inside one cell; ``required`` rejects a row
whose cell is blank. Error messages name the column and never the cell's value.

Partial birth dates (a client born "1980" or "May 1980"): an ISO ``birth_date`` cell may be
``1980`` or ``1980-05``, and a ``format`` without a day (``%m/%Y``, ``%Y``) reads a month or a
year, never a made-up day. ``birth_date_precision`` may be mapped too (``year``, ``month``;
``day`` or blank for a whole date). On export a partial date is written as partial ISO, or
with a ``format`` no finer than what is known; a finer ``format`` (``%m/%d/%Y``) gets the
first day of the period only when ``birth_date_precision`` is mapped as well (the row then
says the day is a stand-in), else the cell is left blank and a warning naming the mapping
and column is logged. No day is ever invented silently. Details:
:mod:`plugins.csv.birthdates`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hub.core.records import RECORD_TYPES
from plugins.csv.birthdates import (
    BIRTH_DATE,
    BIRTH_PRECISION,
    read_birth_date,
    read_precision,
    write_birth_date,
)

STR, DATE, DATETIME, LIST = "str", "date", "datetime", "list"
CONSENT = "consent"

# The consent record's fields (CONSENT.md) and their leaf types.
CONSENT_FIELDS: dict[str, Any] = {
    "id": STR,
    "client": {"system": STR, "value": STR},
    "signed_on": DATE,
    "expires_on": DATE,
    "method": STR,
    "given_by": STR,
    "networks": LIST,
    "exclude_agencies": LIST,
    "sensitive": LIST,
    "part2_recipients": LIST,
    "purposes": LIST,
    "revoked_on": DATE,
    "recorded_by": STR,
}

_MAPPING_KEYS = frozenset(
    {
        "kind",
        "columns",
        "id_column",
        "source",
        "version_column",
        "version_format",
        "delimiter",
        "defaults",
    }
)
_COLUMN_KEYS = frozenset({"column", "field", "format", "codes", "split", "required"})


class CellError(ValueError):
    """A cell that cannot be mapped; the message names the problem, never the value."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """One column ↔ one canonical field."""

    column: str
    target: str
    path: tuple[str, ...]
    leaf: str
    format: str | None = None
    codes: Mapping[str, str] = field(default_factory=dict)
    split: str | None = None
    required: bool = False

    def to_canonical(self, cell: str) -> Any:
        """The canonical value of a (non-blank, stripped) cell; :class:`CellError` if bad."""
        if self.leaf == LIST:
            items = [s.strip() for s in cell.split(self.split)] if self.split else [cell]
            return [self._code(s) for s in items if s]
        value = self._code(cell)
        if self.path == BIRTH_DATE:
            return _birth_date(value, self.format)
        if self.path == BIRTH_PRECISION:
            word = read_precision(value)
            if word is None:
                raise CellError("not a birth date precision (year, month, day or blank)")
            return word
        if self.leaf == DATE:
            return _parse_date(value, self.format).isoformat()
        if self.leaf == DATETIME:
            return _parse_datetime(value, self.format).isoformat()
        return value

    def _code(self, value: str) -> str:
        if not self.codes:
            return value
        try:
            return self.codes[value]
        except KeyError:
            known = ", ".join(sorted(self.codes))
            raise CellError(f"value is not one of the column's codes ({known})") from None

    def to_partner(self, value: Any) -> str:
        """The cell text of a canonical value (codes mapped back, dates formatted)."""
        if value is None or value == "":
            return ""
        if isinstance(value, list | tuple):
            sep = self.split or ";"
            return sep.join(self._uncode(str(v)) for v in value)
        text = str(value)
        if self.format and self.leaf in (DATE, DATETIME):
            try:
                when = (
                    date.fromisoformat(text) if self.leaf == DATE else datetime.fromisoformat(text)
                )
            except ValueError:
                return text
            return when.strftime(self.format)
        return self._uncode(text)

    def _uncode(self, value: str) -> str:
        if not self.codes:
            return value
        back = {v: k for k, v in self.codes.items()}
        return back.get(value, value)


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """A named mapping: the record kind, its columns and the import settings."""

    name: str
    kind: str
    columns: tuple[ColumnMap, ...]
    id_column: str | None = None
    source: str | None = None
    version_column: str | None = None
    version_format: str | None = None
    delimiter: str = ","
    defaults: Mapping[tuple[str, ...], Any] = field(default_factory=dict)

    @property
    def header(self) -> list[str]:
        """The CSV header of an export: the mapped columns in order."""
        return [c.column for c in self.columns]

    @property
    def needed_columns(self) -> list[str]:
        """Columns an imported file must have: the mapped ones, the id and version columns."""
        extra = [c for c in (self.id_column, self.version_column) if c is not None]
        return [*self.header, *(c for c in extra if c not in self.header)]

    def column_of(self, field_path: str) -> str | None:
        """The column mapped to a field (for error messages), if any."""
        for c in self.columns:
            if c.target == field_path or c.target.startswith(field_path + "."):
                return c.column
        return None


def partner_cells(mapping: CsvMapping, payload: Mapping[str, Any]) -> list[str]:
    """A payload's cells in the mapping's column order (codes mapped back, dates formatted;
    a partial birth date as :mod:`plugins.csv.birthdates` says)."""
    cells: list[str] = []
    for c in mapping.columns:
        if c.path == BIRTH_DATE:
            precision_column = any(o.path == BIRTH_PRECISION for o in mapping.columns)
            where = f"csv mapping {mapping.name!r} column {c.column!r}"
            cells.append(
                write_birth_date(payload, c.format, precision_column=precision_column, where=where)
            )
        else:
            cells.append(c.to_partner(get_path(payload, c.path)))
    return cells


def _birth_date(value: str, fmt: str | None) -> str:
    iso = read_birth_date(value, fmt)
    if iso is None:
        raise CellError(f"not a date in the form {fmt or 'YYYY-MM-DD, YYYY-MM or YYYY'}")
    return iso


def _parse_date(value: str, fmt: str | None) -> date:
    try:
        return datetime.strptime(value, fmt).date() if fmt else date.fromisoformat(value)
    except ValueError:
        raise CellError(f"not a date in the form {fmt or 'YYYY-MM-DD'}") from None


def _parse_datetime(value: str, fmt: str | None) -> datetime:
    try:
        return datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value)
    except ValueError:
        raise CellError(f"not a date-time in the form {fmt or 'ISO 8601'}") from None


# ---- field paths ---------------------------------------------------------------------------


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _leaf_of_type(tp: Any) -> str | None:
    tp = _strip_optional(tp)
    if tp is str:
        return STR
    if tp is date:
        return DATE
    if tp is datetime:
        return DATETIME
    if typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (str,):
        return LIST
    return None


def leaf_of(kind: str, path: Sequence[str]) -> str:
    """The leaf type (str, date, datetime, list) a field path of a kind ends in.

    Raises ``ValueError`` naming the first segment that does not exist or cannot be mapped.
    """
    if not path or any(not p for p in path):
        raise ValueError("field path is empty or has an empty segment")
    if kind == CONSENT:
        node: Any = CONSENT_FIELDS
        for i, seg in enumerate(path):
            if not isinstance(node, dict) or seg not in node:
                raise ValueError(f"unknown field {'.'.join(path[: i + 1])!r} for kind consent")
            node = node[seg]
        if isinstance(node, dict):
            raise ValueError(f"field {'.'.join(path)!r} is not a single value")
        return str(node)
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown kind {kind!r}")
    tp: Any = cls
    for i, seg in enumerate(path):
        here = ".".join(path[: i + 1])
        tp = _strip_optional(tp)
        if typing.get_origin(tp) is tuple:
            if not seg.isdigit():
                raise ValueError(f"field {here!r}: a list needs an index here")
            tp = typing.get_args(tp)[0]
            continue
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            names = {f.name for f in dataclasses.fields(tp)} - {"meta"}
            if seg not in names:
                raise ValueError(f"unknown field {here!r} for kind {kind}")
            tp = hints[seg]
            continue
        raise ValueError(f"field {here!r} goes inside a single value")
    leaf = _leaf_of_type(tp)
    if leaf is None:
        raise ValueError(f"field {'.'.join(path)!r} is not a single value or a list of text")
    return leaf


# ---- parsing the [csv] section -------------------------------------------------------------


def kinds() -> list[str]:
    """The kinds a mapping may name."""
    return sorted([*RECORD_TYPES, CONSENT])


def _column(key: str, raw: Any, kind: str, errors: list[str]) -> ColumnMap | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{key}: expected a table {{column = …, field = …}}")
        return None
    for k in raw:
        if k not in _COLUMN_KEYS:
            errors.append(f"{key}.{k}: unknown key (known: {', '.join(sorted(_COLUMN_KEYS))})")
    column, field_path = raw.get("column"), raw.get("field")
    if not isinstance(column, str) or not column:
        errors.append(f"{key}.column: required, the CSV column name")
        return None
    if not isinstance(field_path, str) or not field_path:
        errors.append(f"{key}.field: required, a canonical field path such as names.0.family")
        return None
    path = tuple(field_path.split("."))
    try:
        leaf = leaf_of(kind, path)
    except ValueError as exc:
        errors.append(f"{key}.field: {exc}")
        return None
    fmt = raw.get("format")
    if fmt is not None and (not isinstance(fmt, str) or leaf not in (DATE, DATETIME)):
        errors.append(f"{key}.format: only date and date-time fields take a strftime format")
        fmt = None
    codes = raw.get("codes", {})
    if not isinstance(codes, Mapping) or not all(isinstance(v, str) for v in codes.values()):
        errors.append(f"{key}.codes: expected a table of partner code = canonical value")
        codes = {}
    split = raw.get("split")
    if split is not None and (not isinstance(split, str) or not split or leaf != LIST):
        errors.append(f"{key}.split: only list fields take a separator")
        split = None
    required = raw.get("required", False)
    if not isinstance(required, bool):
        errors.append(f"{key}.required: expected true or false")
        required = False
    return ColumnMap(
        column=column,
        target=field_path,
        path=path,
        leaf=leaf,
        format=fmt,
        codes={str(k): str(v) for k, v in codes.items()},
        split=split,
        required=required,
    )


def _optional_str(t: Mapping[str, Any], key: str, name: str, errors: list[str]) -> str | None:
    value = t.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        errors.append(f"{key}.{name}: expected a non-empty string")
        return None
    return value


def parse_mapping(name: str, raw: Any, errors: list[str]) -> CsvMapping | None:
    """One mapping table; appends errors (``csv.mappings.<name>.…: …``) and returns None if bad."""
    key = f"csv.mappings.{name}"
    if not isinstance(raw, Mapping):
        errors.append(f"{key}: expected a table")
        return None
    before = len(errors)
    for k in raw:
        if k not in _MAPPING_KEYS:
            errors.append(f"{key}.{k}: unknown key (known: {', '.join(sorted(_MAPPING_KEYS))})")
    kind = raw.get("kind")
    if kind not in kinds():
        errors.append(f"{key}.kind: required, one of {', '.join(kinds())}")
        return None
    raw_columns = raw.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        errors.append(f"{key}.columns: required, a list of {{column = …, field = …}} tables")
        return None
    columns = [_column(f"{key}.columns[{i}]", c, kind, errors) for i, c in enumerate(raw_columns)]
    names = [c.column for c in columns if c is not None]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"{key}.columns: column {dup!r} is mapped twice")
    delimiter = raw.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        errors.append(f"{key}.delimiter: expected one character")
        delimiter = ","
    defaults: dict[tuple[str, ...], Any] = {}
    raw_defaults = raw.get("defaults", {})
    if not isinstance(raw_defaults, Mapping):
        errors.append(f"{key}.defaults: expected a table of field path = value")
    else:
        for path_text, value in raw_defaults.items():
            path = tuple(str(path_text).split("."))
            try:
                leaf = leaf_of(kind, path)
            except ValueError as exc:
                errors.append(f"{key}.defaults: {exc}")
                continue
            ok = isinstance(value, list) if leaf == LIST else isinstance(value, str)
            if not ok:
                want = "a list" if leaf == LIST else "a string"
                errors.append(f"{key}.defaults.{path_text}: expected {want}")
                continue
            defaults[path] = value
    id_column = _optional_str(raw, key, "id_column", errors)
    version_column = _optional_str(raw, key, "version_column", errors)
    if len(errors) > before:
        return None
    return CsvMapping(
        name=name,
        kind=kind,
        columns=tuple(c for c in columns if c is not None),
        id_column=id_column,
        source=_optional_str(raw, key, "source", errors),
        version_column=version_column,
        version_format=_optional_str(raw, key, "version_format", errors),
        delimiter=delimiter,
        defaults=defaults,
    )


def parse_section(section: Any) -> tuple[dict[str, CsvMapping], list[str]]:
    """Every mapping of the ``[csv]`` section, and the errors found (empty when valid)."""
    errors: list[str] = []
    mappings: dict[str, CsvMapping] = {}
    if section is None:
        return mappings, errors
    if not isinstance(section, Mapping):
        return mappings, ["csv: expected a table"]
    for k in section:
        if k != "mappings":
            errors.append(f"csv.{k}: unknown key (known: mappings)")
    raw = section.get("mappings", {})
    if not isinstance(raw, Mapping):
        return mappings, [*errors, "csv.mappings: expected [csv.mappings.<name>] tables"]
    for name, table in raw.items():
        mapping = parse_mapping(str(name), table, errors)
        if mapping is not None:
            mappings[mapping.name] = mapping
    return mappings, errors


# ---- payload paths -------------------------------------------------------------------------


def set_path(payload: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set ``value`` at a dotted path, creating dicts and lists on the way.

    A list is padded up to the index: with ``""`` for text items, with empty tables for
    tables (``names.1.family`` alone gives a blank first name and a second one).
    """
    node: Any = payload
    for i, seg in enumerate(path):
        if i == len(path) - 1:
            if isinstance(node, list):
                _pad(node, int(seg), lambda: "")
                node[int(seg)] = value
            else:
                node[seg] = value
            return
        make: Any = list if path[i + 1].isdigit() else dict
        if isinstance(node, list):
            index = int(seg)
            _pad(node, index, make)
            if not isinstance(node[index], list | dict):
                node[index] = make()
            node = node[index]
        else:
            child = node.get(seg)
            if not isinstance(child, list | dict):
                child = node[seg] = make()
            node = child


def _pad(items: list[Any], index: int, make: Any) -> None:
    while len(items) <= index:
        items.append(make())


def get_path(payload: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at a dotted path, or None when any step is missing."""
    node: Any = payload
    for seg in path:
        if isinstance(node, list | tuple):
            if not seg.isdigit() or int(seg) >= len(node):
                return None
            node = node[int(seg)]
        elif isinstance(node, Mapping):
            if seg not in node:
                return None
            node = node[seg]
        else:
            return None
    return node


def version_of(when: datetime) -> str:
    """A record version from a date-time cell: ISO 8601, in UTC when the cell names an offset
    (versions are compared as text, and ``01:10-08:00`` is later than ``01:30-07:00``)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat()
