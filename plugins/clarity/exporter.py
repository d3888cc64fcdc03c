"""Write a HUD HMIS CSV export (FY2024 or FY2026) from the store.

Rows are written from the columns each record kept at import, so an unchanged row leaves
exactly as it came in — its ``DateUpdated`` included (a receiving HMIS keeps the newer
``DateUpdated``; the hub must never make a row look newer than it is). Converting between
versions maps columns by name (``HispanicLatinaeo`` ↔ ``HispanicLatinao``), leaves columns
the other version lacks blank and reports every column dropped; nothing is derived (no
``Sex`` from FY2024 gender).

Without ``recipient`` the export is the hub operator's copy of one HMIS source: every
record of that source except deleted ones without ``DateDeleted`` and restricted (victim
service provider) records. With ``recipient``, only what the consent gate releases to that
agency goes in: each person's records come from ``engine.disclose_person`` (which audits
every decision), and columns of a withheld category are blank. The descriptors (projects,
their ProjectCoC rows …) of the projects those rows name follow; the ProjectCoC rows of a
project in which an exported client fleeing domestic violence is enrolled leave without
their location columns (address, city, state, ZIP, geocode: where that person stays), as
the person's own location columns do.

A delta (``since``) is a self-contained file set, as a full one is: its client-level rows
are those updated since that date, and everything they refer to comes with them — the
descriptor files (Organization, User, Project and the project descriptor files) whole, as
a full export writes them, the enrollment of every row below an enrollment, the Client row
of every client named, and every enrollment of those clients (a Client's owner is decided
by its earliest enrollment). Rows not updated since leave unchanged (their own
``DateUpdated``), so a receiver that has them finds nothing to do; an empty hub that imports
the delta gets no unknown parent and the same owners (see :class:`_DeltaScope`).

A delta also carries the deletions made since its date: a record the store marked deleted
since then (``RecordRow.deleted_at``, e.g. a full refresh no longer carried it) counts as
changed and leaves as a deletion row: its stored columns with ``DateDeleted`` (and, unless
newer already, ``DateUpdated``) set to the time it was marked, in the export's local time
(see :meth:`_Export._deletion_row`); a row whose source gave it a ``DateDeleted`` leaves as
stored. Deletion rows follow the rules of every other row: restricted ones never leave; a
recipient's are decided by the consent gate (audited, with the export's purpose) as the
record stood, so a deletion of a record the recipient may not see is not disclosed; they
bring their parents as changed rows do. A parent a written row names (Client, Enrollment;
for a recipient also Project, Organization) that is deleted goes as a deletion row whenever
it was deleted, so the delta stays self-contained; deleted at an unknown time (``deleted_at``
NULL: before schema 10), its ``DateDeleted`` is its stored ``DateUpdated``, which stays as it
is. Other records deleted at an unknown time are left out of deltas. A full export leaves
every record deleted without a ``DateDeleted`` of its own out, as it always did (a
receiver's full refresh deletes it).

The files are written into a staging folder inside ``out`` and moved into place at the
end: a refused or failed export leaves ``out`` as it was. The writer holds its staging
folder's lock while it runs; an export removes the staging folders in ``out`` left by
exports no longer running (see :func:`_remove_stale_staging`). An explicit ``export_date``
(``--export-date``) earlier than a written row's ``DateUpdated`` or ``DateDeleted`` is
refused (see :func:`_check_export_date`), as is a ``since`` after it; for a recipient's
export the date is checked against the whole export of the source in its scope before any
gate decision is made, so a refusal leaves no audit entry (see :func:`_refuse_late_rows`).

Before anything is read, the stored data of organisations that became victim service
providers is marked restricted (``ownership.restrict_vsp_data``). ``HashStatus`` in
Export.csv is the status the client rows carry: never clear text over hashed values (see
:func:`decide_hash_status`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from consent.categories import PURPOSES
from hub.core.ports import RecordRow
from hub.fileio import locked_file
from hub.plugin_api import Record, SourceRow
from plugins.clarity import hashing
from plugins.clarity.csvio import format_row, header_line
from plugins.clarity.idmap import IdMap, ck
from plugins.clarity.ownership import restore_agencies, restrict_vsp_data
from plugins.clarity.records import ROW_FIELDS
from plugins.clarity.refresh import client_of, enrollment_of
from plugins.clarity.spec import (
    CSV_VERSION_LABEL,
    ENROLLMENT_FILES,
    FILES,
    FY2024,
    FY2026,
    LOCATION_COLUMNS,
    PROJECT_FILES,
    RECORD_KINDS,
    TYPED_FILES,
    column_category,
    column_names,
    columns,
    link_columns,
    rename_column,
)

log = logging.getLogger("hub.clarity")

SOFTWARE_NAME = "CIE Hub"
KIND_FILES: Mapping[str, str] = {kind: file for file, kind in RECORD_KINDS.items()}
_NAME_HASHED = ("FirstName", "MiddleName", "LastName", "NameSuffix")


class ExportError(Exception):
    """The export cannot be written (one line, no client data)."""


@dataclass
class ExportSummary:
    """What an export wrote (printed as JSON by ``hub export clarity``)."""

    out: str
    csv_version: str
    source: str = ""
    export_id: str = ""
    recipient: str = ""
    purpose: str = ""
    since: str = ""
    hash_status: str = "1"
    files: dict[str, int] = field(default_factory=dict)
    dropped_columns: dict[str, dict[str, int]] = field(default_factory=dict)
    blank_columns: dict[str, list[str]] = field(default_factory=dict)
    persons: int = 0
    withheld_records: int = 0
    withheld_columns: dict[str, dict[str, int]] = field(default_factory=dict)
    restricted_skipped: int = 0
    restricted_marked: int = 0
    locations_withheld: int = 0
    """Project descriptor rows (ProjectCoC) whose location columns a recipient export left
    blank: an exported client enrolled in the project is fleeing domestic violence."""
    hashed_at_source: int = 0

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON."""
        out: dict[str, Any] = {
            "out": self.out,
            "csv_version": self.csv_version,
            "source": self.source,
            "export_id": self.export_id,
            "hash_status": self.hash_status,
            "since": self.since or None,
            "files": self.files,
            "rows": sum(self.files.values()),
            "dropped_columns": self.dropped_columns,
            "blank_columns": self.blank_columns,
            "restricted_skipped": self.restricted_skipped,
        }
        if self.recipient:
            out.update(
                recipient=self.recipient,
                purpose=self.purpose,
                persons=self.persons,
                withheld_records=self.withheld_records,
                withheld_columns=self.withheld_columns,
                locations_withheld=self.locations_withheld,
            )
        if self.hashed_at_source:
            out["hashed_at_source"] = self.hashed_at_source
        if self.restricted_marked:
            out["restricted_marked"] = self.restricted_marked
        return out


