"""Import a HUD HMIS CSV export (folder or .zip, FY2024 or FY2026) into the hub.

Files are read in dependency order, each as a stream of rows processed in batches of
``[clarity] batch_size`` (one ``engine.ingest`` call each), so memory does not grow with a
file's size. What is kept across files is compact: organisation and project owners, one
small value per client (its owner) and per enrollment (owner, entry date, whether it has an
exit), and, while Enrollment.csv is read, a head-of-household count per household; these
live in :class:`~plugins.clarity.idmap.IdMap` tables (4 bytes an id when ids are dense
integers, as HMIS ids are). Each batch is screened column by column first; only the rows
the screen cannot clear are checked cell by cell (``RowChecker.suspects``).

Ownership (CONSENT.md): a record belongs to the agency of its enrollment's project's
organisation. A Client belongs to the owner of its earliest enrollment in this export, else
to the owner it already has in the store, else to the export's default owner (``[clarity]
default_agency``, else the agency of the export's first organisation). User and Export rows
belong to the default owner. Victim service providers' data is ``restricted``: the rows
read, and — once the Organization file is in — the records already stored of an
organisation that is (now) one (``ownership.restrict_vsp_data``).

Sync: a delta export (ExportDirective 1) upserts (the store keeps the newer DateUpdated); a
full refresh (2) also marks deleted, per file present in the export, this source's records
*in the export's scope* (the projects its Project.csv lists: see ``refresh.py``; none when
it lists none) that the export no longer carries — unless a row of that file could not be
read (its id is unknown, so the record it carries cannot be told apart from one the export
dropped): then none of that file's records is marked deleted, and a ``deletions-skipped``
warning says so.
``DateDeleted`` marks a record deleted.

A file that cannot be read to its end (a damaged zip member) stops the import with an
:class:`ImportRefused` that says what was already stored (and carries the partial summary).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from hub.plugin_api import Record, RecordMeta
from plugins.clarity import mapping
from plugins.clarity.csvio import ExportSource, ImportRefused, iter_rows, open_table
from plugins.clarity.dates import normalise_date, normalise_datetime, version_of
from plugins.clarity.findings import MemoryReport, Report
from plugins.clarity.idmap import IdMap, ck
from plugins.clarity.mapping import BuildContext, Layout, make_meta
from plugins.clarity.ownership import (
    agency_for_org,
    ensure_agency,
    ensure_named_agency,
    mark_stored,
    restrict_vsp_data,
)
from plugins.clarity.refresh import NEVER_DELETED, RefreshScope
from plugins.clarity.settings import ClaritySettings, settings_of
from plugins.clarity.spec import (
    ENROLLMENT_FILES,
    FILES,
    PROJECT_FILES,
    RECORD_KINDS,
    columns,
    parse_csv_version,
)
from plugins.clarity.validate import LOWEST_DATE, RowChecker, date_limits

log = logging.getLogger("hub.clarity")

ProgressFn = Callable[[str, int, int], None]
"""``progress(file, bytes_done, bytes_total)`` — bytes over the whole export."""

DIRECTIVES = {"1": "delta", "2": "full", "3": "other"}
_PARENT_KINDS = ("hmis.Organization", "hmis.Project", "client", "enrollment")
"""Kinds whose records rows of later files name (looked up in the store when missing)."""
_NAME_COLUMNS = frozenset({"FirstName", "MiddleName", "LastName", "NameSuffix", "SSN"})


# ---- the summary --------------------------------------------------------------------------


@dataclass
class FileStats:
    """What happened to one file's rows."""

    rows: int = 0
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    warnings: int = 0
    errors: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts as a dict."""
        return dict(self.__dict__)


@dataclass
class ImportSummary:
    """The outcome of one import (printed as JSON by ``hub import clarity``)."""

    path: str
    source: str = ""
    implementation_id: str = ""
    csv_version: str = ""
    version: str = ""
    export_id: str = ""
    directive: str = ""
    hash_status: str = ""
    dry_run: bool = False
    export: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileStats] = field(default_factory=dict)
    missing_files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    agencies_created: list[str] = field(default_factory=list)
    default_owner: str = ""
    restricted_marked: int = 0
    """Records stored before this import marked restricted: their organisation is (now) a
    victim service provider, or their project or enrollment moved to one (see
    ``ownership.restrict_vsp_data`` and ``ownership.mark_stored``)."""
    report: str = ""
    seconds: float = 0.0
    stopped: str = ""
    """Why the import stopped midway (a damaged file), and what it had stored; else ""."""

    def total(self, name: str) -> int:
        """A count summed over the files."""
        return sum(getattr(s, name) for s in self.files.values())

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON."""
        rows = self.total("rows")
        return {
            "path": self.path,
            "source": self.source,
            "implementation_id": self.implementation_id,
            "csv_version": self.csv_version,
            "version": self.version,
            "export_id": self.export_id,
            "directive": self.directive,
            "hash_status": self.hash_status,
            "dry_run": self.dry_run,
            "export": self.export,
            "files": {k: v.to_json() for k, v in self.files.items()},
            "missing_files": self.missing_files,
            "ignored_files": self.ignored_files,
            "agencies_created": self.agencies_created,
            "default_owner": self.default_owner,
            "restricted_marked": self.restricted_marked,
            "rows_read": rows,
            "accepted": self.total("accepted"),
            "inserted": self.total("inserted"),
            "updated": self.total("updated"),
            "unchanged": self.total("unchanged"),
            "stale": self.total("stale"),
            "deleted": self.total("deleted"),
            "warnings": self.total("warnings"),
            "errors": self.total("errors"),
            "report": self.report,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(rows / self.seconds) if self.seconds > 0 else 0,
        }


