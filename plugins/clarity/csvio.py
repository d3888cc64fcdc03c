"""Reading an export (folder or .zip) row by row, and writing HUD CSV lines.

Reading tolerates what real exports do — a UTF-8 BOM, CRLF or bare CR line ends, quoted or
unquoted headers, header names in the wrong case or with stray spaces, blank rows, bytes that
are not UTF-8 — and reports each deviation once per file (line 1 for header matters).
Rows stream: a file is never held in memory. A quote that is never closed costs one row, not
the rest of the file: the record is skipped and the lines after its first are read again
(see :func:`iter_rows`). A member of a damaged zip raises :class:`DamagedFile`.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from plugins.clarity.findings import Report
from plugins.clarity.spec import Column, renamed_columns

csv.field_size_limit(1 << 24)


class ImportRefused(Exception):
    """The export cannot be imported at all (the message is one line, without client data).

    ``summary`` is the JSON summary of what an import stopped midway had already done (None
    when it stopped before storing anything).
    """

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class DamagedFile(ImportRefused):
    """A file of the export cannot be read to its end (a bad CRC, corrupt compressed data,
    a truncated member, an I/O error); ``file`` is its name (``Client.csv``)."""

    def __init__(self, message: str, file: str) -> None:
        super().__init__(message)
        self.file = file


_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
"""What reading a member of a damaged zip (or a failing disk) raises."""


def _damaged(origin: str, file: str, exc: BaseException) -> DamagedFile:
    """The refusal for a file whose bytes cannot be read (the reason names no value)."""
    name = f"{file}.csv"
    if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError):
        reason = f"{type(exc).__name__}: {exc}"
    else:
        strerror = getattr(exc, "strerror", None)
        reason = type(exc).__name__ + (f": {strerror}" if strerror else "")
    return DamagedFile(f"{origin}: {name} is damaged and cannot be read ({reason})", name)


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


MAX_RECORD_LINES = 100
"""A row may span at most this many physical lines (a quoted value with line breaks in it
stays far below). A record that grows past it holds a quote that is never closed."""


class _RecordTooLong(Exception):
    """The record being read has run past :data:`MAX_RECORD_LINES` physical lines."""


class _Feed:
    """The physical lines ``csv.reader`` reads, remembering those of the record being read.

    ``held`` holds the lines of the current record (the caller clears it before each
    record); :meth:`restart` hands back every held line but the first and returns a fresh
    reader that reads them again, then the rest of the file.
    """

    __slots__ = ("held", "limit", "replay", "text")

    def __init__(self, text: Iterator[str], limit: int = MAX_RECORD_LINES) -> None:
        self.text = text
        self.held: list[str] = []
        self.replay: Iterator[str] = iter(())
        self.limit = limit

    def lines(self) -> Iterator[str]:
        """The lines to read: those handed back first, then the file's."""
        held = self.held
        append = held.append
        limit = self.limit
        for line in itertools.chain(self.replay, self.text):
            append(line)
            if len(held) > limit:
                raise _RecordTooLong
            yield line

    def reader(self) -> Any:
        """A ``csv.reader`` over :meth:`lines`."""
        return csv.reader(self.lines())

    def restart(self) -> Any:
        """Drop the current record's first line, hand back the others (ahead of any still
        waiting to be read again) and return a fresh reader."""
        again = self.held[1:]
        again.extend(self.replay)
        self.replay = iter(again)
        self.held.clear()
        return self.reader()