class _Converter:
    """Maps stored columns (by name, of any version) to the target version's columns."""

    def __init__(self, file: str, target: str, summary: ExportSummary) -> None:
        self.file = file
        self.target = target
        self.names = column_names(target, file)
        self.summary = summary
        self._plans: dict[str, list[int]] = {}

    def _plan(self, source_version: str) -> list[int]:
        plan = self._plans.get(source_version)
        if plan is None:
            source_names = column_names(source_version, self.file)
            renamed = [
                rename_column(self.file, n, source_version, self.target) for n in source_names
            ]
            at = {n: i for i, n in enumerate(renamed)}
            plan = [at.get(n, -1) for n in self.names]
            self._plans[source_version] = plan
            blank = [n for n, i in zip(self.names, plan, strict=True) if i < 0]
            if blank:
                self.summary.blank_columns.setdefault(f"{self.file}.csv", blank)
            dropped = self.summary.dropped_columns.setdefault(f"{self.file}.csv", {})
            for name, new in zip(source_names, renamed, strict=True):
                if new not in self.names:
                    dropped.setdefault(name, 0)
            if not dropped:
                del self.summary.dropped_columns[f"{self.file}.csv"]
        return plan

    def from_values(self, version: str, values: Sequence[str]) -> list[str]:
        """Target columns from a stored row of ``version``."""
        plan = self._plan(version)
        if len(plan) == len(values) and version == self.target:
            return list(values)
        self._count_dropped(column_names(version, self.file), values)
        return [values[i] if 0 <= i < len(values) else "" for i in plan]

    def from_fields(self, fields: Mapping[str, str]) -> list[str]:
        """Target columns from a stored SourceRow's fields (names of either version)."""
        other = FY2024 if self.target == FY2026 else FY2026
        out: list[str] = []
        for name in self.names:
            value = fields.get(name)
            if value is None:
                value = fields.get(rename_column(self.file, name, self.target, other), "")
            out.append(value)
        known = set(self.names) | {
            rename_column(self.file, n, self.target, other) for n in self.names
        }
        for name, value in fields.items():
            if name not in known:
                dropped = self.summary.dropped_columns.setdefault(f"{self.file}.csv", {})
                dropped[name] = dropped.get(name, 0) + (1 if value else 0)
        return out

    def _count_dropped(self, names: Sequence[str], values: Sequence[str]) -> None:
        dropped = self.summary.dropped_columns.get(f"{self.file}.csv")
        if not dropped:
            return
        for name, value in zip(names, values, strict=False):
            if value and name in dropped:
                dropped[name] += 1


class _Rows:
    """Where an export's rows go: converted to the target version and counted.

    With ``latest`` (an explicit ``ExportDate``, HUD ``T`` text), it counts the rows whose
    ``DateUpdated`` or ``DateDeleted`` is later (:attr:`later`, :attr:`latest_seen`). Writes
    no file: :class:`_Writer` does; this alone serves the pass that checks a recipient's
    export date before the gate decides anything (:func:`_refuse_late_rows`)."""

    def __init__(self, version: str, summary: ExportSummary, latest: str = "") -> None:
        self.version = version
        self.summary = summary
        self.latest = latest
        self.later = 0
        self.latest_seen = ""
        self.converters: dict[str, _Converter] = {}
        self.times: dict[str, list[int]] = {}
        for file in FILES:
            cols = columns(version, file)
            self.converters[file] = _Converter(file, version, summary)
            self.times[file] = [
                i for i, c in enumerate(cols) if c.name in ("DateUpdated", "DateDeleted")
            ]
            summary.files[f"{file}.csv"] = 0

    def write(self, file: str, values: Sequence[str]) -> None:
        """Take one row (already in target column order)."""
        if self.latest:
            self._note_times(file, values)
        self.summary.files[f"{file}.csv"] += 1

    def _note_times(self, file: str, values: Sequence[str]) -> None:
        """Count a row dated (updated or deleted) after :attr:`latest`."""
        later = [values[i] for i in self.times[file] if values[i] > self.latest]
        if later:
            self.later += 1
            self.latest_seen = max(self.latest_seen, *later)


class _Writer(_Rows):
    """The 24 output files, written as rows arrive into a staging folder inside ``out`` and
    moved into ``out`` only by :meth:`commit`: a refused or failed export leaves ``out`` as
    it was (a folder it created is removed again).

    The writer holds an exclusive lock on its staging folder (:data:`_STAGING_LOCK`) until it
    is done, so that a later export can tell the folder of a running export from one left by
    an export that was killed, and removes only the latter (:func:`_remove_stale_staging`)."""

    def __init__(self, out: Path, version: str, summary: ExportSummary, latest: str = "") -> None:
        super().__init__(version, summary, latest)
        self.out = out
        self.created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        removed = _remove_stale_staging(out)
        if removed:
            log.info(
                "clarity export: removed %d staging folders of exports no longer running", removed
            )
        self.staging, self._lock = _new_staging(out)
        self.committed = False
        self.files: dict[str, IO[str]] = {}
        self.quoted: dict[str, list[bool]] = {}
        try:
            for file in FILES:
                cols = columns(version, file)
                handle = (self.staging / f"{file}.csv").open("w", encoding="utf-8", newline="")
                self.files[file] = handle
                handle.write(header_line(cols))
                self.quoted[file] = [c.type == "S" for c in cols]
        except BaseException:
            self.discard()
            raise

    def write(self, file: str, values: Sequence[str]) -> None:
        """Append one row (already in target column order)."""
        super().write(file, values)
        self.files[file].write(format_row(values, self.quoted[file]))

    def close(self) -> None:
        """Close every file."""
        for handle in self.files.values():
            handle.close()

    def commit(self) -> None:
        """Move the written files into ``out`` (each replacing the file of that name), holding
        a lock on ``out`` (:func:`_commit_lock`), so that two exports finishing into one
        folder at once leave the whole set of one of them, never a mix."""
        self.close()
        with _commit_lock(self.out):
            for file in FILES:
                os.replace(self.staging / f"{file}.csv", self.out / f"{file}.csv")
        self.committed = True
        self._remove_staging()

    def discard(self) -> None:
        """Unless committed: remove the staging folder (and ``out`` when it made it)."""
        self.close()
        if self.committed:
            return
        self._remove_staging()
        if self.created:
            with contextlib.suppress(OSError):
                self.out.rmdir()

    def _remove_staging(self) -> None:
        """Remove the staging folder, then let go of its lock (once)."""
        if self._lock < 0:
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        os.close(self._lock)
        self._lock = -1


