"""Full-refresh deletions limited to the export's scope.

A full refresh (ExportDirective 2) replaces this source's data *in the exported scope and
nothing outside it*. The scope is the projects listed in the export's Project.csv; what a
file's stored records are candidates for deletion is decided from the stored records
themselves (their payloads), conservatively — when in doubt, a record is not a candidate:

- project descriptor files (``PROJECT_FILES``): stored rows whose ``ProjectID`` is in scope;
- Enrollment: stored enrollments whose project is in scope (these are the in-scope
  enrollments, remembered for the files below them);
- files below an enrollment (``ENROLLMENT_FILES``): stored rows of an in-scope enrollment;
- Client: stored clients with at least one stored enrollment, every one of them (live or
  deleted) in scope — a client also enrolled elsewhere, or enrolled nowhere, is out of scope;
- Organization, Project and User: never (an organisation or project missing from the export
  is simply out of scope; users are shared by every project's data).

A candidate the export does not carry is marked deleted, by id (``Transaction.mark_deleted``):
a record written by another import while the stored ones were read is never among them. The
stored records are streamed; only the ids to delete (and the in-scope enrollments, compact
:class:`~plugins.clarity.idmap.IdMap` sets when ids are dense integers) are held.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

import orjson

from plugins.clarity.idmap import IdMap, ck
from plugins.clarity.spec import ENROLLMENT_FILES, PROJECT_FILES, RECORD_KINDS

NEVER_DELETED: frozenset[str] = frozenset({"Export", "Organization", "Project", "User"})
"""Files whose stored records a full refresh never marks deleted."""


def client_of(row: Any, payload: dict[str, Any]) -> str:
    """The client id a stored record of an enrollment-level kind names ("" when none)."""
    return str((payload.get("client") or {}).get("id") or row.client_source_id or "")


def enrollment_of(payload: dict[str, Any]) -> str:
    """The enrollment id a stored record below an enrollment belongs to ("" when none)."""
    parent = payload.get("enrollment") or {}
    return str(parent.get("id") or payload.get("fields", {}).get("EnrollmentID") or "")


class RefreshScope:
    """The exported scope of one full-refresh import, and the deletions it allows."""

    def __init__(self, ctx: Any, source: str, projects: Container[int | str]) -> None:
        self.ctx = ctx
        self.source = source
        self.projects = projects
        """ProjectIDs (compact keys) listed in the export's Project.csv."""
        self.enrollments: IdMap[bool] = IdMap()
        """Stored enrollments of in-scope projects (known once Enrollment.csv is done)."""

    async def clients(self) -> IdMap[bool]:
        """Stored clients all of whose stored enrollments (at least one) are in scope."""
        inside: IdMap[bool] = IdMap()
        outside: IdMap[bool] = IdMap()
        projects = self.projects
        async for rows in self.ctx.store.iter_records("enrollment", self.source):
            for row in rows:
                payload = orjson.loads(row.payload)
                client = client_of(row, payload)
                if not client:
                    continue
                project = str(payload.get("project_id") or "")
                key = ck(client)
                if project and ck(project) in projects:
                    inside[key] = True
                else:
                    outside[key] = True
        for key in [k for k in inside if k in outside]:
            del inside[key]
        return inside

    async def candidate_test(
        self, file: str, exported: Container[int | str]
    ) -> Callable[[Any], bool] | None:
        """How to tell a stored record of ``file`` that is in scope (None: none is, or none
        the export does not carry)."""
        projects = self.projects
        if file in PROJECT_FILES:

            def descriptor(row: Any) -> bool:
                fields = orjson.loads(row.payload).get("fields", {})
                return ck(str(fields.get("ProjectID") or "")) in projects

            return descriptor
        if file == "Enrollment":
            found = self.enrollments = IdMap()

            def enrollment(row: Any) -> bool:
                project = str(orjson.loads(row.payload).get("project_id") or "")
                if project and ck(project) in projects:
                    found[ck(row.source_id)] = True
                    return True
                return False

            return enrollment
        if file in ENROLLMENT_FILES:
            enrollments = self.enrollments
            if not enrollments:
                return None

            def below(row: Any) -> bool:
                eid = enrollment_of(orjson.loads(row.payload))
                return bool(eid) and ck(eid) in enrollments

            return below
        if file == "Client":
            clients = await self.clients()
            for key in [k for k in clients if k in exported]:
                del clients[key]
            if not clients:  # every in-scope client is carried: no need to read them
                return None
            return lambda row: ck(row.source_id) in clients
        return None

    async def delete_missing(
        self, file: str, exported: Container[int | str], *, delete: bool = True
    ) -> int:
        """Mark deleted the stored in-scope records of ``file`` the export does not carry
        (``exported``: compact keys); returns how many. With ``delete`` False nothing is
        written (the stored records are still read, so the in-scope enrollments are known)."""
        if file in NEVER_DELETED:
            return 0
        test = await self.candidate_test(file, exported)
        if test is None:
            return 0
        kind = RECORD_KINDS[file]
        gone: list[str] = []
        remember = file == "Enrollment"  # its test remembers the in-scope enrollments
        async for rows in self.ctx.store.iter_records(kind, self.source):
            for row in rows:
                if row.deleted or ck(row.source_id) in exported:
                    # Carried (or deleted already): kept whatever its scope.
                    if remember:
                        test(row)
                elif test(row):
                    gone.append(row.source_id)
        if not gone or not delete:
            return 0
        async with self.ctx.store.transaction() as tx:
            deleted: int = await tx.mark_deleted(kind, self.source, gone)
        return deleted
