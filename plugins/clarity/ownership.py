"""Who owns HUD CSV records: HMIS organisations mapped to agencies (CONSENT.md "Owner").

An organisation listed in an agency's ``hmis_organization_ids`` belongs to that agency. Any
other organisation becomes agency ``hmis-org-<OrganizationID>``: kind ``vsp`` when its
``VictimServiceProvider`` is 1, else ``hmis``; networks ``["hmis"]``; active. Such agencies
exist only in the gate's memory: the import adds them as it reads Organization.csv, and
:func:`restore_agencies` re-creates them from the stored ``hmis.Organization`` rows when the
hub starts (the ``clarity-agencies`` service of ``hub serve``) and before an export.

Data of a victim service provider (an organisation with ``VictimServiceProvider = 1`` or an
agency of kind ``vsp``) is marked ``restricted``: it never leaves its owner.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from consent import Agency

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


class AgencyService:
    """``hub serve`` service: restores HMIS organisation agencies when the hub starts."""

    name = "clarity-agencies"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Add the agencies of stored unmapped organisations to the gate."""
        await restore_agencies(self.ctx)

    async def stop(self) -> None:
        """Nothing runs in the background."""