_STAGING_PREFIX = ".export-"
_STAGING_SUFFIX = ".partial"
_STAGING_LOCK = ".lock"
"""The file in a staging folder its export holds locked (``flock``, exclusive) while it runs:
the lock goes when the process ends, however it ends."""
_STAGING_TRIES = 5
_COMMIT_WAIT = 30.0
"""Seconds an export waits for another one to finish moving its files into ``out``."""


@contextlib.contextmanager
def _commit_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder ``out`` itself (no file is left in it) while an
    export moves its files in, waiting up to :data:`_COMMIT_WAIT` seconds for another
    export's moves (24 renames) to end."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + _COMMIT_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ExportError(
                        f"another export kept {out} locked for {_COMMIT_WAIT:g} s"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def _new_staging(out: Path) -> tuple[Path, int]:
    """A new staging folder in ``out`` and the descriptor of its lock, held exclusive."""
    for _ in range(_STAGING_TRIES):
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, suffix=_STAGING_SUFFIX, dir=out))
        fd = _lock_staging(staging)
        if fd is not None:
            return staging, fd
    raise ExportError(f"cannot lock a staging folder in {out}: other exports keep removing it")


def _lock_staging(staging: Path) -> int | None:
    """Lock a new staging folder: the lock's descriptor, or None when another export's
    clean-up took the folder (for a dead export's) between its making and its locking."""
    lock = staging / _STAGING_LOCK
    try:
        fd = locked_file(lock, fcntl.LOCK_EX)
    except FileNotFoundError:  # removed already
        return None
    if fd is None:
        return None
    try:
        # The clean-up may have removed the file this descriptor locks before it was locked.
        if os.path.samestat(os.fstat(fd), os.stat(lock)):
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def _remove_stale_staging(out: Path) -> int:
    """Remove the staging folders in ``out`` whose export no longer runs (killed: a running
    export holds its folder's lock); how many. A folder without a lock file (left by a hub
    before the lock, or made a moment ago and not locked yet) is taken as well: its maker
    finds it gone and makes another (:func:`_lock_staging`)."""
    removed = 0
    for folder in out.glob(f"{_STAGING_PREFIX}*{_STAGING_SUFFIX}"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            fd = locked_file(folder / _STAGING_LOCK, fcntl.LOCK_EX)
        except OSError:  # gone meanwhile, or not ours to lock
            continue
        if fd is None:  # its export is running
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)
        if not folder.exists():
            removed += 1
    return removed


# ---- entry point --------------------------------------------------------------------------


async def export_hmis(
    ctx: Any,
    out: Path,
    *,
    csv_version: str,
    recipient: str | None = None,
    purpose: str = "coordination",
    since: str | None = None,
    hash_status: str | None = None,
    source: str | None = None,
    export_date: datetime | None = None,
) -> ExportSummary:
    """Write an export of one HMIS source to ``out``; see the module docstring.

    ``hash_status`` None writes the client rows as they were imported and declares the
    ``HashStatus`` they carry; "1" asks for clear text, "4" for SHA-256 (clear names and
    SSNs are hashed). An :class:`ExportError` refuses, before any file is written, an export
    whose client rows would not all carry the declared status (see :func:`decide_hash_status`).
    """
    version = (
        FY2026 if csv_version in ("2026", FY2026) else FY2024 if csv_version in ("2024",) else ""
    )
    if not version:
        raise ExportError(f"unsupported --csv-version {csv_version!r} (2024 or 2026)")
    if hash_status not in (None, "1", "4"):
        raise ExportError(f"unsupported --hash-status {hash_status!r} (1 or 4)")
    if recipient is not None and purpose not in PURPOSES:
        # The gate would deny every record (PURPOSE_NOT_PERMITTED): an empty export.
        raise ExportError(f"unknown --purpose {purpose!r} ({', '.join(PURPOSES)})")
    # HUD times (type T) are local times without a zone: the hub's clock, not UTC.
    when = (export_date or datetime.now()).replace(microsecond=0)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S")
    export_id = "hub" + when.strftime("%Y%m%d%H%M%S")
    summary = ExportSummary(
        out=str(out),
        csv_version=CSV_VERSION_LABEL[version],
        export_id=export_id,
        recipient=recipient or "",
        purpose=purpose if recipient else "",
        since=since or "",
        hash_status=hash_status or "1",
    )
    await restore_agencies(ctx)
    if recipient is not None and recipient not in ctx.gate.agencies:
        raise ExportError(f"unknown agency {recipient!r} for --recipient")
    src, export_row, default_owner = await _source(ctx, source)
    summary.source = src
    # Stored data of an organisation that became a victim service provider after it was
    # imported (by a hub before this check existed) is marked before anything is read.
    summary.restricted_marked = await restrict_vsp_data(ctx, src)
    job = _Export(ctx, version, summary, src, since, hash_status or "1", export_id)
    job.default_owner = default_owner
    if export_date is not None and job.since > stamp.replace(" ", "T"):
        raise ExportError(f"--since {since} is after --export-date {stamp}")
    if job.since:
        job.scope = await job.delta_scope(parents=recipient is not None)
    statuses = await job.client_hash_statuses(hash_status, everything=recipient is None)
    job.hash_status = summary.hash_status = decide_hash_status(hash_status, statuses)
    if recipient is not None and export_date is not None:
        await _refuse_late_rows(job, stamp)
    writer = _Writer(out, version, summary, stamp if export_date is not None else "")
    try:
        if recipient is None:
            await job.everything(writer)
        else:
            await job.for_recipient(writer, recipient, purpose)
        writer.write("Export", job.export_values(export_row, when))
        writer.close()
        # For a recipient, a backstop: what changed since _refuse_late_rows looked (rows
        # imported, consents given meanwhile) can only be refused after it was audited.
        _check_export_date(writer, stamp)
        writer.commit()
    finally:
        writer.discard()
    log.info("clarity export %s: %d rows to %s", src, sum(summary.files.values()), out)
    return summary