class Owners:
    """Owner agencies by small index, so per-client and per-enrollment values stay small."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool]] = []
        self._ix: dict[tuple[str, bool], int] = {}

    def index(self, agency: str, restricted: bool) -> int:
        """The index of (agency, restricted)."""
        key = (agency, restricted)
        at = self._ix.get(key)
        if at is None:
            at = self._ix[key] = len(self.items)
            self.items.append(key)
        return at


_HOUSEHOLD = re.compile(r"(\D{0,8})(0|[1-9][0-9]{0,17})").fullmatch
"""A household id as a short prefix and a number (``s_849668``, ``HH100000``, ``42``)."""
_HOUSEHOLD_PREFIXES = 16
"""Households of more prefixes than this are counted by their ids' hashes."""


# ---- the import ---------------------------------------------------------------------------


async def import_export(
    ctx: Any,
    path: str | Path,
    *,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    directive: str | None = None,
    report_path: Path | None = None,
) -> ImportSummary:
    """Import one export; returns its summary. Raises :class:`ImportRefused` (one line, no
    client data) when the export cannot be imported at all: missing path, unreadable zip,
    no Export.csv, blank or unknown ``CSVVersion``, blank ``ImplementationID``; and when a
    file turns out to be damaged midway (a bad CRC, corrupt data in a zip member): then the
    message says what was already stored and ``exc.summary`` is the partial summary.

    ``directive`` overrides Export.csv's ExportDirective: ``"full"`` or ``"delta"``.
    """
    run = _Import(ctx, Path(path), dry_run=dry_run, progress=progress, report_path=report_path)
    return await run.run(directive)