@dataclass
class Table:
    """An open file: its header mapping and a row iterator.

    ``index`` maps each spec column to its position in the file (-1 when missing);
    ``identity`` is True when the file's columns are exactly the spec's, in order, so rows
    can be used as they are. ``unread`` counts the rows refused because they could not be
    read (wrong field count, unreadable, an unclosed quote): their ids are unknown.
    """

    file: str
    columns: tuple[Column, ...]
    index: list[int]
    identity: bool
    width: int
    missing: list[str] = field(default_factory=list)
    _raw: IO[bytes] | None = None
    _rows: Iterator[list[str]] | None = None
    _reader: Any = None
    _bad: list[int] = field(default_factory=lambda: [0])
    _feed: _Feed | None = None
    origin: str = ""
    unread: int = 0

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

    Returns None (after an error finding) when the file has no header (it is empty, or its
    first line is mostly not column names of the file: data, most likely) or lacks its key.
    Header cells that are not column names are reported by position, never by their text
    (a first line of data would put client data in the report). Raises
    :class:`DamagedFile` when the file's bytes cannot be read.
    """
    origin = source.path.name
    raw = source.open(file)
    try:
        table = _open_table(raw, file, columns, report, origin)
    except _DAMAGE as exc:
        raw.close()
        raise _damaged(origin, file, exc) from None
    if table is None:
        raw.close()
    return table


def _open_table(
    raw: IO[bytes], file: str, columns: tuple[Column, ...], report: Report, origin: str
) -> Table | None:
    name = f"{file}.csv"
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
    head = buffered.peek(65536)[:65536]
    _sniff(head, file, report)
    bad = [0]
    _ACTIVE[0] = bad
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="clarity_cp1252", newline="")
    feed = _Feed(text)
    reader = feed.reader()
    try:
        header = next(reader)
    except StopIteration:
        report.error(name, 1, "", "no-header", "file is empty (no header row)")
        return None
    except (csv.Error, _RecordTooLong) as exc:
        why = exc if isinstance(exc, csv.Error) else "a quote is never closed"
        report.error(name, 1, "", "unreadable-header", f"header cannot be read as CSV ({why})")
        return None
    first_line = head.split(b"\n", 1)[0].lstrip(codecs.BOM_UTF8)
    spec_names = [c.name for c in columns]
    by_lower = {n.lower(): i for i, n in enumerate(spec_names)}
    names = [raw_name.strip().strip('"').strip() for raw_name in header]
    # A renamed column under the other version's name is that column (when the file does
    # not also carry it under this version's name).
    given = {n.lower() for n in names}
    renamed = {
        old.lower(): by_lower[new.lower()]
        for old, new in renamed_columns(file).items()
        if new.lower() in by_lower and new.lower() not in given
    }
    unknown = sum(1 for n in names if n.lower() not in by_lower and n.lower() not in renamed)
    if unknown * 2 > len(names):
        report.error(
            name,
            1,
            "",
            "no-header",
            f"line 1 is not a header: {unknown} of its {len(names)} cells are not column "
            "names of this file; file skipped",
        )
        return None
    if first_line.startswith(b'"'):
        report.warn(name, 1, "", "quoted-header", "header names were quoted")
    index = [-1] * len(columns)
    for pos, (raw_name, cleaned) in enumerate(zip(header, names, strict=True)):
        at = by_lower.get(cleaned.lower())
        if at is None and cleaned.lower() in renamed:
            at = renamed[cleaned.lower()]
            if index[at] < 0:
                report.warn(
                    name,
                    1,
                    spec_names[at],
                    "renamed-column",
                    f"{spec_names[at]}: column {pos + 1} has this column's name in the other "
                    "HMIS CSV version; read as this column",
                )
                index[at] = pos
            else:
                report.warn(
                    name,
                    1,
                    spec_names[at],
                    "duplicate-column",
                    f"{spec_names[at]}: column given twice (column {pos + 1}); first kept",
                )
            continue
        if at is None:
            # Never the cell's text: it may be data (client data) rather than a name.
            if cleaned:
                report.warn(
                    name,
                    1,
                    "",
                    "unknown-column",
                    f"column {pos + 1}: not a column of this file; ignored",
                )
            elif raw_name:
                report.warn(
                    name, 1, "", "header-whitespace", f"column {pos + 1}: header name trimmed"
                )
            continue
        spec_name = spec_names[at]
        if cleaned != raw_name:
            report.warn(
                name, 1, spec_name, "header-whitespace", f"{spec_name}: header name trimmed"
            )
        if index[at] >= 0:
            report.warn(
                name,
                1,
                spec_name,
                "duplicate-column",
                f"{spec_name}: column given twice (column {pos + 1}); first kept",
            )
            continue
        if cleaned != spec_name:
            report.warn(
                name, 1, spec_name, "header-case", f"{spec_name}: header matched ignoring case"
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
        return None
    for m in missing:
        report.warn(name, 1, m, "missing-column", f"{m}: column missing; read as blank")
    identity = index == list(range(len(columns))) and len(header) == len(columns)
    return Table(
        file,
        columns,
        index,
        identity,
        len(header),
        missing,
        buffered,
        None,
        reader,
        bad,
        feed,
        origin,
    )


_UNCLOSED = (
    "a quote opened on this line is never closed; row skipped, the lines after it read again"
)


def iter_rows(table: Table, report: Report) -> Iterator[tuple[int, list[str]]]:
    """(line, values in spec column order) for each data row; ``line`` is the row's first
    physical line. Blank rows are reported (warning) and skipped; rows that cannot be read
    are reported (error), skipped and counted in ``table.unread``:

    - ``column-count``: a one-line row of the wrong number of fields;
    - ``unterminated-quote``: a row over several lines that comes out with the wrong number
      of fields, or runs past :data:`MAX_RECORD_LINES` lines — a quote opened on its first
      line is never closed; the lines after the first are read again, so only that row is
      lost;
    - ``unreadable-row``: what ``csv`` refuses (a cell over the size limit, …).

    Raises :class:`DamagedFile` when the file's bytes cannot be read.
    """
    feed = table._feed
    assert feed is not None
    reader = table._reader
    name = f"{table.file}.csv"
    width = table.width
    identity = table.identity
    index = table.index
    held = feed.held
    clear = held.clear
    base = 0  # lines before the current reader's first line
    _ACTIVE[0] = table._bad
    while True:
        clear()
        line = base + reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except _RecordTooLong:
            report.error(name, line, "", "unterminated-quote", _UNCLOSED)
            table.unread += 1
            reader, base = feed.restart(), line
            continue
        except csv.Error as exc:
            report.error(
                name, line, "", "unreadable-row", f"row cannot be read as CSV ({exc}); skipped"
            )
            table.unread += 1
            if len(held) > 1:
                reader, base = feed.restart(), line
            continue
        except _DAMAGE as exc:
            raise _damaged(table.origin, table.file, exc) from None
        if len(row) != width:
            if len(held) > 1:
                report.error(name, line, "", "unterminated-quote", _UNCLOSED)
                table.unread += 1
                reader, base = feed.restart(), line
                continue
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
            table.unread += 1
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