async def _refuse_late_rows(job: _Export, stamp: str) -> None:
    """Refuse (:func:`_check_export_date`) a recipient's export whose explicit export date is
    earlier than a row of the source in its scope, before the export makes a decision the
    gate audits: the audit log must not hold releases of rows that never left.

    The rows counted are those the whole export of the source would write, restricted rows
    included (the gate releases a victim service provider's rows to that provider): no
    gate, no audit, no file, what the hub's administrator, who runs the export, may see
    anyway. A recipient gets a subset of them, so this can refuse a date that the
    recipient's rows alone would allow; never the other way round."""
    twin = job.counting_copy()
    rows = _Rows(job.version, twin.summary, stamp)
    await twin.everything(rows)
    _check_export_date(rows, stamp)


def _check_export_date(writer: _Rows, stamp: str) -> None:
    """Refuse an explicit ``--export-date`` earlier than a row the export wrote was updated
    or deleted (the files are not kept): a receiver skips a row dated after its export's
    ``ExportDate`` as a version from the future, and a deletion so skipped leaves the record
    live there. Rewriting the rows' dates instead would change data (and which version a
    receiver keeps). The message gives counts and a time, no client data."""
    if not writer.later:
        return
    raise ExportError(
        f"--export-date {stamp}: {writer.later} rows to export were updated or deleted after "
        f"it (the latest at {writer.latest_seen}); a receiver skips a row dated after the "
        f"ExportDate as a future version. Give --export-date {writer.latest_seen} or later, or "
        "leave it out (now); nothing was written"
    )


async def _source(ctx: Any, wanted: str | None) -> tuple[str, dict[str, str], str]:
    """The HMIS source to export, its latest stored Export.csv row and that row's owner (the
    import's default owner: the agency of the export's first organisation, see
    :meth:`_Export.everything`)."""
    latest: dict[str, tuple[str, dict[str, str], str]] = {}
    async for rows in ctx.store.iter_records("hmis.Export"):
        for row in rows:
            fields = orjson.loads(row.payload).get("fields", {})
            seen = latest.get(row.source)
            if seen is None or row.version >= seen[0]:
                latest[row.source] = (row.version, fields, row.owner)
    if wanted:
        key = wanted if wanted.startswith("hmis:") else f"hmis:{wanted}"
        if key not in latest:
            raise ExportError(f"no HMIS source {wanted!r} in the store")
        return key, latest[key][1], latest[key][2]
    if not latest:
        raise ExportError("no HUD CSV data in the store (import an export first)")
    if len(latest) > 1:
        names = ", ".join(sorted(s.removeprefix("hmis:") for s in latest))
        raise ExportError(f"several HMIS sources in the store ({names}); choose one with --source")
    key = next(iter(latest))
    return key, latest[key][1], latest[key][2]