class _Import:
    """One import run (state shared by the file passes)."""

    def __init__(
        self,
        ctx: Any,
        path: Path,
        *,
        dry_run: bool,
        progress: ProgressFn | None,
        report_path: Path | None,
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.dry_run = dry_run
        self.progress = progress
        self.settings: ClaritySettings = settings_of(ctx.config)
        self.summary = ImportSummary(path=str(path), dry_run=dry_run)
        self.report_path = report_path
        self.report: Report = Report(None)
        self.owners = Owners()
        # Compact state kept across files (see the module docstring).
        self.orgs: dict[int | str, int] = {}
        self.projects: dict[int | str, int] = {}
        self.users: set[int | str] = set()
        self.persons: IdMap[Any] = IdMap()
        self.enrollments: IdMap[tuple[int, int, bool] | None] = IdMap()
        self.households: dict[str | None, IdMap[int]] = {}
        self.assessments: set[int | str] = set()
        self.refresh_projects: IdMap[bool] | None = None  # ProjectIDs of Project.csv
        self.refresh: RefreshScope | None = None  # a full refresh's scope (refresh.py)
        self._scope_warned = False
        self.stored_kinds: frozenset[str] = frozenset()
        """Parent kinds the store held from this source before the import began."""
        self.household_prefixes: set[str] = set()
        self._known_users: set[str] = set()  # UserIDs as rows spell them, found in User.csv
        self._project_owners: dict[str, int] = {}  # project owners by ProjectID as spelled
        self.first_org = ""
        self.default_owner = 0
        self.export_date = ""
        self.past_limit = ""
        self.bytes_total = 0
        self.bytes_done = 0
        self.unknown_ids = 0  # rows of the current file refused before their id was known
        self.bc = BuildContext("", "", datetime.now(UTC), "hmis-csv", "1")

    # ---- orchestration -------------------------------------------------------------------

    async def run(self, directive: str | None) -> ImportSummary:
        """Read Export.csv (or refuse), then every file in dependency order."""
        started = time.perf_counter()
        src = ExportSource(self.path)
        try:
            early = MemoryReport()
            meta = self._read_export(src, early)
            if directive in ("full", "delta"):
                self.summary.directive = directive
            self._open_report()
            early.replay(self.report)
            try:
                await self._run_files(src, meta)
            except ImportRefused as exc:
                self.summary.seconds = time.perf_counter() - started
                raise self._stopped(exc) from None
            finally:
                self.report.close()
        finally:
            src.close()
        self.summary.seconds = time.perf_counter() - started
        log.info(
            "clarity import %s export %s: %d rows in %.1fs",
            self.summary.source,
            self.summary.export_id,
            self.summary.total("rows"),
            self.summary.seconds,
        )
        return self.summary

    def _read_export(self, src: ExportSource, early: Report) -> dict[str, str]:
        name = self.path.name
        if not src.has("Export"):
            raise ImportRefused(f"{name}: Export.csv is missing; not a HUD CSV export")
        cols = columns("2026", "Export")
        table = open_table(src, "Export", cols, early)
        if table is None:
            raise ImportRefused(f"{name}: Export.csv has no header")
        try:
            rows = [v for _line, v in iter_rows(table, early)]
        finally:
            table.close()
        if not rows:
            raise ImportRefused(f"{name}: Export.csv has no data row")
        row = dict(zip((c.name for c in cols), rows[0], strict=True))
        csv_version = row["CSVVersion"].strip()
        if not csv_version:
            raise ImportRefused(
                f"{name}: Export.csv CSVVersion is blank; the version is not guessed"
            )
        family = parse_csv_version(csv_version)
        if family is None:
            raise ImportRefused(
                f"{name}: Export.csv CSVVersion {csv_version!r} is not supported "
                "(supported: FY2024 '2024 v1.x', FY2026 '2026 v1.x')"
            )
        impl = row["ImplementationID"].strip()
        if not impl:
            raise ImportRefused(
                f"{name}: Export.csv ImplementationID is blank; records cannot be keyed"
            )
        s = self.summary
        s.csv_version = csv_version
        s.version = family
        s.implementation_id = impl
        s.source = f"hmis:{impl}"
        s.export_id = row["ExportID"].strip()
        s.hash_status = row["HashStatus"].strip() or "1"
        s.directive = DIRECTIVES.get(row["ExportDirective"].strip(), "delta")
        s.export = row
        return row

    def _open_report(self) -> None:
        path = self.report_path
        if path is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            export = self.summary.export_id
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in export)[:40]
            folder = self.settings.report_dir(self.ctx.config)
            path = folder / f"clarity-import-{stamp}-{safe or 'export'}.jsonl"
        self.report = Report(path, self.settings.report_limit)
        self.summary.report = str(path)

    async def _run_files(self, src: ExportSource, meta: dict[str, str]) -> None:
        s = self.summary
        self.export_date = self._export_date(meta)
        self.past_limit = date_limits(self.export_date)[0]
        software = (meta.get("SoftwareName") or "").strip()[:50]
        self.bc = BuildContext(
            source=s.source,
            version=s.version,
            received_at=datetime.now(UTC),
            source_system=software or "hmis-csv",
            hash_status=s.hash_status,
        )
        for file in FILES:
            if src.has(file):
                self.bytes_total += src.size(file)
            elif file != "Export":
                s.missing_files.append(f"{file}.csv")
                self.report.warn(
                    f"{file}.csv", 0, "", "missing-file", f"{file}.csv is not in the export"
                )
        s.ignored_files = src.unexpected(FILES)
        for name in s.ignored_files:
            self.report.warn(
                name,
                0,
                "",
                "unknown-file",
                f"{name} is not a file of the HMIS CSV FY{s.version} format; ignored",
            )
        self._check_export_row(meta)
        self.stored_kinds = frozenset(
            [k for k in _PARENT_KINDS if await self._source_has(k)]  # before any ingest
        )
        # Organisations decide owners; projects, users and descriptors follow.
        await self._file(src, "Organization")
        if not self.dry_run:
            # An organisation that became a victim service provider: what is stored of it is
            # marked before anything else is read (a delta may carry only its row).
            s.restricted_marked = await restrict_vsp_data(self.ctx, s.source)
        self._default_owner()
        for file in ("Project", "User", *sorted(PROJECT_FILES, key=FILES.index)):
            await self._file(src, file)
        # Each client's owner comes from its earliest enrollment: scan enrollments first.
        await self._prescan_enrollments(src)
        for file in FILES[FILES.index("Client") :]:
            await self._file(src, file)
        await self._store_export_row(meta)
        self._count_findings()

    def _count_findings(self) -> None:
        for file, stats in self.summary.files.items():
            stats.warnings = self.report.count(file, "warning")
            stats.errors = self.report.count(file, "error")

    def _stopped(self, exc: ImportRefused) -> ImportRefused:
        """The refusal of an import stopped midway: what it had stored, and its summary."""
        s = self.summary
        self._count_findings()
        damaged = getattr(exc, "file", "")
        if self.dry_run:
            done = "nothing was stored (dry run)"
        else:
            stored = [
                f"{name} {st.accepted}"
                + (" (stored before the damage was found)" if name == damaged else "")
                for name, st in s.files.items()
                if st.accepted
            ]
            done = ("already stored (rows): " + ", ".join(stored)) if stored else "nothing stored"
            deleted = s.total("deleted")
            if deleted:
                done += f"; {deleted} records marked deleted"
        s.stopped = (
            f"{exc}; import stopped: {done}; nothing else was imported "
            "(importing a good copy again is safe)"
        )
        return ImportRefused(s.stopped, s.to_json())

    def _export_date(self, meta: dict[str, str]) -> str:
        raw = meta.get("ExportDate", "")
        got = normalise_datetime(raw) if raw else None
        if got is None:
            self.report.warn(
                "Export.csv",
                2,
                "ExportDate",
                "datetime",
                "ExportDate: missing or unreadable; now used",
            )
            return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        return got[0]

    def _check_export_row(self, meta: dict[str, str]) -> None:
        cols = columns(self.summary.version, "Export")
        checker = RowChecker(
            "Export", cols, export_date=self.export_date, export_id=self.summary.export_id
        )
        names = [c.name for c in cols]
        values = [meta.get(n, "") for n in names]
        checker.check(values, 2, self.summary.export_id, self.report)
        meta.update(zip(names, values, strict=True))

    def _default_owner(self) -> None:
        agencies = self.ctx.gate.agencies
        configured = self.settings.default_agency
        if configured:
            known = agencies.get(configured)
            self.default_owner = self.owners.index(
                configured, known is not None and known.kind == "vsp"
            )
        elif self.first_org:
            self.default_owner = self.orgs[ck(self.first_org)]
        else:
            impl = self.summary.implementation_id
            agency = (
                "hmis-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in impl)[:60]
            )
            if not self.dry_run and ensure_named_agency(self.ctx.gate, agency):
                self.summary.agencies_created.append(agency)
            self.default_owner = self.owners.index(agency, False)
        self.summary.default_owner = self.owners.items[self.default_owner][0]

    async def _store_export_row(self, meta: dict[str, str]) -> None:
        lay = Layout(self.summary.version, "Export")
        values = [meta.get(n, "") for n in lay.names]
        record_meta = self._meta(
            "hmis.Export",
            self.summary.export_id or "export",
            self.default_owner,
            version_of(self.export_date),
            False,
            mapping.raw_hash(values),
        )
        record = mapping.build_row(self.bc, lay, values, record_meta, lay.categories)
        record.fields["ExportID"] = self.summary.export_id  # type: ignore[index]
        stats = self.summary.files.setdefault("Export.csv", FileStats())
        stats.rows += 1
        stats.accepted += 1
        await self._ingest([record], stats)

    # ---- one file ------------------------------------------------------------------------

    async def _file(self, src: ExportSource, file: str) -> None:
        if not src.has(file):
            return
        name = f"{file}.csv"
        version = self.summary.version
        stats = self.summary.files.setdefault(name, FileStats())
        lay = Layout(version, file)
        hashed = self.summary.hash_status in mapping.HASHED_STATUSES
        checker = RowChecker(
            file,
            columns(version, file),
            export_date=self.export_date,
            export_id=self.summary.export_id,
            skip_length=_NAME_COLUMNS if file == "Client" and hashed else frozenset(),
            skip_required=frozenset({"DateUpdated", lay.names[0]}),
        )
        table = open_table(src, file, columns(version, file), self.report)
        if table is None:
            return
        handler = _handler(file)
        had_records = await self._source_has(RECORD_KINDS[file])
        self.unknown_ids = 0
        keep: IdMap[bool] = IdMap()  # the file's ids (a full refresh keeps these)
        batch: list[tuple[int, list[str]]] = []
        size = src.size(file)
        batch_size = self.settings.batch_size
        try:
            add = batch.append
            for row in iter_rows(table, self.report):
                add(row)
                if len(batch) >= batch_size:
                    stats.rows += len(batch)
                    await self._batch(lay, checker, handler, batch, stats, keep)
                    batch = []
                    add = batch.append
                    self._progress(name, table.position())
            if batch:
                stats.rows += len(batch)
                await self._batch(lay, checker, handler, batch, stats, keep)
        finally:
            table.close()
        self.bytes_done += size
        self._progress(name, 0)
        unread = table.unread + self.unknown_ids
        await self._after_file(src, lay, keep, stats, had_records, unread)

    def _progress(self, name: str, position: int) -> None:
        if self.progress is not None:
            self.progress(name, min(self.bytes_done + position, self.bytes_total), self.bytes_total)

    def _duplicates(self, file: str, keep: IdMap[bool]) -> Callable[[int | str], bool]:
        """The duplicate-key test of one batch of ``file`` (it notes each key it lets pass)."""
        if file == "Client":
            persons = self.persons
            in_batch: set[int | str] = set()

            def client(key: int | str) -> bool:
                if type(persons.get(key)) is int or key in in_batch:
                    return True
                in_batch.add(key)
                return False

            return client
        if file == "Enrollment":
            enrollments = self.enrollments

            def enrollment(key: int | str) -> bool:
                if key in enrollments:
                    return True
                enrollments[key] = None
                return False

            return enrollment

        def other(key: int | str) -> bool:
            if key in keep:
                return True
            keep[key] = True
            return False

        return other

    async def _batch(
        self,
        lay: Layout,
        checker: RowChecker,
        handler: Handler,
        batch: list[tuple[int, list[str]]],
        stats: FileStats,
        keep: IdMap[bool],
    ) -> None:
        file = lay.file
        name = f"{file}.csv"
        key_name = lay.names[0]
        report = self.report
        duplicate = self._duplicates(file, keep)
        rows: list[tuple[int, list[str], str, int | str]] = []
        for line, v in batch:
            rid = v[0].strip()
            if not rid:
                if any(v):
                    report.error(
                        name, line, key_name, "missing-key", f"{key_name}: blank; row skipped"
                    )
                    self.unknown_ids += 1
                else:
                    report.warn(name, line, "", "blank-row", "blank row skipped")
                continue
            v[0] = rid
            key = ck(rid)
            if duplicate(key):
                report.error(
                    name,
                    line,
                    key_name,
                    "duplicate-key",
                    f"{key_name}: duplicate primary key (the first row is kept); row skipped",
                    rid,
                )
                continue
            rows.append((line, v, rid, key))
        await self._resolve(lay, rows)
        # Rows the column screens clear need no cell check (see RowChecker.suspects).
        suspects = checker.suspects([row[1] for row in rows])
        check = checker.check
        raw_hash = mapping.raw_hash
        updated_at = lay.updated
        past_limit = self.past_limit
        records: list[Record] = []
        for k, (line, v, rid, key) in enumerate(rows):
            digest = raw_hash(v)
            if k in suspects and not check(v, line, rid, report):
                self._errored(file, key)  # refused: the record stays as stored
                continue
            updated = v[updated_at] if updated_at >= 0 else ""
            if updated and updated[:10] <= past_limit:
                version: str | None = version_of(updated)
            else:
                version = self._version(name, lay, v, line, rid)
            record = handler(self, lay, v, line, rid, key, version, digest) if version else None
            if record is None:
                self._errored(file, key)
            else:
                records.append(record)
        stats.accepted += len(records)
        if file in ("Project", "Enrollment"):
            await self._restrict_below(file, records)
        await self._ingest(records, stats)

    async def _restrict_below(self, file: str, records: list[Record]) -> None:
        """Projects or enrollments that arrive restricted while the store holds them
        unrestricted (moved to a victim service provider's organisation or project): what the
        store holds below them is marked first (``ownership.mark_stored``), so it is never
        left unmarked under a marked parent."""
        kind = RECORD_KINDS[file]
        if self.dry_run or kind not in self.stored_kinds:
            return
        keys = [(kind, r.meta.key.source, r.meta.key.id) for r in records if r.meta.restricted]
        if not keys:
            return
        async with self.ctx.store.transaction() as tx:
            heads = await tx.record_heads(keys)
        newly = [k[2] for k in keys if (h := heads.get(k)) is not None and not h.restricted]
        if not newly:
            return
        source = self.summary.source
        if file == "Project":
            marked = await mark_stored(self.ctx, source, projects=newly)
        else:
            marked = await mark_stored(self.ctx, source, enrollments=newly)
        self.summary.restricted_marked += marked

    def _errored(self, file: str, key: int | str) -> None:
        """Keep a skipped row's id in the full-refresh scope (its stored version stays)."""
        if file == "Client" and type(self.persons.get(key)) is not int:
            self.persons[key] = self.default_owner

    def _version(self, name: str, lay: Layout, v: list[str], line: int, rid: str) -> str | None:
        updated = v[lay.updated] if lay.updated >= 0 else ""
        if not updated:
            created = v[lay.created] if lay.created >= 0 else ""
            used = "DateCreated" if created else "ExportDate"
            self.report.warn(
                name,
                line,
                "DateUpdated",
                "required-missing",
                f"DateUpdated: missing; {used} used",
                rid,
            )
            updated = created or self.export_date
            v[lay.updated] = updated
        if updated[:10] > self.past_limit:
            self.report.error(
                name,
                line,
                "DateUpdated",
                "future-version",
                "DateUpdated: after the export date; row skipped (it could never be replaced)",
                rid,
            )
            return None
        return version_of(updated)

    async def _ingest(self, records: list[Record], stats: FileStats) -> None:
        if not records or self.dry_run:
            return
        result = await self.ctx.engine.ingest(records)
        counts: dict[str, int] = {}
        for record, outcome in zip(records, result.outcomes, strict=True):
            counts[outcome] = counts.get(outcome, 0) + 1
            if record.meta.deleted and outcome in ("inserted", "updated"):
                stats.deleted += 1
        stats.inserted += counts.get("inserted", 0)
        stats.updated += counts.get("updated", 0)
        stats.unchanged += counts.get("unchanged", 0)
        stats.stale += counts.get("stale", 0)
        kind = records[0].meta.kind
        for outcome, n in counts.items():
            self.ctx.metrics.records_in.labels(kind, outcome).inc(n)

    async def _source_has(self, kind: str) -> bool:
        """Whether the store held any record of this kind from this source before the file.

        When it did not, a full refresh has nothing to replace (and skips the store's
        id-by-id comparison, the costliest part of a first import of a large export).
        """
        found = False
        batches = self.ctx.store.iter_records(kind, self.summary.source, batch=1)
        try:
            async for rows in batches:
                found = bool(rows)
                break
        finally:
            await batches.aclose()
        return found

    async def _after_file(
        self,
        src: ExportSource,
        lay: Layout,
        keep: IdMap[bool],
        stats: FileStats,
        had_records: bool,
        unread: int,
    ) -> None:
        file = lay.file
        scope: Container[int | str] = keep
        if file == "Client":
            # Person ids seen only in Enrollment.csv's pre-scan are not clients.
            for k in [k for k, val in self.persons.items() if type(val) is not int]:
                del self.persons[k]
            scope = self.persons
        elif file == "Enrollment":
            await self._households(src, lay)
            scope = self.enrollments
        elif file == "Project" and keep:
            self.refresh_projects = keep  # the export's scope: the projects it lists
        if self.summary.directive != "full" or not had_records or file in NEVER_DELETED:
            return
        refresh = self._refresh_scope()
        if refresh is None:
            return
        if unread:
            # A row whose id is unknown may carry any stored record: deleting "the others"
            # could delete it.
            self.report.warn(
                f"{file}.csv",
                0,
                "",
                "deletions-skipped",
                f"{file}.csv: {unread} rows could not be read, so their ids are unknown; "
                "full refresh deletions skipped for this file (its stored records stay)",
            )
            if file == "Enrollment" and not self.dry_run:
                # The in-scope enrollments are still needed by the files below them.
                await refresh.delete_missing(file, scope, delete=False)
            return
        if self.dry_run:
            return
        stats.deleted += await refresh.delete_missing(file, scope)

    def _refresh_scope(self) -> RefreshScope | None:
        """The full refresh's scope (the projects of Project.csv), or None when the export
        lists no project: then its scope is unknown and nothing is deleted (warned once)."""
        if self.refresh is None and self.refresh_projects is not None:
            projects = self.refresh_projects
            self.refresh = RefreshScope(self.ctx, self.summary.source, projects)
        if self.refresh is None and not self._scope_warned:
            self._scope_warned = True
            self.report.warn(
                "Project.csv",
                0,
                "",
                "deletions-skipped",
                "Project.csv is absent or lists no project, so the export's scope is unknown; "
                "full refresh deletions skipped (every stored record stays)",
            )
        return self.refresh

    # ---- parents that are not in this export: look them up in the store --------------------

    async def _resolve(
        self, lay: Layout, rows: list[tuple[int, list[str], str, int | str]]
    ) -> None:
        """Look up in the store the parents a batch names that this export has not given
        (only kinds the store held from this source before the import: nothing else can
        be found there)."""
        file = lay.file
        wanted: dict[str, set[str]] = {}
        stored = self.stored_kinds

        def missing(col: int, known: Container[int | str]) -> set[str]:
            return {v[col] for _l, v, _r, _k in rows if v[col] and ck(v[col]) not in known}

        def no_client(col: int) -> set[str]:
            persons = self.persons
            return {
                v[col]
                for _l, v, _r, _k in rows
                if v[col] and type(persons.get(ck(v[col]))) is not int
            }

        if file == "Project":
            if "hmis.Organization" in stored:
                wanted["hmis.Organization"] = missing(lay["OrganizationID"], self.orgs)
        elif file in PROJECT_FILES:
            if "hmis.Project" in stored:
                wanted["hmis.Project"] = missing(lay.project, self.projects)
        elif file == "Client":
            if "client" in stored:
                wanted["client"] = {r for _l, _v, r, k in rows if k not in self.persons}
        elif file == "Enrollment":
            if "client" in stored:
                wanted["client"] = no_client(lay.personal)
            if "hmis.Project" in stored:
                wanted["hmis.Project"] = missing(lay.project, self.projects)
        elif file in ENROLLMENT_FILES:
            if "client" in stored:
                wanted["client"] = no_client(lay.personal)
            if "enrollment" in stored:
                wanted["enrollment"] = missing(lay.enrollment, self.enrollments)
        await self._lookup({k: ids for k, ids in wanted.items() if ids})

    async def _lookup(self, wanted: Mapping[str, set[str]]) -> None:
        if not wanted:
            return
        async with self.ctx.store.transaction() as tx:
            for kind, ids in wanted.items():
                for rid in sorted(ids):
                    row = await tx.get_record(kind, self.summary.source, rid)
                    if row is not None:
                        self._remember_stored(kind, rid, row)

    def _remember_stored(self, kind: str, rid: str, row: Any) -> None:
        key = ck(rid)
        owner = self.owners.index(row.owner, bool(row.restricted))
        if kind == "client":
            self.persons[key] = owner
        elif kind == "enrollment":
            entry = orjson.loads(row.payload).get("entry_date") or ""
            ordinal = date.fromisoformat(entry).toordinal() if entry else 0
            self.enrollments[key] = (owner, ordinal, False)
        elif kind == "hmis.Project":
            self.projects[key] = owner
        elif kind == "hmis.Organization":
            fields = orjson.loads(row.payload).get("fields", {})
            vsp = str(fields.get("VictimServiceProvider", "")) == "1"
            agency, restricted = self._agency(rid, str(fields.get("OrganizationName", "")), vsp)
            self.orgs[key] = self.owners.index(agency, restricted)

    def _agency(self, org_id: str, name: str, vsp: bool) -> tuple[str, bool]:
        if self.dry_run:
            agency, _configured = agency_for_org(self.ctx.config.organization_agencies, org_id)
            known = self.ctx.gate.agencies.get(agency)
            return agency, vsp or (known is not None and known.kind == "vsp")
        agency, restricted, created = ensure_agency(
            self.ctx.gate, self.ctx.config, org_id, name, vsp
        )
        if created:
            self.summary.agencies_created.append(agency)
        return agency, restricted

    # ---- enrollments before clients: who owns each client --------------------------------

    async def _prescan_enrollments(self, src: ExportSource) -> None:
        """Note each person's earliest enrollment project (the Client owner); no validation."""
        if not src.has("Enrollment"):
            return
        quiet = Report(None)
        table = open_table(src, "Enrollment", columns(self.summary.version, "Enrollment"), quiet)
        if table is None:
            return
        lay = Layout(self.summary.version, "Enrollment")
        pc, prj, ent, dele = lay.personal, lay.project, lay["EntryDate"], lay.deleted
        projects: dict[str, str] = {}
        persons = self.persons
        latest = 1 << 30
        day_of = mapping.day
        try:
            for _line, v in iter_rows(table, quiet):
                pid, project = v[pc].strip(), v[prj].strip()
                if not pid or not project or v[dele]:
                    continue
                entry = v[ent]
                day = day_of(entry) if entry[4:5] == "-" == entry[7:8] else None
                if day is not None:  # what normalise_date reads as is, from a shared cache
                    ordinal = day.toordinal()
                else:
                    got = normalise_date(entry)
                    ordinal = date.fromisoformat(got[0]).toordinal() if got else latest
                project = projects.setdefault(project, project)
                key = ck(pid)
                current = persons.get(key)
                if current is None or ordinal < current[0]:
                    persons[key] = (ordinal, project)  # stored once per distinct value
        finally:
            table.close()
        if "hmis.Project" in self.stored_kinds:
            wanted = {p for p in projects if ck(p) not in self.projects}
            await self._lookup({"hmis.Project": wanted})

    # ---- row handlers --------------------------------------------------------------------

    def _meta(
        self,
        kind: str,
        rid: str,
        owner: int,
        version: str,
        deleted: bool,
        digest: str,
        sensitivity: frozenset[str] = frozenset(),
        flags: frozenset[str] = frozenset(),
        as_of: str = "",
    ) -> RecordMeta:
        agency, restricted = self.owners.items[owner]
        return make_meta(
            self.bc,
            kind,
            rid,
            agency,
            restricted,
            version,
            deleted,
            digest,
            sensitivity,
            flags,
            as_of,
        )

    def _row(
        self, lay: Layout, v: list[str], rid: str, owner: int, version: str, digest: str
    ) -> Record:
        cats, sensitivity = mapping.row_categories(lay, v)
        deleted = lay.deleted >= 0 and bool(v[lay.deleted])
        flags = mapping.dv_flags(lay, v)
        meta = self._meta(
            RECORD_KINDS[lay.file],
            rid,
            owner,
            version,
            deleted,
            digest,
            sensitivity,
            flags,
            mapping.facts_as_of(lay, v, flags),
        )
        return mapping.build_row(self.bc, lay, v, meta, cats)

    def _project_owner(self, project: str) -> int | None:
        """The owner of a project by its id as a row spells it (None when unknown)."""
        owner = self._project_owners.get(project)
        if owner is None and project:
            owner = self.projects.get(ck(project))
            if owner is not None:  # owners never change once known; few spellings per project
                self._project_owners[project] = owner
        return owner

    def _fk_error(self, lay: Layout, line: int, column: str, what: str, rid: str) -> None:
        self.report.error(
            f"{lay.file}.csv",
            line,
            column,
            "foreign-key",
            f"{column}: no such {what} in this export or the store; row skipped",
            rid,
        )

    def _check_user(self, lay: Layout, v: list[str], line: int, rid: str) -> None:
        if lay.user < 0 or not self.users or self.summary.directive != "full":
            return
        user = v[lay.user]
        if not user or user in self._known_users:
            return
        if ck(user) in self.users:
            self._known_users.add(user)  # at most one spelling per user: the canonical one
        else:
            self.report.warn(
                f"{lay.file}.csv",
                line,
                "UserID",
                "foreign-key",
                "UserID: not in User.csv; kept",
                rid,
            )

    def organization(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Organization.csv: the organisation's agency owns it (created when unmapped)."""
        vsp = v[lay["VictimServiceProvider"]] == "1"
        agency, restricted = self._agency(rid, v[lay["OrganizationName"]], vsp)
        owner = self.owners.index(agency, restricted)
        self.orgs[key] = owner
        if not self.first_org:
            self.first_org = rid
        return self._row(lay, v, rid, owner, version, digest)

    def project(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Project.csv: owned by its organisation's agency."""
        org = v[lay["OrganizationID"]]
        owner = self.orgs.get(ck(org)) if org else None
        if owner is None:
            self._fk_error(lay, line, "OrganizationID", "organisation", rid)
            return None
        self.projects[key] = owner
        self._check_user(lay, v, line, rid)
        return self._row(lay, v, rid, owner, version, digest)

    def user(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """User.csv: owned by the export's default owner."""
        self.users.add(key)
        return self._row(lay, v, rid, self.default_owner, version, digest)

    def project_child(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Funder, ProjectCoC, Inventory, Affiliation, HMIS/CE participation rows."""
        owner = self._project_owner(v[lay.project])
        if owner is None:
            self._fk_error(lay, line, "ProjectID", "project", rid)
            return None
        if lay.file == "Affiliation":
            res = v[lay["ResProjectID"]]
            if res and ck(res) not in self.projects:
                self.report.warn(
                    "Affiliation.csv",
                    line,
                    "ResProjectID",
                    "foreign-key",
                    "ResProjectID: no such project in this export; kept",
                    rid,
                )
        self._check_user(lay, v, line, rid)
        return self._row(lay, v, rid, owner, version, digest)

    def client(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Client.csv: owned by the earliest enrollment's owner, else the stored or default one."""
        pre = self.persons.get(key)
        if type(pre) is tuple:
            owner = self._project_owner(pre[1])
            if owner is None:
                owner = self.default_owner
        elif type(pre) is int:
            owner = pre
        else:
            owner = self.default_owner
        self.persons[key] = owner
        dob = v[lay.ix["DOB"]]
        birth_ok = bool(dob) and LOWEST_DATE <= dob <= self.past_limit
        deleted = lay.deleted >= 0 and bool(v[lay.deleted])
        self._check_user(lay, v, line, rid)
        meta = self._meta("client", rid, owner, version, deleted, digest)
        return mapping.build_client(self.bc, lay, v, meta, birth_ok)

    def enrollment(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Enrollment.csv: owned by its project's organisation's agency."""
        pid = v[lay.personal]
        if not pid or type(self.persons.get(ck(pid))) is not int:
            self._fk_error(lay, line, "PersonalID", "client", rid)
            return None
        owner = self._project_owner(v[lay.project])
        if owner is None:
            self._fk_error(lay, line, "ProjectID", "project", rid)
            return None
        entry = mapping.day(v[lay.ix["EntryDate"]])  # checked: a date or blank
        ordinal = entry.toordinal() if entry is not None else 0
        deleted = lay.deleted >= 0 and bool(v[lay.deleted])
        self.enrollments[key] = (owner, ordinal, False)
        if not deleted:
            ix = lay.ix
            self._count_head(v[ix["HouseholdID"]], v[ix["RelationshipToHoH"]], line, rid)
        self._check_user(lay, v, line, rid)
        meta = self._meta("enrollment", rid, owner, version, deleted, digest)
        return mapping.build_enrollment(self.bc, lay, v, meta)

    def _count_head(self, household: str, relationship: str, line: int, rid: str) -> None:
        if not household:
            return
        prefix, key = self._household_key(household, admit=True)
        counts = self.households.get(prefix)
        if counts is None:
            counts = self.households[prefix] = IdMap()
        heads = counts.get(key, 0)
        if relationship == "1":
            if heads >= 1:
                self.report.warn(
                    "Enrollment.csv",
                    line,
                    "RelationshipToHoH",
                    "household-heads",
                    "RelationshipToHoH: a second head of household in this HouseholdID; kept",
                    rid,
                )
            counts[key] = 2 if heads else 1
        elif key not in counts:
            counts[key] = 0

    def _household_key(self, household: str, admit: bool) -> tuple[str | None, int]:
        """A household's key: its prefix and number, else (None, its id's 64-bit hash) —
        never the id string. ``admit`` lets a new prefix in (up to _HOUSEHOLD_PREFIXES)."""
        m = _HOUSEHOLD(household)
        if m is not None:
            prefix = m.group(1)
            known = self.household_prefixes
            if prefix in known or (admit and len(known) < _HOUSEHOLD_PREFIXES):
                known.add(prefix)
                return prefix, int(m.group(2))
        return None, hash(household)

    async def _households(self, src: ExportSource, lay: Layout) -> None:
        """Report households without a head (full refresh only: a delta may omit the head)."""
        households, self.households = self.households, {}
        if self.summary.directive != "full":
            return
        missing = {(p, k) for p, counts in households.items() for k, n in counts.items() if n == 0}
        del households
        if not missing:
            return
        quiet = Report(None)
        table = open_table(src, "Enrollment", columns(self.summary.version, "Enrollment"), quiet)
        if table is None:
            return
        hc, dc = lay["HouseholdID"], lay.deleted
        try:
            for line, v in iter_rows(table, quiet):
                key = self._household_key(v[hc], admit=False)
                if key in missing and not v[dc]:
                    missing.discard(key)
                    self.report.warn(
                        "Enrollment.csv",
                        line,
                        "RelationshipToHoH",
                        "household-heads",
                        "RelationshipToHoH: household has no head of household; kept",
                        v[0].strip(),
                    )
        finally:
            table.close()

    def enrolled(
        self,
        lay: Layout,
        v: list[str],
        line: int,
        rid: str,
        key: int | str,
        version: str,
        digest: str,
    ) -> Record | None:
        """Rows of an enrollment (Exit, Services, IncomeBenefits, …): the enrollment's owner."""
        eid = v[lay.enrollment]
        ekey = ck(eid) if eid else None
        e = self.enrollments.get(ekey) if ekey is not None else None
        if e is None or ekey is None:
            self._fk_error(lay, line, "EnrollmentID", "enrollment", rid)
            return None
        pid = v[lay.personal]
        if not pid or type(self.persons.get(ck(pid))) is not int:
            self._fk_error(lay, line, "PersonalID", "client", rid)
            return None
        owner, entry, has_exit = e
        deleted = lay.deleted >= 0 and bool(v[lay.deleted])
        self._check_user(lay, v, line, rid)
        file = lay.file
        name = f"{file}.csv"
        if file == "Exit":
            exit_day = mapping.day(v[lay.ix["ExitDate"]])  # checked: a date or blank
            if exit_day is not None and entry and exit_day.toordinal() < entry:
                self.report.warn(
                    name,
                    line,
                    "ExitDate",
                    "exit-before-entry",
                    "ExitDate: before the enrollment's EntryDate; kept",
                    rid,
                )
            if not deleted:
                if has_exit:
                    self.report.warn(
                        name,
                        line,
                        "EnrollmentID",
                        "second-exit",
                        "EnrollmentID: the enrollment already has an exit; kept",
                        rid,
                    )
                else:
                    self.enrollments[ekey] = (owner, entry, True)
            meta = self._meta("exit", rid, owner, version, deleted, digest)
            return mapping.build_exit(self.bc, lay, v, meta)
        if file == "Services":
            sensitivity = mapping.service_sensitivity(lay, v)
            meta = self._meta("service", rid, owner, version, deleted, digest, sensitivity)
            return mapping.build_service(self.bc, lay, v, meta)
        if file == "Assessment":
            self.assessments.add(key)
        elif file in ("AssessmentQuestions", "AssessmentResults"):
            aid = v[lay["AssessmentID"]]
            if self.summary.directive == "full" and aid and ck(aid) not in self.assessments:
                self.report.warn(
                    name,
                    line,
                    "AssessmentID",
                    "foreign-key",
                    "AssessmentID: not in Assessment.csv; kept",
                    rid,
                )
        return self._row(lay, v, rid, owner, version, digest)


Handler = Callable[[_Import, Layout, list[str], int, str, int | str, str, str], "Record | None"]

_HANDLERS: dict[str, Handler] = {
    "Organization": _Import.organization,
    "Project": _Import.project,
    "User": _Import.user,
    "Client": _Import.client,
    "Enrollment": _Import.enrollment,
}


def _handler(file: str) -> Handler:
    if file in _HANDLERS:
        return _HANDLERS[file]
    if file in ENROLLMENT_FILES:
        return _Import.enrolled
    return _Import.project_child
