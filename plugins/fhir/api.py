"""The FHIR R4 REST API under ``/fhir/`` (JSON, ``application/fhir+json``).

Every request is made by an authenticated partner (``hub.web.caller_of``); what it may see
is decided per request by :class:`plugins.fhir.access.Viewer`. Writes are serialised per hub
process and committed through :class:`plugins.fhir.writes.Batch`. Any failure answers an
OperationOutcome — never a stack trace, never a value from the request.

Headers: ``X-Purpose-Of-Use`` (MPA purpose such as ``treatment`` or a v3-ActReason code
such as ``TREAT``; default from ``[fhir] default_purpose``) sets the purpose of Patient
reads; ``If-Match`` (``W/"n"``) guards updates (412 on mismatch); ``If-None-Exist`` (or the
query string of a POST, as fhirpy sends it) makes a create conditional; ``Prefer:
return=minimal|representation|OperationOutcome`` and ``Prefer: handling=strict``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from consent.categories import PURPOSES
from hub.auth import Caller
from hub.web import CALLER, CONTEXT, DEFAULT_MAX_BODY, add_error_renderer, caller_of
from plugins.fhir import codes
from plugins.fhir.access import Viewer
from plugins.fhir.capability import capability_statement
from plugins.fhir.ingest import READ_METHODS, apply_bundle, write_lock
from plugins.fhir.outcome import (
    FhirError,
    Issue,
    core_error,
    error_response,
    fhir_response,
    not_found,
    operation_outcome,
)
from plugins.fhir.patients import PATIENT_PARAMS, patient_view, search_patients
from plugins.fhir.queries import search_stored
from plugins.fhir.repo import STORED_TYPES, Stored
from plugins.fhir.search import (
    Query,
    any_of,
    fold,
    id_key,
    identifier_matches,
    page_bounds,
    parse_query,
    searchset,
    sort_key,
    stored_params,
)
from plugins.fhir.settings import FhirSettings
from plugins.fhir.validation import (
    is_resource_type,
    parse_json,
    validate_resource,
)
from plugins.fhir.writes import Batch, Outcome

log = logging.getLogger("hub.fhir")

SETTINGS = web.AppKey("fhir_settings", FhirSettings)
JSON_TYPES = frozenset(
    {
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "application/octet-stream",
    }
)
PURPOSE_HEADER = "X-Purpose-Of-Use"
CONSENT_HEADER = "X-Consent-Gate"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fhir_endpoint(handler: Handler) -> Handler:
    """Answer every failure of a handler as an OperationOutcome."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        """The handler, with failures as OperationOutcomes."""
        try:
            _check_format(request)
            _check_scopes(request)
            return await handler(request)
        except FhirError as exc:
            return error_response(exc)
        except Exception as exc:
            log.error(
                "FHIR request failed",
                extra={"path": request.path, "error_type": type(exc).__name__},
            )
            request.app[CONTEXT].metrics.errors.labels("fhir", type(exc).__name__).inc()
            return error_response(
                FhirError.of(500, "exception", "the hub could not complete the request")
            )

    return wrapped


_FORMATS = frozenset({"json", *JSON_TYPES} - {"application/octet-stream"})
_ANY = frozenset({"*/*", "application/*"})


def _check_format(request: web.Request) -> None:
    """A request whose ``_format`` or ``Accept`` rules out JSON gets a 406 (the API speaks
    JSON only: answering XML requests with JSON would break a client's parser)."""
    wanted = request.query.get("_format")
    if wanted is not None:
        if wanted.split(";")[0].strip().lower() not in _FORMATS:
            raise FhirError.of(406, "not-supported", "_format: only JSON is supported")
        return
    accept = request.headers.get("Accept", "").strip()
    if not accept:
        return
    for item in accept.split(","):
        media, *params = item.split(";")
        weights = [v for k, _, v in (p.partition("=") for p in params) if k.strip() == "q"]
        try:
            weight = float(weights[0]) if weights else 1.0
        except ValueError:
            weight = 1.0
        if media.strip().lower() in _FORMATS | _ANY and weight > 0:
            return
    raise FhirError.of(406, "not-supported", "Accept: only application/fhir+json is supported")


def _check_scopes(request: web.Request) -> None:
    """A SMART access token reads and writes only the resource types its scopes name (an API
    key or a client certificate is not limited by scopes). A transaction Bundle's entries
    are checked one by one (:func:`plugins.fhir.ingest.check_entry_scopes`)."""
    caller = request.get(CALLER)
    if not isinstance(caller, Caller) or caller.scopes is None:
        return
    parts = request.path.strip("/").split("/")
    if len(parts) < 2 or not is_resource_type(parts[1]):
        return
    write = request.method not in READ_METHODS
    if not caller.allows(parts[1], write):
        access = "write" if write else "read"
        raise FhirError.of(
            403, "forbidden", f"the access token's scopes do not allow {access} of {parts[1]}"
        )


# ---- request helpers --------------------------------------------------------------------


def settings(request: web.Request) -> FhirSettings:
    """The FHIR settings of the app."""
    return request.app[SETTINGS]


def base_url(request: web.Request) -> str:
    """The public base URL of the FHIR API (config, else from the request)."""
    configured = settings(request).base_url
    return configured or f"{request.scheme}://{request.host}/fhir"


def purpose_of(request: web.Request) -> str:
    """The purpose of use of a read (header, ``_purpose`` parameter, or the default)."""
    raw = request.headers.get(PURPOSE_HEADER) or request.query.get("_purpose")
    if not raw:
        return settings(request).default_purpose
    value = raw.strip()
    if value in PURPOSES:
        return value
    purpose = codes.CODE_TO_PURPOSE.get(value.rpartition("|")[2].upper())
    if purpose is None:
        raise FhirError.of(400, "invalid", f"{PURPOSE_HEADER}: unknown purpose of use")
    return purpose


def viewer_of(request: web.Request) -> Viewer:
    """The caller's view for this request."""
    return Viewer(request.app[CONTEXT], caller_of(request).agency, purpose_of(request))


def _prefer(request: web.Request, key: str) -> str | None:
    for part in request.headers.get("Prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    return None


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (415 for another media type, 413 when too large)."""
    return parse_json(await read_body(request))


async def read_body(request: web.Request) -> bytes:
    """The raw request body of a JSON request (415 for another media type, 413 when too
    large)."""
    if request.content_type not in JSON_TYPES:
        raise FhirError.of(415, "not-supported", "send application/fhir+json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        http = request.app[CONTEXT].config.section("http")
        limit = int(http.get("max_body_bytes", DEFAULT_MAX_BODY))
        raise FhirError.of(
            413, "too-costly", f"the request body is larger than {limit} bytes"
        ) from None
    return raw


def _query(request: web.Request, resource_type: str, allowed: Any) -> Query:
    s = settings(request)
    return parse_query(
        [(k, v) for k, v in request.query.items()],
        allowed,
        default_count=s.page_size,
        max_count=s.max_page_size,
        strict=_prefer(request, "handling") == "strict",
    )


def _http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def _stored_headers(stored: Stored, base: str) -> dict[str, str]:
    headers = {"ETag": stored.etag}
    if stored.last_updated:
        headers["Last-Modified"] = _http_date(stored.last_updated)
    headers["Content-Location"] = f"{base}/{stored.type}/{stored.id}/_history/{stored.version}"
    return headers


async def _written(request: web.Request, viewer: Viewer, outcome: Outcome) -> web.Response:
    """The response to a create or update (no resource for a caller that may not read its
    type)."""
    base = base_url(request)
    readable = caller_of(request).allows(outcome.resource_type, False)
    headers: dict[str, str] = {}
    body: dict[str, Any] | None
    if outcome.stored is not None:
        headers = _stored_headers(outcome.stored, base)
        if outcome.status == 201:
            headers["Location"] = headers["Content-Location"]
        if outcome.consent_note:
            headers[CONSENT_HEADER] = outcome.consent_note
        body = await viewer.render(outcome.stored)
    else:
        person = outcome.person or ""
        if outcome.status == 201:
            headers["Location"] = f"{base}/Patient/{person}"
        shown = person and readable
        body = outcome.patient or (await patient_view(viewer, person) if shown else None)
    preference = _prefer(request, "return")
    if preference == "OperationOutcome":
        body = operation_outcome(
            [Issue("informational", f"{outcome.resource_type} stored", (), "information")]
        )
    elif preference == "minimal" or not readable:
        # A token that may write but not read a type gets no resource back: what the hub
        # holds (a matched Patient, merged over sources) would be a read.
        body = None
    return fhir_response(body, outcome.status, headers)


def _conditional_criteria(request: web.Request) -> str | None:
    header = request.headers.get("If-None-Exist")
    if header:
        return header
    params = [(k, v) for k, v in request.query.items() if not k.startswith("_")]
    return urlencode(params) if params else None


# ---- handlers ---------------------------------------------------------------------------


@fhir_endpoint
async def metadata(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/metadata``: the CapabilityStatement."""
    return fhir_response(capability_statement(base_url(request)))


@fhir_endpoint
async def read_patient(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Patient/{id}``: what the caller may see of a person."""
    patient = await patient_view(viewer_of(request), request.match_info["id"])
    if patient is None:
        raise not_found()
    return fhir_response(patient)


@fhir_endpoint
async def search_patient(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Patient?…``: Patients the caller may see."""
    viewer = viewer_of(request)
    query = _query(request, "Patient", PATIENT_PARAMS)
    found = await search_patients(viewer, query)
    page = searchset(base_url(request), "Patient", found, query, key=id_key, descending=False)
    return fhir_response(page)


@fhir_endpoint
async def create(request: web.Request) -> web.StreamResponse:
    """``POST /fhir/{type}``: create (conditionally with ``If-None-Exist``)."""
    rtype = request.path.rstrip("/").split("/")[-1]
    data = await read_json(request)
    validate_resource(data, rtype)
    viewer = viewer_of(request)
    async with write_lock(viewer.ctx):
        batch = Batch(viewer)
        await batch.create(dict(data), rtype, if_none_exist=_conditional_criteria(request))
        outcome = (await batch.commit())[0]
    return await _written(request, viewer, outcome)


@fhir_endpoint
async def read(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/{type}/{id}``: a stored resource the caller may see."""
    rtype = request.path.split("/")[2]
    viewer = viewer_of(request)
    stored = await viewer.repo.get(rtype, request.match_info["id"])
    if stored is None or not await viewer.can_read(stored):
        raise not_found()
    return fhir_response(
        await viewer.render(stored), 200, _stored_headers(stored, base_url(request))
    )


@fhir_endpoint
async def vread(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/{type}/{id}/_history/{vid}``: the current version only (the hub keeps the
    latest version of a record; an older one is not found)."""
    rtype = request.path.split("/")[2]
    viewer = viewer_of(request)
    stored = await viewer.repo.get(rtype, request.match_info["id"])
    if (
        stored is None
        or request.match_info["vid"] != str(stored.version)
        or not await viewer.can_read(stored)
    ):
        raise not_found()
    base = base_url(request)
    return fhir_response(await viewer.render(stored), 200, _stored_headers(stored, base))


@fhir_endpoint
async def search(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/{type}?…``: stored resources the caller may see."""
    rtype = request.path.rstrip("/").split("/")[-1]
    viewer = viewer_of(request)
    query = _query(request, rtype, stored_params(rtype))
    found = await search_stored(viewer, rtype, query)
    start, end = page_bounds([sort_key(s.resource) for s in found], query, query.descending)
    rendered = {s.id: await viewer.render(s) for s in found[start:end]}
    resources = [rendered.get(s.id, s.resource) for s in found]
    return fhir_response(searchset(base_url(request), rtype, resources, query))


@fhir_endpoint
async def update(request: web.Request) -> web.StreamResponse:
    """``PUT /fhir/{type}/{id}`` (``If-Match`` checked) or ``PUT /fhir/{type}?criteria``."""
    parts = request.path.rstrip("/").split("/")
    rtype = parts[2]
    data = await read_json(request)
    validate_resource(data, rtype)
    viewer = viewer_of(request)
    async with write_lock(viewer.ctx):
        batch = Batch(viewer)
        if len(parts) == 4:
            await batch.update(
                rtype, parts[3], dict(data), rtype, if_match=request.headers.get("If-Match")
            )
        else:
            if not request.query_string:
                raise FhirError.of(400, "invalid", "PUT needs an id or search criteria")
            await batch.conditional_update(
                dict(data), request.query_string, rtype, if_match=request.headers.get("If-Match")
            )
        outcome = (await batch.commit())[0]
    return await _written(request, viewer, outcome)


@fhir_endpoint
async def transaction(request: web.Request) -> web.StreamResponse:
    """``POST /fhir/``: a transaction Bundle, all or nothing."""
    body = await read_body(request)
    caller = caller_of(request)
    allows = caller.allows if caller.scopes is not None else None
    return fhir_response(await apply_bundle(viewer_of(request), body, allows=allows))


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


@fhir_endpoint
async def read_organization(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Organization/{id}``: a configured agency."""
    agency = request.app[CONTEXT].config.agencies.get(request.match_info["id"])
    if agency is None:
        raise not_found()
    return fhir_response(organization(agency))


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


@fhir_endpoint
async def search_organization(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Organization?…``: configured agencies."""
    query = _query(request, "Organization", ("identifier", "name"))
    agencies = request.app[CONTEXT].config.agencies
    found = [o for o in map(organization, agencies.values()) if _org_matches(o, query)]
    found.sort(key=lambda o: str(o["id"]))
    page = searchset(base_url(request), "Organization", found, query, key=id_key, descending=False)
    return fhir_response(page)


@fhir_endpoint
async def fallback(request: web.Request) -> web.StreamResponse:
    """Anything else under ``/fhir/``: 405 on a known resource type, else 404."""
    first = request.match_info.get("tail", "").split("/")[0]
    if first == "metadata" or is_resource_type(first):
        raise FhirError.of(405, "not-supported", f"{request.method} is not supported here")
    raise FhirError.of(404, "not-found", "no such FHIR endpoint")


def add_routes(app: web.Application, fhir_settings: FhirSettings) -> None:
    """Register every FHIR route on the hub's application (and the OperationOutcome form of
    the errors the core answers under ``/fhir``)."""
    app[SETTINGS] = fhir_settings
    add_error_renderer(app, "/fhir/", core_error)
    r = app.router
    r.add_get("/fhir/metadata", metadata)
    r.add_post("/fhir", transaction)
    r.add_post("/fhir/", transaction)
    r.add_get("/fhir/Patient", search_patient)
    r.add_post("/fhir/Patient", create)
    r.add_get("/fhir/Patient/{id}", read_patient)
    r.add_get("/fhir/Organization", search_organization)
    r.add_get("/fhir/Organization/{id}", read_organization)
    for rtype in STORED_TYPES:
        r.add_get(f"/fhir/{rtype}", search)
        r.add_post(f"/fhir/{rtype}", create)
        r.add_put(f"/fhir/{rtype}", update)
        r.add_get(f"/fhir/{rtype}/{{id}}", read)
        r.add_get(f"/fhir/{rtype}/{{id}}/_history/{{vid}}", vread)
        r.add_put(f"/fhir/{rtype}/{{id}}", update)
    r.add_route("*", "/fhir/{tail:.*}", fallback)