class _Export:
    def __init__(
        self,
        ctx: Any,
        version: str,
        summary: ExportSummary,
        source: str,
        since: str | None,
        hash_status: str,
        export_id: str,
    ) -> None:
        self.ctx = ctx
        self.version = version
        self.summary = summary
        self.source = source
        self.since = _since_version(since) if since else ""
        self.since_at = _as_utc(self.since) if since else None
        """``since`` as a UTC time, to compare with the store's ``deleted_at``."""
        self.hash_status = hash_status
        self.export_id = export_id
        self.projects: set[str] = set()
        self.users: set[str] = set()
        self.recipient = ""
        self.named: set[str] = set()
        """Projects the rows written for the current person name."""
        self.dv_projects: set[str] = set()
        """Projects of exported clients fleeing domestic violence (their locations are
        withheld from the recipient)."""
        self.default_owner = ""
        self.scope: _DeltaScope | None = None
        """A delta's unchanged parents (set before anything is written)."""
        self.with_restricted = False
        """Whether restricted rows are taken too (only by the pass that counts rows, see
        :meth:`counting_copy`: an operator's export never writes them)."""
        """The owner of the source's latest Export row (its import's default owner)."""

    def counting_copy(self) -> _Export:
        """The same export (source, version, delta scope …) afresh, with a summary of its
        own: to count the rows it would write without writing them (see
        :func:`_refuse_late_rows`)."""
        summary = ExportSummary(out=self.summary.out, csv_version=self.summary.csv_version)
        twin = _Export(
            self.ctx, self.version, summary, self.source, None, self.hash_status, self.export_id
        )
        twin.since, twin.since_at = self.since, self.since_at
        twin.default_owner, twin.scope = self.default_owner, self.scope
        twin.with_restricted = True  # the gate releases them to their owner
        return twin

    # ---- rows ----------------------------------------------------------------------------

    def _values(self, writer: _Rows, file: str, payload: Mapping[str, Any]) -> list[str] | None:
        conv = writer.converters[file]
        if file in TYPED_FILES:
            stored = payload.get("hmis_columns")
            if not stored:
                return None
            values = conv.from_values(str(payload.get("hmis_version") or FY2024), stored)
        else:
            values = conv.from_fields(payload.get("fields", {}))
        names = conv.names
        if "ExportID" in names:
            values[names.index("ExportID")] = self.export_id
        if file == "Client":
            if payload.get("hmis_hash_status"):
                self.summary.hashed_at_source += 1
            elif self.hash_status == "4":
                _hash_client(names, values)
        return values

    async def client_hash_statuses(
        self, requested: str | None, *, everything: bool
    ) -> dict[str, int]:
        """How many of the client rows this export may write carry each HashStatus, as they
        would be written (a clear row hashed for ``requested`` "4" counts as 4).

        ``everything``: the operator's export (its exact client rows); else a recipient's,
        whose rows are some of the source's live client rows (all of these are counted) and,
        in a delta, of its client rows marked deleted since (their deletion rows).
        """
        counts: dict[str, int] = {}
        async for rows in self.ctx.store.iter_records("client", self.source):
            for row in rows:
                if row.restricted:
                    continue
                if (
                    self.since
                    and not self._changed(row)
                    and (self.scope is None or not self.scope.carries("Client", row))
                ):
                    continue
                status = ""
                if row.deleted or b'"hmis_hash_status"' in row.payload:  # else: clear
                    payload = orjson.loads(row.payload)
                    if row.deleted and not self._writes_deleted_client(row, payload, everything):
                        continue
                    status = str(payload.get("hmis_hash_status") or "")
                if not status:
                    status = "4" if requested == "4" else "1"
                counts[status] = counts.get(status, 0) + 1
        return counts

    def _writes_deleted_client(
        self, row: Any, payload: Mapping[str, Any], everything: bool
    ) -> bool:
        """Whether the export may write a deleted client row (as :meth:`_deletion_row` and
        :meth:`for_recipient` decide), given it passed the delta's date test: a parent the
        delta carries always may (whenever it was deleted)."""
        if everything and _stored_date_deleted(payload):
            return True
        if self.scope is None:
            return False
        if self.scope.carries("Client", row):
            return True
        return bool(row.deleted_at) and (everything or self._deleted_since(row))

    def _exportable(self, row: Any, *, whole: bool = False) -> bool:
        """Not restricted, and updated since ``since`` (unless ``whole``: a descriptor file,
        which a delta carries whole)."""
        if row.restricted and not self.with_restricted:
            self.summary.restricted_skipped += 1
            return False
        return whole or not (self.since and row.version < self.since)

    def _deleted_since(self, row: Any) -> bool:
        """Whether a delta's date is set and the store marked ``row`` deleted since then (a
        deletion at an unknown time, ``deleted_at`` None, is not since anything)."""
        at: str | None = row.deleted_at if row.deleted else None
        return at is not None and self.since_at is not None and _parse_utc(at) >= self.since_at

    def _changed(self, row: Any) -> bool:
        """Whether a delta carries ``row`` as changed: updated since its date, or marked
        deleted since then."""
        return row.version >= self.since or self._deleted_since(row)

    def _deletion_row(
        self,
        writer: _Rows,
        file: str,
        values: list[str],
        row: Any,
        *,
        whole: bool = False,
        parent: bool = False,
    ) -> bool:
        """Make ``values`` (a deleted row's stored columns, target order) the row the export
        writes for it; whether it is written at all.

        A row whose source gave it a ``DateDeleted`` leaves as stored. Else the store marked
        it deleted (a full refresh no longer carried it): in a delta, when the time is known,
        ``DateDeleted`` is that time and ``DateUpdated`` too unless the stored one is newer
        (a receiver keeps the row with the newer ``DateUpdated``; this row *is* changed),
        both in the export's local time as ``ExportDate``. A descriptor file (``whole``)
        carries only the deletions made since the delta's date. A full export leaves it out.

        A parent a written row names (``parent``, or a Client / Enrollment the delta's scope
        carries) leaves deleted whenever it was deleted, so the delta stays self-contained:
        deleted at an unknown time (before schema 10), its ``DateDeleted`` is its own stored
        ``DateUpdated`` (the one time the record carries; nothing is invented) and its
        ``DateUpdated`` stays as stored (a receiver holding that version deletes it, one
        holding a newer version keeps it)."""
        if _date_deleted(writer, file, values):
            return True
        names = writer.converters[file].names
        if not self.since or "DateDeleted" not in names:
            return False
        parent = parent or (self.scope is not None and self.scope.carries(file, row))
        stored = row.version.replace("T", " ")
        updated = names.index("DateUpdated") if "DateUpdated" in names else -1
        if row.deleted_at and (not whole or parent or self._deleted_since(row)):
            when = _local_text(row.deleted_at)
            values[names.index("DateDeleted")] = when
            if updated >= 0:
                values[updated] = max(when, stored)
            return True
        if not parent:
            return False
        values[names.index("DateDeleted")] = (values[updated] if updated >= 0 else "") or stored
        return True

    def _emit(self, writer: _Rows, file: str, values: list[str]) -> None:
        names = writer.converters[file].names
        if "ProjectID" in names and values[names.index("ProjectID")]:
            self.projects.add(values[names.index("ProjectID")])
            self.named.add(values[names.index("ProjectID")])
        if "UserID" in names and values[names.index("UserID")]:
            self.users.add(values[names.index("UserID")])
        writer.write(file, values)

    async def everything(self, writer: _Rows) -> None:
        """Every exportable record of the source, file by file, in id order.

        Organizations owned by the default owner come first: an import takes the agency of
        the first organisation as the owner of User rows, so re-importing the export leaves
        them where they are.
        """
        scope = self.scope
        for file in FILES:
            if file == "Export":
                continue
            first: list[list[str]] = []
            later: list[list[str]] = []
            whole = file in _DESCRIPTORS  # a delta carries the descriptor files whole
            async for rows in self.ctx.store.iter_records(RECORD_KINDS[file], self.source):
                for row in rows:
                    if row.restricted and not self.with_restricted:
                        self.summary.restricted_skipped += 1
                        continue
                    if (
                        self.since
                        and not whole
                        and not self._changed(row)
                        and not (scope is not None and scope.carries(file, row))
                    ):
                        continue
                    payload = orjson.loads(row.payload)
                    values = self._values(writer, file, payload)
                    if values is None:
                        continue
                    if row.deleted and not self._deletion_row(
                        writer, file, values, row, whole=whole
                    ):
                        continue
                    if file != "Organization":
                        writer.write(file, values)
                    else:  # a few rows
                        (first if row.owner == self.default_owner else later).append(values)
            for values in (*first, *later):
                writer.write(file, values)

    async def delta_scope(self, *, parents: bool = False) -> _DeltaScope:
        """The unchanged parents a delta must carry for the rows changed since ``since``
        (updated, or marked deleted), and the client-level rows marked deleted since;
        with ``parents`` (a recipient's export), also the deleted Client and Enrollment
        records it carries as parents (:attr:`_DeltaScope.parents`)."""
        scope = _DeltaScope()
        await self._scan_below_enrollments(scope)
        deleted = await self._scan_enrollments(scope, parents)
        await self._scan_clients(scope, parents)
        if parents:
            scope.parents += [
                ("enrollment", source_id, client)
                for source_id, client in deleted
                if scope.carries_enrollment(source_id, client)
            ]
        return scope

    async def _scan_below_enrollments(self, scope: _DeltaScope) -> None:
        """The enrollments and clients the changed rows below an enrollment name."""
        for file in sorted(ENROLLMENT_FILES, key=FILES.index):
            kind = RECORD_KINDS[file]
            async for rows in self.ctx.store.iter_records(kind, self.source):
                for row in rows:
                    if row.restricted or not self._changed(row):
                        continue
                    payload = orjson.loads(row.payload)
                    enrollment, client = enrollment_of(payload), client_of(row, payload)
                    if enrollment:
                        scope.enrollments[ck(enrollment)] = True
                    if client:
                        scope.clients[ck(client)] = True
                    if self._deleted_since(row):
                        scope.deleted.append((kind, row.source_id, client))

    async def _scan_enrollments(self, scope: _DeltaScope, parents: bool) -> list[tuple[str, str]]:
        """The clients of the changed and the carried enrollments; with ``parents``, returns
        the enrollments deleted but not since the delta's date (id, client id)."""
        deleted: list[tuple[str, str]] = []
        async for rows in self.ctx.store.iter_records("enrollment", self.source):
            for row in rows:
                if row.restricted:
                    continue
                named = self._changed(row) or ck(row.source_id) in scope.enrollments
                before = parents and row.deleted and not self._deleted_since(row)
                if not (named or before):
                    continue
                client = client_of(row, orjson.loads(row.payload))
                if before:
                    deleted.append((row.source_id, client))
                if named and client:
                    scope.clients[ck(client)] = True
                if named and self._deleted_since(row):
                    scope.deleted.append(("enrollment", row.source_id, client))
        return deleted

    async def _scan_clients(self, scope: _DeltaScope, parents: bool) -> None:
        """The changed clients (and, with ``parents``, the deleted clients carried)."""
        async for rows in self.ctx.store.iter_records("client", self.source):
            for row in rows:
                if row.restricted:
                    continue
                since = row.deleted and self._deleted_since(row)
                if self._changed(row):
                    scope.clients[ck(row.source_id)] = True
                    if since:
                        scope.deleted.append(("client", row.source_id, row.source_id))
                if parents and row.deleted and not since and ck(row.source_id) in scope.clients:
                    scope.parents.append(("client", row.source_id, row.source_id))

    async def for_recipient(self, writer: _Rows, recipient: str, purpose: str) -> None:
        """What the gate releases to ``recipient``, person by person, then the descriptors.

        A person fleeing domestic violence has the location columns of their rows withheld by
        the gate; the projects their rows name have theirs withheld here (ProjectCoC's
        address, city, ZIP, geocode: where the person stays), see :meth:`_fleeing_projects`.

        A delta adds the person's records marked deleted since its date that the gate
        releases (:meth:`_released_deletions`); such a deletion counts as a change of the
        person, so their Client and enrollments come with it — the deleted ones too, whenever
        they were deleted, as the gate releases them (deletion rows: a written row may name
        them).
        """
        self.recipient = recipient
        named: dict[str, set[str]] = {}
        persons: set[str] = set()
        async for rows in self.ctx.store.iter_records("client", self.source):
            persons.update(r.person_id for r in rows if r.person_id and not r.deleted)
        scope = self.scope
        deletions = await self._by_person(scope.deleted if scope else [])
        parents = await self._by_person(scope.parents if scope else [])
        persons.update(deletions)
        persons.update(parents)
        order = {RECORD_KINDS[f]: i for i, f in enumerate(FILES)}
        for person in sorted(persons):
            ours = await self._person_rows(
                person, deletions.get(person, ()), parents.get(person, ()), recipient, purpose
            )
            ours.sort(key=lambda p: (order.get(p[0].meta.kind, 99), p[0].meta.key.id))
            self.named = set()
            for rec, redacted, row in ours:
                self._released_row(writer, rec, redacted, row)
            if self.named:
                named[person] = self.named
        self.dv_projects = await self._fleeing_projects(named)
        await self._descriptors(writer)

    async def _person_rows(
        self,
        person: str,
        deletions: Sequence[tuple[str, str]],
        parents: Sequence[tuple[str, str]],
        recipient: str,
        purpose: str,
    ) -> list[tuple[Record, dict[str, Any], RecordRow]]:
        """The person's rows of this source the gate releases to ``recipient`` that the
        export writes: all (a full export), else those changed since the delta's date and,
        when there are any, the person's Client and enrollments (live, and the ``parents``
        deleted before the delta's date), with the ``deletions`` made since."""
        withheld: dict[str, int] = {}
        kinds = [RECORD_KINDS[f] for f in FILES if f not in _DESCRIPTORS and f != "Export"]
        released = await self.ctx.engine.released_rows(
            person, recipient=recipient, purpose=purpose, kinds=kinds, withheld=withheld
        )
        ours = [item for item in released if item[0].meta.key.source == self.source]
        self.summary.withheld_records += withheld.get(self.source, 0)
        gone = await self._released_deletions(person, deletions, recipient, purpose)
        if ours or gone:
            self.summary.persons += 1
        if not self.since:
            return ours + gone
        changed = bool(gone) or any(item[2].version >= self.since for item in ours)
        if not changed:
            return []
        ours = [
            item
            for item in ours
            if item[2].version >= self.since or item[0].meta.kind in _PARENT_KINDS
        ]
        before = await self._released_deletions(person, parents, recipient, purpose, since=False)
        return ours + gone + before

    async def _by_person(
        self, records: Sequence[tuple[str, str, str]]
    ) -> dict[str, list[tuple[str, str]]]:
        """Client-level records ((kind, id, client id) each, as :class:`_DeltaScope` lists
        them) by the person they are about: (kind, id) each. A record whose client is linked
        to no person is about nobody the gate can decide for: left out."""
        if not records:
            return {}
        clients = sorted({client for _, _, client in records if client})
        persons: dict[str, str] = {}
        for start in range(0, len(clients), 500):
            async with self.ctx.store.transaction() as tx:
                persons.update(
                    await tx.persons_of_clients(self.source, clients[start : start + 500])
                )
        out: dict[str, list[tuple[str, str]]] = {}
        for kind, source_id, client in records:
            person = persons.get(client) if client else None
            if person:
                out.setdefault(person, []).append((kind, source_id))
        return out

    async def _released_deletions(
        self,
        person: str,
        keys: Sequence[tuple[str, str]],
        recipient: str,
        purpose: str,
        *,
        since: bool = True,
    ) -> list[tuple[Record, dict[str, Any], RecordRow]]:
        """The person's records marked deleted since the delta's date (else, not ``since``:
        deleted parents, whenever deleted) that the gate releases to ``recipient`` for
        ``purpose``: decided (and audited) as the records stood when they were deleted, as
        live ones are — a deletion of a record the recipient may not see is not disclosed.
        Read again in the deciding transaction: one restored (or restricted) since is left
        out."""
        if not keys:
            return []

        def keep(row: RecordRow) -> bool:
            if since:
                return row.deleted and self._deleted_since(row)
            return row.deleted and not row.restricted

        withheld: dict[str, int] = {}
        released: list[tuple[Record, dict[str, Any], RecordRow]]
        released = await self.ctx.engine.released_rows(
            person,
            recipient=recipient,
            purpose=purpose,
            withheld=withheld,
            keys=[(kind, self.source, source_id) for kind, source_id in keys],
            keep=keep,
        )
        self.summary.withheld_records += sum(withheld.values())
        return released

    async def _fleeing_projects(self, named: Mapping[str, set[str]]) -> set[str]:
        """The projects named by the rows of exported persons who are fleeing domestic
        violence (as the gate knows it: any source linked to the person says so)."""
        found: set[str] = set()
        people = sorted(named)
        for start in range(0, len(people), 500):
            async with self.ctx.store.transaction() as tx:
                facts = await self.ctx.gate.facts_of(tx, people[start : start + 500])
            for person, fact in facts.items():
                if fact.fleeing_dv:
                    found |= named[person]
        return found

    def _released_row(
        self, writer: _Rows, rec: Record, redacted: Mapping[str, Any], row: RecordRow
    ) -> None:
        """Write a released record's stored row, its columns of withheld categories blank (a
        record marked deleted as its deletion row, see :meth:`_deletion_row`)."""
        file = KIND_FILES.get(rec.meta.kind)
        if file is None:
            return
        values = self._values(writer, file, orjson.loads(row.payload))
        if values is None:
            return
        names = writer.converters[file].names
        links = link_columns(file)
        if isinstance(rec, SourceRow):
            shown = redacted.get("fields")
            keep = set(shown) if isinstance(shown, Mapping) else set()
            allowed = {n for n in names if n in keep or n in links}
        else:
            released = released_categories(rec, redacted)
            allowed = {n for n in names if n in links or column_category(file, n) in released}
        withheld = self.summary.withheld_columns.setdefault(f"{file}.csv", {})
        for i, name in enumerate(names):
            if name not in allowed and values[i]:
                values[i] = ""
                withheld[name] = withheld.get(name, 0) + 1
        if not withheld:
            del self.summary.withheld_columns[f"{file}.csv"]
        if row.deleted and not self._deletion_row(writer, file, values, row):
            return
        self._emit(writer, file, values)

    async def _descriptors(self, writer: _Rows) -> None:
        """Organisations, projects, their descriptor rows and users the written rows name
        (in a delta, with those of them marked deleted since its date, as deletion rows; a
        deleted project or organisation a written row names, whenever deleted)."""
        orgs: set[str] = set()
        project_rows: list[list[str]] = []
        at = column_names(self.version, "Project").index("OrganizationID")
        async for rows in self.ctx.store.iter_records("hmis.Project", self.source):
            for row in rows:
                if row.source_id not in self.projects or not self._exportable(row, whole=True):
                    continue
                values = self._values(writer, "Project", orjson.loads(row.payload))
                if values is not None and (
                    not row.deleted
                    or self._deletion_row(writer, "Project", values, row, parent=True)
                ):
                    project_rows.append(values)
                    orgs.add(values[at])
        await self._filtered(
            writer,
            "Organization",
            lambda v, n: v[n.index("OrganizationID")] in orgs,
            parents=True,
        )
        for values in project_rows:
            self._emit(writer, "Project", values)
        for file in sorted(PROJECT_FILES, key=FILES.index):
            await self._filtered(
                writer, file, lambda v, n: v[n.index("ProjectID")] in self.projects
            )
        await self._filtered(writer, "User", lambda v, n: v[n.index("UserID")] in self.users)

    async def _filtered(
        self, writer: _Rows, file: str, want: Any, *, parents: bool = False
    ) -> None:
        """The rows of a descriptor file ``want`` picks (a deleted one: as a deletion row
        when deleted since the delta's date, or whenever deleted if ``parents``: the rows
        are parents of written rows)."""
        names = column_names(self.version, file)
        located = [i for i, n in enumerate(names) if n in LOCATION_COLUMNS.get(file, ())]
        project = names.index("ProjectID") if located and "ProjectID" in names else -1
        async for rows in self.ctx.store.iter_records(RECORD_KINDS[file], self.source):
            for row in rows:
                if (
                    row.deleted and not parents and not self._deleted_since(row)
                ) or not self._exportable(row, whole=True):
                    continue
                values = self._values(writer, file, orjson.loads(row.payload))
                if values is None or not want(values, names):
                    continue
                if row.deleted and not self._deletion_row(
                    writer, file, values, row, parent=parents
                ):
                    continue
                if project >= 0 and values[project] in self.dv_projects:
                    self._withhold_location(file, names, located, row.owner, values)
                writer.write(file, values)

    def _withhold_location(
        self, file: str, names: Sequence[str], located: Sequence[int], owner: str, values: list[str]
    ) -> None:
        """Blank a project descriptor row's location columns (CONSENT.md rule 10,
        ``DV_LOCATION_WITHHELD``) unless the recipient owns it (not a disclosure)."""
        if owner == self.recipient:
            return
        withheld = self.summary.withheld_columns.setdefault(f"{file}.csv", {})
        for i in located:
            if values[i]:
                values[i] = ""
                withheld[names[i]] = withheld.get(names[i], 0) + 1
        if not withheld:
            del self.summary.withheld_columns[f"{file}.csv"]
        self.summary.locations_withheld += 1

    # ---- Export.csv ------------------------------------------------------------------------

    def export_values(self, stored: Mapping[str, str], when: datetime) -> list[str]:
        """The Export.csv row of this export."""
        names = column_names(self.version, "Export")
        day = when.strftime("%Y-%m-%d")
        values = {
            **{n: str(stored.get(n, "")) for n in names},
            "ExportID": self.export_id,
            "SourceType": str(stored.get("SourceType") or "3"),
            "ExportDate": when.strftime("%Y-%m-%d %H:%M:%S"),
            "ExportStartDate": self.since[:10]
            if self.since
            else str(stored.get("ExportStartDate") or day),
            "ExportEndDate": day,
            "SoftwareName": SOFTWARE_NAME,
            "SoftwareVersion": _hub_version(),
            "CSVVersion": CSV_VERSION_LABEL[self.version],
            "ExportPeriodType": "1" if self.since else "4",
            "ExportDirective": "1" if self.since else "2",
            "HashStatus": self.hash_status,
            "ImplementationID": self.source.removeprefix("hmis:"),
        }
        # FY2026 SourceID (S350, several CoC codes) may not fit FY2024's S32: an optional
        # value too long for the version is dropped (and reported), never cut.
        for col in columns(self.version, "Export"):
            if col.type == "S" and not col.required and len(values[col.name]) > col.length:
                values[col.name] = ""
                dropped = self.summary.dropped_columns.setdefault("Export.csv", {})
                dropped[col.name] = dropped.get(col.name, 0) + 1
        return [values[n] for n in names]


