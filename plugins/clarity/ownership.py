"""Who owns HUD CSV records: HMIS organisations mapped to agencies (CONSENT.md "Owner").

An organisation listed in an agency's ``hmis_organization_ids`` belongs to that agency. Any
other organisation becomes agency ``hmis-org-<OrganizationID>``: kind ``vsp`` when its
``VictimServiceProvider`` is 1, else ``hmis``; networks ``["hmis"]``; active. Such agencies
exist only in the gate's memory: the import adds them as it reads Organization.csv, and
:func:`restore_agencies` re-creates them from the stored ``hmis.Organization`` rows when the
hub starts (the ``clarity-agencies`` service of ``hub serve``) and before an export.

Data of a victim service provider (an organisation with ``VictimServiceProvider = 1`` or an
agency of kind ``vsp``) is marked ``restricted``: it never leaves its owner. The import marks
what it reads; an organisation that *becomes* a victim service provider also has the data
already stored marked (:func:`restrict_vsp_data`), which the import, every export and the
hub's start run, so a delta export carrying only the Organization row is enough.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from consent import Agency
from plugins.clarity.refresh import client_of, enrollment_of
from plugins.clarity.spec import ENROLLMENT_FILES, FILES, PROJECT_FILES, RECORD_KINDS

log = logging.getLogger("hub.clarity")

AGENCY_PREFIX = "hmis-org-"
HMIS_NETWORKS = frozenset({"hmis"})


def agency_for_org(organization_agencies: Any, org_id: str) -> tuple[str, bool]:
    """(agency id, whether it is configured) for an HMIS OrganizationID."""
    configured = organization_agencies.get(org_id)
    if configured is not None:
        return str(configured), True
    return f"{AGENCY_PREFIX}{org_id}", False


def ensure_agency(
    gate: Any, config: Any, org_id: str, name: str, vsp: bool
) -> tuple[str, bool, bool]:
    """Make sure the gate knows the agency that owns an organisation's data.

    Returns (agency id, restricted, created). A configured agency is never replaced; an
    unmapped organisation's agency is (re)created with the kind its VSP flag gives.
    """
    agency_id, configured = agency_for_org(config.organization_agencies, org_id)
    existing = gate.agencies.get(agency_id)
    if configured:
        kind = existing.kind if existing is not None else ""
        return agency_id, vsp or kind == "vsp", False
    kind = "vsp" if vsp else "hmis"
    if existing is not None and existing.kind == kind:
        return agency_id, vsp, False
    gate.agencies[agency_id] = Agency(
        id=agency_id,
        name=name or agency_id,
        kind=kind,
        networks=HMIS_NETWORKS,
        active=True,
    )
    return agency_id, vsp, existing is None


def ensure_named_agency(gate: Any, agency_id: str) -> bool:
    """Make sure a fallback owner agency (``hmis-…``) exists; returns True if created."""
    if agency_id in gate.agencies:
        return False
    gate.agencies[agency_id] = Agency(
        id=agency_id, name=agency_id, kind="hmis", networks=HMIS_NETWORKS, active=True
    )
    return True


async def restore_agencies(ctx: Any) -> int:
    """Re-create the agencies of unmapped organisations from stored Organization rows.

    Returns how many agencies were added to the gate.
    """
    added = 0
    async for rows in ctx.store.iter_records("hmis.Organization"):
        for row in rows:
            fields = orjson.loads(row.payload).get("fields", {})
            org_id = str(fields.get("OrganizationID", "") or row.source_id)
            vsp = str(fields.get("VictimServiceProvider", "")) == "1"
            _agency, _restricted, created = ensure_agency(
                ctx.gate, ctx.config, org_id, str(fields.get("OrganizationName", "")), vsp
            )
            added += int(created)
    async for rows in ctx.store.iter_records("hmis.Export"):
        for row in rows:
            if row.owner not in ctx.gate.agencies and row.owner.startswith("hmis-"):
                added += int(ensure_named_agency(ctx.gate, row.owner))
    if added:
        log.info("clarity: restored %d HMIS organisation agencies", added)
    return added


# ---- victim service providers: mark the stored data ----------------------------------------

_MARK_BATCH = 500
"""Records re-read and written per statement when marking them restricted."""


def is_vsp(gate: Any, config: Any, org_id: str, fields: Mapping[str, Any]) -> bool:
    """Whether an organisation is a victim service provider: ``VictimServiceProvider = 1``,
    or the agency its data belongs to is of kind ``vsp``."""
    if str(fields.get("VictimServiceProvider", "")) == "1":
        return True
    agency, _configured = agency_for_org(config.organization_agencies, org_id)
    known = gate.agencies.get(agency)
    return known is not None and known.kind == "vsp"


async def restrict_vsp_data(ctx: Any, source: str | None = None) -> int:
    """Mark ``restricted`` the stored records of every victim service provider organisation
    (of ``source``, else of every HMIS source) that are not marked yet; returns how many.

    VAWA: once an organisation is a victim service provider none of its data leaves, the
    data stored before it became one included. Finding whether there is anything to do is
    cheap (the Organization and Project rows are read): a VSP organisation with an unmarked
    Organization or Project row. Only then are its other records looked for (see
    :func:`mark_stored`), and all of them marked in one transaction, so a project row is
    marked only together with everything below it.
    """
    vsp: dict[str, set[str]] = {}
    pending: dict[str, set[str]] = {}
    async for rows in ctx.store.iter_records("hmis.Organization", source):
        for row in rows:
            fields = orjson.loads(row.payload).get("fields", {})
            if is_vsp(ctx.gate, ctx.config, row.source_id, fields):
                vsp.setdefault(row.source, set()).add(row.source_id)
                if not row.restricted:
                    pending.setdefault(row.source, set()).add(row.source_id)
    if not vsp:
        return 0
    async for rows in ctx.store.iter_records("hmis.Project", source):
        for row in rows:
            if row.restricted or row.source not in vsp:
                continue
            org = str(orjson.loads(row.payload).get("fields", {}).get("OrganizationID", ""))
            if org in vsp[row.source]:
                pending.setdefault(row.source, set()).add(org)
    marked = 0
    for src, orgs in sorted(pending.items()):
        marked += await mark_stored(ctx, src, orgs=orgs)
    return marked


async def mark_stored(
    ctx: Any,
    source: str,
    *,
    orgs: Iterable[str] = (),
    projects: Iterable[str] = (),
    enrollments: Iterable[str] = (),
) -> int:
    """Mark ``restricted`` the stored records of ``source`` that belong to the organisations
    ``orgs``, the projects ``projects`` or the enrollments ``enrollments`` (records that
    became a victim service provider's); returns how many were marked (ones marked already
    are left as they are). Versions, data and person links stay as stored.

    What belongs to them is what the import gives their owner: an organisation's
    Organization row and projects (``OrganizationID``); a project's row, descriptor rows
    (``ProjectID``) and enrollments; an enrollment's row and every row of it
    (``EnrollmentID``); and a client with an enrollment among those whose earliest live
    enrollment (the one a Client's owner comes from) is among them, or whom the agency of
    one of ``orgs`` owns. A client another agency owns, through an earlier enrollment
    elsewhere, stays that agency's.
    """
    orgs = set(orgs)
    projects = set(projects)
    marked = set(enrollments)
    agencies = {agency_for_org(ctx.config.organization_agencies, org)[0] for org in orgs}
    wanted: list[tuple[str, str, str]] = []

    def want(row: Any) -> None:
        if not row.restricted:
            wanted.append((row.kind, row.source, row.source_id))

    async def each(kind: str) -> Any:
        async for rows in ctx.store.iter_records(kind, source):
            for row in rows:
                yield row, orjson.loads(row.payload)

    if orgs:
        async for row, _payload in each("hmis.Organization"):
            if row.source_id in orgs:
                want(row)
    async for row, payload in each("hmis.Project"):
        if row.source_id in projects or payload.get("fields", {}).get("OrganizationID") in orgs:
            projects.add(row.source_id)
            want(row)
    for file in sorted(PROJECT_FILES, key=FILES.index):
        if projects:
            async for row, payload in each(RECORD_KINDS[file]):
                if payload.get("fields", {}).get("ProjectID") in projects:
                    want(row)
    # Enrollments: those of the projects; the clients they name, with the earliest live
    # enrollment among them (a client's owner comes from its earliest enrollment).
    earliest: dict[str, tuple[str, str]] = {}
    named: set[str] = set()
    async for row, payload in each("enrollment"):
        if row.source_id in marked or payload.get("project_id") in projects:
            marked.add(row.source_id)
            want(row)
            client = client_of(row, payload)
            named.add(client)
            if not row.deleted:
                entry = (str(payload.get("entry_date") or "9999"), row.source_id)
                if client not in earliest or entry < earliest[client]:
                    earliest[client] = entry
    if not marked:
        return await _mark(ctx, wanted)
    owned_first: set[str] = set(earliest)
    async for row, payload in each("enrollment"):
        client = client_of(row, payload)
        if (
            client in owned_first
            and row.source_id not in marked
            and not row.deleted
            and (str(payload.get("entry_date") or "9999"), row.source_id) < earliest[client]
        ):
            owned_first.discard(client)  # an earlier enrollment elsewhere owns it
    for file in sorted(ENROLLMENT_FILES, key=FILES.index):
        async for row, payload in each(RECORD_KINDS[file]):
            if enrollment_of(payload) in marked:
                want(row)
    async for row, _payload in each("client"):
        if row.source_id in owned_first or (row.source_id in named and row.owner in agencies):
            want(row)
    return await _mark(ctx, wanted)


async def _mark(ctx: Any, wanted: Sequence[tuple[str, str, str]]) -> int:
    """Write the records with these keys back marked ``restricted``, in one transaction."""
    if not wanted:
        return 0
    marked = 0
    async with ctx.store.transaction() as tx:
        for start in range(0, len(wanted), _MARK_BATCH):
            found = await tx.records_by_keys(wanted[start : start + _MARK_BATCH])
            rows = [
                dataclasses.replace(row, restricted=True)
                for row in found.values()
                if not row.restricted
            ]
            outcomes = await tx.upsert_records(rows)
            marked += sum(1 for outcome in outcomes if outcome == "updated")
    if marked:
        log.info("clarity: %d stored records of victim service providers marked restricted", marked)
    return marked


class AgencyService:
    """``hub serve`` service: restores HMIS organisation agencies when the hub starts (and
    marks victim service providers' unmarked data, see :func:`restrict_vsp_data`)."""

    name = "clarity-agencies"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Add the agencies of stored unmapped organisations to the gate, and mark the
        stored data of victim service providers that is not marked yet."""
        await restore_agencies(self.ctx)
        await restrict_vsp_data(self.ctx)

    async def stop(self) -> None:
        """Nothing runs in the background."""
