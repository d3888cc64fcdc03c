"""Reads: what a GET answers, for the REST API and for the GET entries of a batch Bundle.

One path per kind of read, so a read answers the same whichever way it comes: a Patient is
what :func:`plugins.fhir.patients.patient_view` releases (the gate decides, audited); a
stored Task, ServiceRequest, Procedure or Consent is found only when
:meth:`plugins.fhir.access.Viewer.can_read` says so; anything else is the same ``404`` as
an id that does not exist.

Searches take ``_include`` (:data:`plugins.fhir.search.INCLUDES`): the resources the
page's matches reference through the named search parameter are added once each with
``search.mode = include``, each one only as a direct read of it would release it (the same
path, the same audit entries); one the caller may not see is left out, and nothing says it
exists. An ``_include`` the searched type does not support (``*`` included) is a 400 naming
the parameter; so is ``_revinclude``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from consent.categories import PURPOSES
from plugins.fhir import codes
from plugins.fhir.access import ScopeCheck, Viewer, references
from plugins.fhir.capability import capability_statement
from plugins.fhir.outcome import FhirError, not_found
from plugins.fhir.patients import PATIENT_PARAMS, patient_view, search_patients
from plugins.fhir.queries import search_stored
from plugins.fhir.repo import STORED_TYPES, Stored
from plugins.fhir.search import (
    INCLUDES,
    Query,
    RefsOf,
    any_of,
    fold,
    id_key,
    identifier_matches,
    include_names,
    page_bounds,
    parse_query,
    searchset,
    sort_key,
    stored_params,
)
from plugins.fhir.settings import FhirSettings
from plugins.fhir.validation import is_resource_type

JSON_FORMATS = frozenset(
    {"json", "application/fhir+json", "application/json", "application/json+fhir"}
)
_ANY = frozenset({"*/*", "application/*"})
ORGANIZATION_PARAMS = ("identifier", "name")


def check_format(wanted: str | None, accept: str = "") -> None:
    """A ``_format`` or ``Accept`` that rules out JSON gets a 406 (the API speaks JSON only:
    answering XML requests with JSON would break a client's parser)."""
    if wanted is not None:
        if wanted.split(";")[0].strip().lower() not in JSON_FORMATS:
            raise FhirError.of(406, "not-supported", "_format: only JSON is supported")
        return
    accept = accept.strip()
    if not accept:
        return
    for item in accept.split(","):
        media, *params = item.split(";")
        weights = [v for k, _, v in (p.partition("=") for p in params) if k.strip() == "q"]
        try:
            weight = float(weights[0]) if weights else 1.0
        except ValueError:
            weight = 1.0
        if media.strip().lower() in JSON_FORMATS | _ANY and weight > 0:
            return
    raise FhirError.of(406, "not-supported", "Accept: only application/fhir+json is supported")


def parse_purpose(raw: str | None, default: str, where: str = "X-Purpose-Of-Use") -> str:
    """The purpose of use a request names (an MPA purpose or a v3-ActReason code), else
    ``default``; a 400 naming ``where`` for an unknown one."""
    if not raw:
        return default
    value = raw.strip()
    if value in PURPOSES:
        return value
    purpose = codes.CODE_TO_PURPOSE.get(value.rpartition("|")[2].upper())
    if purpose is None:
        raise FhirError.of(400, "invalid", f"{where}: unknown purpose of use")
    return purpose


@dataclass
class Reader:
    """How one request reads: the caller's view, the base URL of links, the paging
    settings, ``Prefer: handling=strict``, and a SMART token's scopes (None: any type)."""

    viewer: Viewer
    base_url: str
    settings: FhirSettings
    strict: bool = False
    allows: ScopeCheck | None = None
    purpose_fixed: bool = False
    """Whether the request named its purpose in ``X-Purpose-Of-Use``, which a ``_purpose``
    in a batch GET entry's URL does not override (as the header wins over the parameter of
    a plain GET)."""
    _views: dict[str, Viewer] = field(default_factory=dict)

    def query(self, params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> Query:
        """The parsed search (``_include`` read; checked against the type by the search)."""
        return parse_query(
            params,
            allowed,
            default_count=self.settings.page_size,
            max_count=self.settings.max_page_size,
            strict=self.strict,
            includes=True,
        )

    def for_purpose(self, purpose: str) -> Reader:
        """This reader with the caller's view for another purpose of use (one view per
        purpose, so each gate decision is made and audited once)."""
        if purpose == self.viewer.purpose:
            return self
        viewer = self._views.get(purpose)
        if viewer is None:
            viewer = self._views[purpose] = Viewer(self.viewer.ctx, self.viewer.agency, purpose)
        return dataclasses.replace(self, viewer=viewer, _views=self._views)


# ---- one resource ---------------------------------------------------------------------------


async def read_patient(viewer: Viewer, person_id: str) -> dict[str, Any]:
    """``GET Patient/{id}``: what the gate releases to the caller of a person, else 404."""
    patient = await patient_view(viewer, person_id)
    if patient is None:
        raise not_found()
    return patient


async def read_stored(
    viewer: Viewer, resource_type: str, resource_id: str, version: str | None = None
) -> Stored:
    """``GET {type}/{id}`` (``/_history/{version}``: the current version only) of a stored
    resource the caller may see, else 404."""
    stored = await viewer.repo.get(resource_type, resource_id)
    if (
        stored is None
        or (version is not None and version != str(stored.version))
        or not await viewer.can_read(stored)
    ):
        raise not_found()
    return stored


def organization(agency: Any) -> dict[str, Any]:
    """The Organization resource of an agency (id = agency id)."""
    return {
        "resourceType": "Organization",
        "id": agency.id,
        "identifier": [{"system": codes.AGENCY_SYSTEM, "value": agency.id}]
        + [{"system": s, "value": v} for s, v in agency.identifiers],
        "active": bool(agency.active),
        "type": [{"coding": [{"system": codes.HUB_URN + "agency-kind", "code": agency.kind}]}],
        "name": agency.name,
    }


def read_organization(ctx: Any, agency_id: str) -> dict[str, Any]:
    """``GET Organization/{id}``: a configured agency, else 404."""
    agency = ctx.config.agencies.get(agency_id)
    if agency is None:
        raise not_found()
    return organization(agency)


def http_date(instant: str) -> str:
    """An HTTP date from a FHIR instant."""
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def stored_headers(stored: Stored, base: str) -> dict[str, str]:
    """``ETag``, ``Last-Modified`` and ``Content-Location`` of a stored resource."""
    headers = {"ETag": stored.etag}
    if stored.last_updated:
        headers["Last-Modified"] = http_date(stored.last_updated)
    headers["Content-Location"] = f"{base}/{stored.type}/{stored.id}/_history/{stored.version}"
    return headers


# ---- _include ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Include:
    """One ``_include`` of a search."""

    target: str
    refs: RefsOf


def check_includes(resource_type: str, query: Query, allows: ScopeCheck | None) -> list[Include]:
    """The search's ``_include`` values (``Type:param`` or ``Type:param:Target``): a 400
    naming ``_include`` for one this type does not take, a 403 when the caller's token may
    not read the type it would add."""
    supported = INCLUDES.get(resource_type, {})
    out: list[Include] = []
    for value in query.includes:
        source, _, rest = value.partition(":")
        name, _, target = rest.partition(":")
        found = supported.get(name) if source == resource_type else None
        if found is None or (target and target != found[0]):
            names = include_names(resource_type)
            known = f"supported: {', '.join(names)}" if names else "none is supported"
            raise FhirError.of(
                400, "not-supported", f"_include: not supported on {resource_type} ({known})"
            )
        if allows is not None and not allows(found[0], False):
            raise FhirError.of(
                403,
                "forbidden",
                f"_include: the access token's scopes do not allow read of {found[0]}",
            )
        out.append(Include(found[0], found[1]))
    return out


async def _release(viewer: Viewer, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    """A referenced resource as a direct read of it answers, or None where that read is a
    404 (nothing released, not visible, or not there)."""
    if resource_type == "Patient":
        return await patient_view(viewer, resource_id)
    if resource_type == "Organization":
        agency = viewer.ctx.config.agencies.get(resource_id)
        return organization(agency) if agency is not None else None
    try:
        stored = await read_stored(viewer, resource_type, resource_id)
    except FhirError:
        return None
    return await viewer.render(stored)


async def included(
    viewer: Viewer,
    base_url: str,
    includes: Sequence[Include],
    page: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The ``search.mode = include`` entries for a page of matches: each referenced
    resource once (none that is a match itself), in the order the page references them,
    each released as a direct read of it would be."""
    seen = {(str(r.get("resourceType")), str(r.get("id"))) for r in page}
    wanted: list[tuple[str, str]] = []
    for resource in page:
        for include in includes:
            for rid in references(include.refs(resource), include.target):
                key = (include.target, rid)
                if key not in seen:
                    seen.add(key)
                    wanted.append(key)
    out: list[dict[str, Any]] = []
    for rtype, rid in wanted:
        released = await _release(viewer, rtype, rid)
        if released is not None:
            out.append(
                {
                    "fullUrl": f"{base_url}/{rtype}/{rid}",
                    "resource": released,
                    "search": {"mode": "include"},
                }
            )
    return out


async def _with_includes(
    reader: Reader, bundle: dict[str, Any], includes: Sequence[Include]
) -> dict[str, Any]:
    if includes:
        page = [e["resource"] for e in bundle["entry"]]
        bundle["entry"] = bundle["entry"] + await included(
            reader.viewer, reader.base_url, includes, page
        )
    return bundle


# ---- searches ---------------------------------------------------------------------------------


async def search_patient_page(reader: Reader, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``GET Patient?…``: a page of the Patients the caller may see."""
    query = reader.query(params, PATIENT_PARAMS)
    check_includes("Patient", query, reader.allows)
    found = await search_patients(reader.viewer, query)
    return searchset(reader.base_url, "Patient", found, query, key=id_key, descending=False)


def _org_matches(org: Mapping[str, Any], query: Query) -> bool:
    for name, value in query.criteria:
        if name == "_id":
            ok = any_of(value, lambda v: v == org["id"])
        elif name == "identifier":
            ok = any_of(value, lambda v: identifier_matches(org["identifier"], v))
        elif name == "name":
            ok = any_of(value, lambda v: fold(v) in fold(str(org.get("name", ""))))
        else:
            ok = True
        if not ok:
            return False
    return True


async def search_organization_page(
    reader: Reader, params: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """``GET Organization?…``: a page of the configured agencies."""
    query = reader.query(params, ORGANIZATION_PARAMS)
    check_includes("Organization", query, reader.allows)
    agencies = reader.viewer.ctx.config.agencies
    found = [o for o in map(organization, agencies.values()) if _org_matches(o, query)]
    found.sort(key=lambda o: str(o["id"]))
    return searchset(reader.base_url, "Organization", found, query, key=id_key, descending=False)


async def search_stored_page(
    reader: Reader, resource_type: str, params: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """``GET {type}?…``: a page of the stored resources the caller may see, with what its
    ``_include`` values add."""
    viewer = reader.viewer
    query = reader.query(params, stored_params(resource_type))
    includes = check_includes(resource_type, query, reader.allows)
    found = await search_stored(viewer, resource_type, query)
    start, end = page_bounds([sort_key(s.resource) for s in found], query, query.descending)
    rendered = {s.id: await viewer.render(s) for s in found[start:end]}
    resources = [rendered.get(s.id, s.resource) for s in found]
    bundle = searchset(reader.base_url, resource_type, resources, query)
    return await _with_includes(reader, bundle, includes)


# ---- any GET (a batch entry) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """What a GET answered: the resource (or searchset Bundle), and the stored resource it
    is a version of (None for a Patient, an Organization, a search)."""

    resource: dict[str, Any]
    stored: Stored | None = None


async def read_url(reader: Reader, url: str) -> ReadAnswer:
    """What ``GET <base>/<url>`` answers the caller (a batch Bundle's GET entry): the same
    resource, or the same :class:`FhirError`, as the REST API's GET of that URL."""
    path, _, query_string = url.partition("?")
    base_path = reader.base_url.split("://", 1)[-1].partition("/")[2].strip("/")
    if path.startswith(("http://", "https://")):
        if not path.startswith(reader.base_url.rstrip("/") + "/"):
            raise FhirError.of(404, "not-found", "no such FHIR endpoint")
        path = path[len(reader.base_url.rstrip("/")) + 1 :]
    elif base_path and path.strip("/").startswith(base_path + "/"):
        path = path.strip("/")[len(base_path) + 1 :]
    params = parse_qsl(query_string, keep_blank_values=True)
    named = dict(params)
    check_format(named.get("_format"))
    if "_purpose" in named and not reader.purpose_fixed:
        purpose = parse_purpose(named["_purpose"], reader.viewer.purpose, "_purpose")
        reader = reader.for_purpose(purpose)
    parts = [p for p in path.strip("/").split("/") if p]
    first = parts[0] if parts else ""
    if first == "metadata" and len(parts) == 1:
        return ReadAnswer(capability_statement(reader.base_url))
    if first == "Patient" and len(parts) <= 2:
        if len(parts) == 1:
            return ReadAnswer(await search_patient_page(reader, params))
        return ReadAnswer(await read_patient(reader.viewer, parts[1]))
    if first == "Organization" and len(parts) <= 2:
        if len(parts) == 1:
            return ReadAnswer(await search_organization_page(reader, params))
        return ReadAnswer(read_organization(reader.viewer.ctx, parts[1]))
    if first in STORED_TYPES and (len(parts) <= 2 or (len(parts) == 4 and parts[2] == "_history")):
        if len(parts) == 1:
            return ReadAnswer(await search_stored_page(reader, first, params))
        version = parts[3] if len(parts) == 4 else None
        stored = await read_stored(reader.viewer, first, parts[1], version)
        return ReadAnswer(await reader.viewer.render(stored), stored)
    if first == "metadata" or is_resource_type(first):
        raise FhirError.of(405, "not-supported", "GET is not supported here")
    raise FhirError.of(404, "not-found", "no such FHIR endpoint")