_DESCRIPTORS = frozenset({"Organization", "Project", "User", *PROJECT_FILES})
_PARENT_KINDS = frozenset({"client", "enrollment"})


class _DeltaScope:
    """What a delta carries besides the rows updated since its date (compact keys): the
    enrollments of the rows below an enrollment, and the clients named by those rows and
    enrollments or updated themselves — with every enrollment of those clients, so that an
    import that starts from nothing gives each client the owner of its earliest enrollment,
    as the import that stored it did."""

    def __init__(self) -> None:
        self.enrollments: IdMap[bool] = IdMap()
        self.clients: IdMap[bool] = IdMap()
        self.deleted: list[tuple[str, str, str]] = []
        """The client-level records marked deleted since the delta's date, not restricted:
        (kind, id, the client id it names — "" when none), for a recipient's export."""
        self.parents: list[tuple[str, str, str]] = []
        """The Client and Enrollment records deleted (not since the delta's date, or at an
        unknown time), not restricted, that it carries as parents: (kind, id, client id),
        for a recipient's export (collected when :meth:`_Export.delta_scope` is asked)."""

    def carries(self, file: str, row: Any) -> bool:
        """Whether a stored row not updated since the delta's date goes in all the same."""
        if file == "Client":
            return ck(row.source_id) in self.clients
        if file == "Enrollment":
            if ck(row.source_id) in self.enrollments:
                return True
            client = row.client_source_id or client_of(row, orjson.loads(row.payload))
            return self.carries_enrollment(row.source_id, client)
        return False

    def carries_enrollment(self, source_id: str, client: str) -> bool:
        """Whether an enrollment (its id, its client's id) goes in: a row changed since the
        delta's date names it, or its client goes in."""
        return ck(source_id) in self.enrollments or (bool(client) and ck(client) in self.clients)


