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

``POST /fhir/`` takes transaction Bundles (all or nothing, :mod:`plugins.fhir.transaction`)
and batch Bundles (entry by entry, :mod:`plugins.fhir.batch`). Reads go through
:mod:`plugins.fhir.reads`, which a batch's GET entries use too; searches take ``_include``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from hub.auth import Caller
from hub.web import CALLER, CONTEXT, DEFAULT_MAX_BODY, add_error_renderer, caller_of
from plugins.fhir import reads
from plugins.fhir.access import Viewer
from plugins.fhir.capability import capability_statement
from plugins.fhir.ingest import READ_METHODS, apply_bundle, write_lock
from plugins.fhir.outcome import (
    FhirError,
    Issue,
    core_error,
    error_response,
    fhir_response,
    operation_outcome,
)
from plugins.fhir.patients import patient_view
from plugins.fhir.reads import Reader, stored_headers
from plugins.fhir.repo import STORED_TYPES
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


def _check_format(request: web.Request) -> None:
    """A request whose ``_format`` or ``Accept`` rules out JSON gets a 406."""
    reads.check_format(request.query.get("_format"), request.headers.get("Accept", ""))


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
    return reads.parse_purpose(raw, settings(request).default_purpose, PURPOSE_HEADER)


def viewer_of(request: web.Request) -> Viewer:
    """The caller's view for this request."""
    return Viewer(request.app[CONTEXT], caller_of(request).agency, purpose_of(request))


def reader_of(request: web.Request, viewer: Viewer | None = None) -> Reader:
    """How this request reads (its view, links, paging, strictness, a token's scopes)."""
    caller = caller_of(request)
    return Reader(
        viewer or viewer_of(request),
        base_url(request),
        settings(request),
        strict=_prefer(request, "handling") == "strict",
        allows=caller.allows if caller.scopes is not None else None,
        purpose_fixed=PURPOSE_HEADER in request.headers,
    )


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


def _params(request: web.Request) -> list[tuple[str, str]]:
    return list(request.query.items())


async def _written(request: web.Request, viewer: Viewer, outcome: Outcome) -> web.Response:
    """The response to a create or update (no resource for a caller that may not read its
    type)."""
    base = base_url(request)
    readable = caller_of(request).allows(outcome.resource_type, False)
    headers: dict[str, str] = {}
    body: dict[str, Any] | None
    if outcome.stored is not None:
        headers = stored_headers(outcome.stored, base)
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
    return fhir_response(await reads.read_patient(viewer_of(request), request.match_info["id"]))


@fhir_endpoint
async def search_patient(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Patient?…``: Patients the caller may see."""
    return fhir_response(await reads.search_patient_page(reader_of(request), _params(request)))


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
    stored = await reads.read_stored(viewer, rtype, request.match_info["id"])
    headers = stored_headers(stored, base_url(request))
    return fhir_response(await viewer.render(stored), 200, headers)


@fhir_endpoint
async def vread(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/{type}/{id}/_history/{vid}``: the current version only (the hub keeps the
    latest version of a record; an older one is not found)."""
    rtype = request.path.split("/")[2]
    viewer = viewer_of(request)
    info = request.match_info
    stored = await reads.read_stored(viewer, rtype, info["id"], info["vid"])
    headers = stored_headers(stored, base_url(request))
    return fhir_response(await viewer.render(stored), 200, headers)


@fhir_endpoint
async def search(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/{type}?…``: stored resources the caller may see (and what ``_include``
    adds)."""
    rtype = request.path.rstrip("/").split("/")[-1]
    page = await reads.search_stored_page(reader_of(request), rtype, _params(request))
    return fhir_response(page)


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
    """``POST /fhir/``: a transaction Bundle (all or nothing) or a batch Bundle (entry by
    entry; its GET entries read as the REST GETs do)."""
    body = await read_body(request)
    caller = caller_of(request)
    allows = caller.allows if caller.scopes is not None else None
    viewer = viewer_of(request)
    reader = reader_of(request, viewer)
    return fhir_response(await apply_bundle(viewer, body, allows=allows, reader=reader))


@fhir_endpoint
async def read_organization(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Organization/{id}``: a configured agency."""
    ctx = request.app[CONTEXT]
    return fhir_response(reads.read_organization(ctx, request.match_info["id"]))


@fhir_endpoint
async def search_organization(request: web.Request) -> web.StreamResponse:
    """``GET /fhir/Organization?…``: configured agencies."""
    page = await reads.search_organization_page(reader_of(request), _params(request))
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
