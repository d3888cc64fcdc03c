"""Who may see what: one caller's view of the hub for one request.

* A Patient is whatever the consent gate releases to the caller about a person
  (``ctx.engine.disclose_person``, audited); nothing released reads as "not found".
* A stored Task, ServiceRequest, Procedure or Consent is visible to the agency that owns it,
  and to a party of the referral it belongs to (the Task's requester or owner) when the gate
  releases both the patient and that very resource to that party for purpose ``referral``
  (audited): a resource labelled sensitive, or kept by a Part 2 program or a victim service
  provider, leaves its owner only as the client's consent allows. Anyone else gets the same
  "not found" as for an id that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from consent.categories import SENSITIVE_CATEGORIES
from hub.plugin_api import Record, SourceKey, SourceRow
from plugins.fhir import codes
from plugins.fhir.repo import CATEGORIES, Repository, Stored, kind_of

REFERRAL_PURPOSE = "referral"
PATIENT_ELEMENT = {
    "Task": "for",
    "ServiceRequest": "subject",
    "Procedure": "subject",
    "Consent": "patient",
}
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RESOURCE_CATEGORIES = frozenset(CATEGORIES.values()) | SENSITIVE_CATEGORIES
"""What a read of a stored resource asks the gate for: its own category and any sensitive
one its security labels or its owner (a Part 2 program) add to it; the gate releases the
resource only when every category it carries is released."""

Released = list[tuple[Record, dict[str, Any]]]

ScopeCheck = Callable[[str, bool], bool]
"""Whether the caller may read (False) or write (True) resources of a FHIR type (a SMART
access token's scopes)."""


def reference_id(ref: Any, resource_type: str) -> str | None:
    """The id of a literal reference to ``resource_type`` (relative or absolute URL)."""
    if not isinstance(ref, Mapping):
        return None
    literal = ref.get("reference")
    if not isinstance(literal, str):
        return None
    parts = literal.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == resource_type and FHIR_ID.fullmatch(parts[-1]):
        return parts[-1]
    return None


def references(value: Any, resource_type: str) -> list[str]:
    """Ids of every reference to ``resource_type`` in a list of References."""
    items = value if isinstance(value, list) else [value]
    return [i for i in (reference_id(r, resource_type) for r in items) if i is not None]


def task_parties(task: Mapping[str, Any]) -> set[str]:
    """The requester and owner agencies of a Task."""
    return {
        a
        for a in (
            reference_id(task.get("requester"), "Organization"),
            reference_id(task.get("owner"), "Organization"),
        )
        if a
    }


class Viewer:
    """What one calling agency may see, with per-request caches of gate answers."""

    def __init__(self, ctx: Any, agency: str, purpose: str) -> None:
        self.ctx = ctx
        self.agency = agency
        self.purpose = purpose
        self.repo = Repository(ctx.store)
        self._released: dict[tuple[str, str], Released] = {}
        self._persons: dict[SourceKey, str | None] = {}
        self._records: dict[tuple[str, str], set[str]] = {}
        self.key_persons: dict[str, set[str]] = {}
        """Persons per blind match key, read ahead in one query for a Bundle's conditional
        creates (:func:`plugins.fhir.patients.read_ahead_identifiers`); cleared on commit."""
        self.before_disclosure: Callable[[], Awaitable[None]] | None = None
        """Awaited before the first gate decision of this view (a Bundle's validation under
        way): the audit log records no decision made for a request that turns out invalid."""

    # ---- persons --------------------------------------------------------------------------

    async def released_clients(self, person_id: str, purpose: str | None = None) -> Released:
        """The person's Client records the gate releases to the caller (audited once per
        request and purpose)."""
        use = purpose or self.purpose
        key = (person_id, use)
        cached = self._released.get(key)
        if cached is not None:
            return cached
        found: Released = []
        if FHIR_ID.fullmatch(person_id):
            if self.before_disclosure is not None:
                await self.before_disclosure()
            found = await self.ctx.engine.disclose_person(
                person_id, recipient=self.agency, purpose=use, kinds=["client"]
            )
        self._released[key] = found
        return found

    async def released_resources(self, person_id: str, resource_type: str) -> set[str]:
        """Ids of the person's stored resources of a type that the gate releases whole to the
        caller for purpose ``referral`` (each decision audited, once per request)."""
        key = (person_id, resource_type)
        cached = self._records.get(key)
        if cached is not None:
            return cached
        found: set[str] = set()
        if FHIR_ID.fullmatch(person_id):
            if self.before_disclosure is not None:
                await self.before_disclosure()
            released = await self.ctx.engine.disclose_person(
                person_id,
                recipient=self.agency,
                purpose=REFERRAL_PURPOSE,
                kinds=[kind_of(resource_type)],
                categories=RESOURCE_CATEGORIES,
            )
            found = {
                rec.meta.key.id
                for rec, _payload in released
                if isinstance(rec, SourceRow) and rec.fields.get("resource")
            }
        self._records[key] = found
        return found

    async def sees_person(self, person_id: str, purpose: str | None = None) -> bool:
        """Whether the gate releases anything of the person to the caller."""
        return bool(await self.released_clients(person_id, purpose))

    def choose_client(self, released: Released) -> SourceKey:
        """The client record a resource about this person is linked to: the caller's own
        record when it has one, else the first released."""
        for rec, _ in released:
            if rec.meta.owner == self.agency:
                return rec.meta.key
        return released[0][0].meta.key

    async def persons_of(self, stored: list[Stored]) -> None:
        """Look up (in one go) the persons the stored resources' clients are linked to."""
        wanted = [
            s.client for s in stored if s.client is not None and s.client not in self._persons
        ]
        if not wanted:
            return
        found = await self.repo.persons_of(wanted)
        for c in wanted:
            self._persons[c] = found.get(c)

    async def person_of(self, stored: Stored) -> str | None:
        """The person a stored resource is about (through its client record), if known."""
        if stored.client is None:
            return None
        await self.persons_of([stored])
        return self._persons.get(stored.client)

    # ---- stored resources -----------------------------------------------------------------

    async def parties(self, stored: Stored) -> set[str]:
        """Agencies taking part in the referral a stored resource belongs to."""
        res = stored.resource
        found = {stored.owner}
        if stored.type == "Task":
            return found | task_parties(res)
        if stored.type == "ServiceRequest":
            found.add(reference_id(res.get("requester"), "Organization") or stored.owner)
            found.update(references(res.get("performer"), "Organization"))
            for task in await self.repo.all("Task"):
                if reference_id(task.resource.get("focus"), "ServiceRequest") == stored.id:
                    found |= task_parties(task.resource)
            return found
        if stored.type == "Procedure":
            based_on = set(references(res.get("basedOn"), "ServiceRequest"))
            for task in await self.repo.all("Task"):
                outputs = [o.get("valueReference") for o in task.resource.get("output") or ()]
                focus = reference_id(task.resource.get("focus"), "ServiceRequest")
                if stored.id in references(outputs, "Procedure") or focus in based_on:
                    found |= task_parties(task.resource)
            return found
        if stored.type == "Consent":
            for sr in await self.repo.all("ServiceRequest"):
                if stored.id in references(sr.resource.get("supportingInfo"), "Consent"):
                    found |= await self.parties(sr)
        return found

    async def can_read(self, stored: Stored) -> bool:
        """Whether the caller may see a stored resource."""
        if stored.owner == self.agency:
            return True
        if self.agency not in await self.parties(stored):
            return False
        person = await self.person_of(stored)
        if person is None or not await self.sees_person(person, REFERRAL_PURPOSE):
            return False
        return stored.id in await self.released_resources(person, stored.type)

    async def render(self, stored: Stored) -> dict[str, Any]:
        """The resource as the API returns it: the patient reference is the current person."""
        resource = dict(stored.resource)
        element = PATIENT_ELEMENT.get(stored.type)
        if element is not None and stored.client is not None:
            person = await self.person_of(stored)
            if person is not None:
                ref: dict[str, Any] = {"reference": f"Patient/{person}"}
                old = resource.get(element)
                ident = old.get("identifier") if isinstance(old, Mapping) else None
                if isinstance(ident, Mapping) and ident.get("system") != codes.RECORD_SYSTEM:
                    ref["identifier"] = ident
                resource[element] = ref
        return resource