def released_categories(rec: Record, redacted: Mapping[str, Any]) -> frozenset[str]:
    """The categories a decision released for a typed record, read off its redacted payload:
    a category counts as released when one of its non-empty fields came through (fail closed:
    a category with no value to show is treated as withheld)."""
    cats = rec.field_categories()
    return frozenset(cats[name] for name in redacted if name in cats and name not in ROW_FIELDS)


def decide_hash_status(requested: str | None, statuses: Mapping[str, int]) -> str:
    """The ``HashStatus`` an export declares, given how many client rows carry each status
    (as :meth:`_Export.client_hash_statuses` counts them); ``requested`` is --hash-status.

    Export.csv never declares clear text over hashed values: with one status among the rows
    it is that one (unless --hash-status asked for another: refused, a hashed value can be
    neither un-hashed nor hashed again); several are refused (one HashStatus cannot describe
    them). No client rows: the requested status, else 1. The message names the statuses and
    their row counts, nothing else.
    """
    if not statuses:
        return requested or "1"
    if len(statuses) == 1:
        [(status, count)] = statuses.items()
        if requested is None or requested == status:
            return status
        way = "in clear" if requested == "1" else f"as HashStatus {requested}"
        raise ExportError(
            f"--hash-status {requested}: the {count} client rows to export arrived hashed "
            f"(HashStatus {status}) and cannot be written {way}; leave --hash-status out to "
            f"export them as they are (HashStatus {status})"
        )
    detail = ", ".join(f"HashStatus {s}: {n} rows" for s, n in sorted(statuses.items()))
    hint = ""
    if requested != "4" and set(statuses) == {"1", "4"}:
        hint = "; --hash-status 4 writes the clear ones hashed too"
    raise ExportError(
        f"the client rows to export carry different hash statuses ({detail}); one "
        f"Export.csv HashStatus cannot describe them{hint}"
    )


