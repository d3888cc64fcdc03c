"""Reading an export (folder or .zip) row by row, and writing HUD CSV lines.

Reading tolerates what real exports do — a UTF-8 BOM, CRLF or bare CR line ends, quoted or
unquoted headers, header names in the wrong case or with stray spaces, blank rows, bytes that
are not UTF-8 — and reports each deviation once per file (line 1 for header matters).
Rows stream: a file is never held in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from plugins.clarity.findings import Report
from plugins.clarity.spec import Column

csv.field_size_limit(1 << 24)


class ImportRefused(Exception):
    """The export cannot be imported at all (the message is one line, without client data)."""


# ---- bytes that are not UTF-8 -------------------------------------------------------------

_ACTIVE: list[list[int]] = [[0]]
"""The undecodable-byte counter of the file being read (files are read one at a time)."""


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode bytes that are not UTF-8 as Windows-1252 (and count them)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    _ACTIVE[0][0] += len(bad)
    return bytes(bad).decode("cp1252", errors="replace"), exc.end


codecs.register_error("clarity_cp1252", _cp1252_fallback)


# ---- the export container ---------------------------------------------------------------


class ExportSource:
    """The files of an export, in a folder or a .zip (members may sit in a sub-folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self.members: dict[str, str] = {}
        if not path.exists():
            raise ImportRefused(f"{path}: no such file or folder")
        if path.is_dir():
            for p in sorted(path.iterdir()):
                if p.is_file() and p.suffix.lower() == ".csv":
                    self.members.setdefault(p.name.lower(), str(p))
            return
        try:
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ImportRefused(f"{path.name}: not a readable zip file ({exc})") from None
        for info in infos:
            name = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
            if not info.is_dir() and name.lower().endswith(".csv") and not name.startswith("._"):
                self.members.setdefault(name.lower(), info.filename)

    def has(self, file: str) -> bool:
        """Whether the export carries ``file`` (``"Client"``), whatever its name's case."""
        return f"{file.lower()}.csv" in self.members

    def member_name(self, file: str) -> str:
        """The file's name as the export spells it (for reports)."""
        member = self.members[f"{file.lower()}.csv"]
        return member.replace("\\", "/").rsplit("/", 1)[-1]

    def size(self, file: str) -> int:
        """Uncompressed size in bytes."""
        member = self.members[f"{file.lower()}.csv"]
        if self._zip is not None:
            return self._zip.getinfo(member).file_size
        return Path(member).stat().st_size

    def open(self, file: str) -> IO[bytes]:
        """The file's bytes."""
        member = self.members[f"{file.lower()}.csv"]
        try:
            if self._zip is not None:
                return self._zip.open(member)
            return open(member, "rb")
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise ImportRefused(f"{self.path.name}: cannot read {file}.csv ({exc})") from None

    def unexpected(self, known: Sequence[str]) -> list[str]:
        """Member names that are not one of the ``known`` files."""
        wanted = {f"{k.lower()}.csv" for k in known}
        return sorted(
            m.replace("\\", "/").rsplit("/", 1)[-1]
            for k, m in self.members.items()
            if k not in wanted
        )

    def close(self) -> None:
        """Release the zip file."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None


# ---- one file -----------------------------------------------------------------------------


@dataclass
class Table:
    """An open file: its header mapping and a row iterator.

    ``index`` maps each spec column to its position in the file (-1 when missing);
    ``identity`` is True when the file's columns are exactly the spec's, in order, so rows
    can be used as they are.
    """

    file: str
    columns: tuple[Column, ...]
    index: list[int]
    identity: bool
    width: int
    missing: list[str] = field(default_factory=list)
    _raw: IO[bytes] | None = None
    _rows: Iterator[list[str]] | None = None
    _reader: object = None
    _bad: list[int] = field(default_factory=lambda: [0])

    def position(self) -> int:
        """Bytes read so far (for progress)."""
        try:
            return self._raw.tell() if self._raw is not None else 0
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        """Close the underlying file."""
        if self._raw is not None:
            self._raw.close()
            self._raw = None


def _sniff(head: bytes, file: str, report: Report) -> None:
    name = f"{file}.csv"
    if head.startswith(codecs.BOM_UTF8):
        report.warn(name, 1, "", "bom", "UTF-8 byte order mark removed")
    if b"\r\n" in head:
        report.warn(name, 1, "", "crlf-line-endings", "CRLF line endings read as line ends")
    stripped = head.replace(b"\r\n", b"")
    if b"\r" in stripped:
        report.warn(name, 1, "", "bare-cr-line-endings", "bare CR line endings read as line ends")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            report.warn(
                name,
                1,
                "",
                "encoding",
                "file is not valid UTF-8; undecodable bytes read as Windows-1252",
            )


def open_table(
    source: ExportSource, file: str, columns: tuple[Column, ...], report: Report
) -> Table | None:
    """Open one file, check its header against the spec and report header repairs.

    Returns None (after an error finding) when the file has no header or lacks its key.
    """
    name = f"{file}.csv"
    raw = source.open(file)
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    head = buffered.peek(65536)[:65536]
    _sniff(head, file, report)
    bad = [0]
    _ACTIVE[0] = bad
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="clarity_cp1252", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        report.error(name, 1, "", "no-header", "file is empty (no header row)")
        buffered.close()
        return None
    except csv.Error as exc:
        report.error(name, 1, "", "unreadable-header", f"header cannot be read as CSV ({exc})")
        buffered.close()
        return None
    first_line = head.split(b"\n", 1)[0].lstrip(codecs.BOM_UTF8)
    if first_line.startswith(b'"'):
        report.warn(name, 1, "", "quoted-header", "header names were quoted")
    spec_names = [c.name for c in columns]
    by_lower = {n.lower(): i for i, n in enumerate(spec_names)}
    index = [-1] * len(columns)
    for pos, raw_name in enumerate(header):
        cleaned = raw_name.strip().strip('"').strip()
        if cleaned != raw_name:
            report.warn(name, 1, cleaned, "header-whitespace", f"{cleaned}: header name trimmed")
        at = by_lower.get(cleaned.lower())
        if at is None:
            if cleaned:
                report.warn(
                    name,
                    1,
                    cleaned,
                    "unknown-column",
                    f"{cleaned}: not a column of this file; ignored",
                )
            continue
        if index[at] >= 0:
            report.warn(
                name, 1, cleaned, "duplicate-column", f"{cleaned}: column given twice; first kept"
            )
            continue
        if cleaned != spec_names[at]:
            report.warn(
                name,
                1,
                spec_names[at],
                "header-case",
                f"{spec_names[at]}: header matched ignoring case",
            )
        index[at] = pos
    missing = [spec_names[i] for i, p in enumerate(index) if p < 0]
    if index[0] < 0:
        report.error(
            name,
            1,
            spec_names[0],
            "missing-key-column",
            f"{spec_names[0]}: key column missing; file skipped",
        )
        buffered.close()
        return None
    for m in missing:
        report.warn(name, 1, m, "missing-column", f"{m}: column missing; read as blank")
    identity = index == list(range(len(columns))) and len(header) == len(columns)
    return Table(file, columns, index, identity, len(header), missing, buffered, None, reader, bad)


def iter_rows(table: Table, report: Report) -> Iterator[tuple[int, list[str]]]:
    """(line, values in spec column order) for each data row; blank and malformed rows are
    reported (blank: warning, skipped; wrong column count: error, skipped)."""
    reader = table._reader
    assert isinstance(reader, _ReaderType)
    name = f"{table.file}.csv"
    width = table.width
    identity = table.identity
    index = table.index
    _ACTIVE[0] = table._bad
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.error(
                name,
                reader.line_num,
                "",
                "unreadable-row",
                f"row cannot be read as CSV ({exc}); skipped",
            )
            continue
        line = reader.line_num
        if len(row) != width:
            if not row or not any(x.strip() for x in row):
                report.warn(name, line, "", "blank-row", "blank row skipped")
                continue
            report.error(
                name,
                line,
                "",
                "column-count",
                f"row has {len(row)} fields, header has {width}; row skipped",
            )
            continue
        if identity:
            yield line, row
        else:
            yield line, [row[i] if i >= 0 else "" for i in index]
    if table._bad[0]:
        report.warn(
            name,
            1,
            "",
            "encoding-bytes",
            f"{table._bad[0]} bytes were not UTF-8 and were read as Windows-1252",
        )


_ReaderType = type(csv.reader(io.StringIO("")))


# ---- writing ------------------------------------------------------------------------------


def format_row(values: Sequence[str], quoted: Sequence[bool]) -> str:
    """One CSV line in the HUD style: string (``S``) values in double quotes, numbers and
    dates bare, blanks empty; ends with ``\\n``."""
    out: list[str] = []
    for value, q in zip(values, quoted, strict=True):
        if not value:
            out.append("")
        elif q or '"' in value or "," in value or "\n" in value or "\r" in value:
            out.append('"' + value.replace('"', '""') + '"')
        else:
            out.append(value)
    return ",".join(out) + "\n"


def header_line(columns: Sequence[Column]) -> str:
    """The header line (unquoted names, as Clarity writes them)."""
    return ",".join(c.name for c in columns) + "\n"


ProgressFn = Callable[[str, int, int], None]
"""``progress(file_name, bytes_done, bytes_total)``."""
