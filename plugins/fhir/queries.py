"""Searching stored FHIR resources (Task, ServiceRequest, Procedure, Consent) for a caller."""

from __future__ import annotations

from collections.abc import Iterable

from plugins.fhir.access import Viewer
from plugins.fhir.repo import Stored
from plugins.fhir.search import Query, patient_ids, resource_matches, sort_key


async def search_stored(
    viewer: Viewer,
    resource_type: str,
    query: Query,
    resources: Iterable[Stored] | None = None,
) -> list[Stored]:
    """The resources of a type the caller may see that meet every criterion, in the
    query's order (by ``meta.lastUpdated``, then id)."""
    pool = list(resources) if resources is not None else await viewer.repo.all(resource_type)
    matched = [s for s in pool if resource_matches(s.resource, resource_type, query)]
    wanted_patients = patient_ids(query)
    if wanted_patients:
        await viewer.persons_of(matched)
        kept: list[Stored] = []
        for s in matched:
            person = await viewer.person_of(s)
            if person is not None and all(person in ids for ids in wanted_patients):
                kept.append(s)
        matched = kept
    else:
        await viewer.persons_of(matched)
    visible = [s for s in matched if await viewer.can_read(s)]
    visible.sort(key=lambda s: sort_key(s.resource), reverse=query.descending)
    return visible