def _stored_date_deleted(payload: Mapping[str, Any]) -> bool:
    """Whether a stored typed row's own columns carry a DateDeleted (it is exported)."""
    stored = payload.get("hmis_columns") or ()
    names = column_names(str(payload.get("hmis_version") or FY2024), "Client")
    at = names.index("DateDeleted")
    return at < len(stored) and bool(stored[at])


def _date_deleted(writer: _Rows, file: str, values: Sequence[str]) -> bool:
    names = writer.converters[file].names
    return "DateDeleted" in names and bool(values[names.index("DateDeleted")])


def _hash_client(names: Sequence[str], values: list[str]) -> None:
    for col in _NAME_HASHED:
        i = names.index(col)
        values[i] = hashing.hash_name(values[i])
    i = names.index("SSN")
    values[i] = hashing.hash_ssn(values[i])


def _since_version(since: str) -> str:
    """``--since`` (a date or date-time) as a record version prefix to compare with."""
    text = since.strip().replace(" ", "T")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"--since {since!r} is not a date (YYYY-MM-DD[THH:MM:SS])") from None
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def _as_utc(version: str) -> datetime:
    """A record version / ``--since`` value (``YYYY-MM-DDTHH:MM:SS``, the hub's local time as
    every HUD time) as an aware UTC time."""
    return datetime.fromisoformat(version).astimezone(UTC)


def _parse_utc(stamp: str) -> datetime:
    """A store time (``deleted_at``: ISO text with its offset) as an aware UTC time."""
    at = datetime.fromisoformat(stamp)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _local_text(stamp: str) -> str:
    """A store time as a HUD ``T`` value in the hub's local time (as ``ExportDate``)."""
    return _parse_utc(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _hub_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cie-hub")
    except PackageNotFoundError:
        return "0"
