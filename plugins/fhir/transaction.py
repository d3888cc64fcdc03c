"""Transaction Bundles: all entries or none, in one store transaction.

Entries may ``POST`` (create; ``request.ifNoneExist`` makes it conditional) or ``PUT``
(``Type/id`` update with ``request.ifMatch``, or ``Type?criteria`` conditional update).
``urn:uuid:`` full URLs of created entries may be referenced by other entries; they are
replaced by the new ids (or, for a conditional create that matched, by the resource it
matched); ``fullUrl`` values must be unique. Patients run first (creates and conditional
updates), then creates before updates, in dependency order (Consent, ServiceRequest,
Procedure, Task), so a Task may focus a ServiceRequest and list a Procedure made in the
same Bundle. Any failing entry fails the whole Bundle with an OperationOutcome
naming ``Bundle.entry[i]`` and the element; nothing is stored.

The checks of the Bundle (:func:`bundle_entries`), the reading of an entry
(:func:`plan_entry`), the write of one entry (:func:`apply_plan`) and its response
(:func:`entry_response`) are shared with batch Bundles (:mod:`plugins.fhir.batch`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from plugins.fhir.access import Viewer
from plugins.fhir.outcome import FhirError, Issue, at_entry, operation_outcome
from plugins.fhir.patients import read_ahead_identifiers
from plugins.fhir.validation import is_resource_type
from plugins.fhir.writes import Batch, Outcome

ORDER = {"Patient": 0, "Consent": 1, "ServiceRequest": 2, "Procedure": 3, "Task": 4}
WRITABLE = frozenset(ORDER)
MAX_ENTRIES = 10_000


def bundle_entries(bundle: Mapping[str, Any], kind: str) -> list[Any]:
    """The entries of a ``kind`` (transaction or batch) Bundle: 400 at ``Bundle.type`` for
    another type, 413 for more than :data:`MAX_ENTRIES` entries."""
    if bundle.get("type") != kind:
        raise FhirError.of(
            400,
            "not-supported",
            "Bundle.type: only transaction and batch Bundles are accepted",
            "Bundle.type",
        )
    entries = bundle.get("entry") or []
    if len(entries) > MAX_ENTRIES:
        raise FhirError.of(413, "too-costly", f"Bundle.entry: more than {MAX_ENTRIES} entries")
    return list(entries)


@dataclass(slots=True)
class Plan:
    """One entry of a Bundle, read: what it asks for, and of what."""

    index: int
    method: str
    resource_type: str
    resource: dict[str, Any]
    target_id: str | None = None
    criteria: str | None = None
    if_match: str | None = None
    if_none_exist: str | None = None
    full_url: str | None = None
    new_id: str | None = None
    url: str = ""
    """The request URL (relative to the base): what a GET entry reads."""


def plan_entry(index: int, entry: Any, methods: tuple[str, ...] = ("POST", "PUT")) -> Plan:
    """Read entry ``index``'s request (its method one of ``methods``); a 400 naming the
    entry's element when it is not one the hub can carry out."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, Mapping):
        raise FhirError.of(400, "structure", f"{where}: expected an object", where)
    request = entry.get("request")
    if not isinstance(request, Mapping):
        raise FhirError.of(400, "required", f"{where}.request: required", f"{where}.request")
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", "")).strip().lstrip("/")
    resource = entry.get("resource")
    if method not in methods:
        kind = "a batch" if "GET" in methods else "a transaction"
        named = ", ".join(methods[:-1]) + " and " + methods[-1]
        raise FhirError.of(
            400,
            "not-supported",
            f"{where}.request.method: only {named} are supported in {kind}",
            f"{where}.request.method",
        )
    if method == "GET":
        if not url:
            where_url = f"{where}.request.url"
            raise FhirError.of(400, "required", f"{where_url}: required", where_url)
        return Plan(index, method, url.partition("?")[0].split("/")[0], {}, url=url)
    if not isinstance(resource, Mapping):
        raise FhirError.of(400, "required", f"{where}.resource: required", f"{where}.resource")
    if not isinstance(resource, dict):
        resource = dict(resource)
    rtype = str(resource.get("resourceType"))
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != rtype or not is_resource_type(parts[0]):
        raise FhirError.of(
            400,
            "invalid",
            f"{where}.request.url: must name the entry's resource type",
            f"{where}.request.url",
        )
    if rtype not in WRITABLE:
        raise FhirError.of(
            405,
            "not-supported",
            f"{where}.resource: {rtype} cannot be written",
            f"{where}.resource",
        )
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    if method == "POST":
        if len(parts) != 1 or query:
            raise FhirError.of(
                400,
                "invalid",
                f"{where}.request.url: a create is POST <Type>",
                f"{where}.request.url",
            )
        if_none_exist = request.get("ifNoneExist")
        return Plan(
            index,
            method,
            rtype,
            resource,
            if_none_exist=str(if_none_exist) if if_none_exist else None,
            full_url=full_url,
            new_id=None if rtype == "Patient" else str(uuid.uuid4()),
        )
    if_match = request.get("ifMatch")
    if len(parts) == 2 and not query:
        return Plan(
            index,
            method,
            rtype,
            resource,
            target_id=parts[1],
            if_match=str(if_match) if if_match else None,
            full_url=full_url,
        )
    if len(parts) == 1 and query:
        return Plan(
            index,
            method,
            rtype,
            resource,
            criteria=query,
            if_match=str(if_match) if if_match else None,
            full_url=full_url,
        )
    raise FhirError.of(
        400,
        "invalid",
        f"{where}.request.url: an update is PUT <Type>/<id> or PUT <Type>?<criteria>",
        f"{where}.request.url",
    )


def _rewrite(value: Any, local: Mapping[str, str]) -> Any:
    """Replace references to created entries' full URLs with their new ``Type/id``."""
    if isinstance(value, dict):
        out = {k: _rewrite(v, local) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in local:
            out["reference"] = local[ref]
        return out
    if isinstance(value, list):
        return [_rewrite(v, local) for v in value]
    return value


async def apply_plan(batch: Batch, plan: Plan) -> Outcome:
    """Plan in ``batch`` the write one entry asks for (create, update or conditional
    update); errors name the entry's resource."""
    path = f"Bundle.entry[{plan.index}].resource"
    if plan.method == "POST":
        return await batch.create(
            plan.resource,
            path,
            if_none_exist=plan.if_none_exist,
            local_url=plan.full_url,
            new_id=plan.new_id,
        )
    if plan.target_id is not None:
        return await batch.update(
            plan.resource_type, plan.target_id, plan.resource, path, if_match=plan.if_match
        )
    return await batch.conditional_update(
        plan.resource, plan.criteria or "", path, if_match=plan.if_match
    )


async def run_transaction(
    viewer: Viewer,
    bundle: Mapping[str, Any],
    confirm: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Apply a transaction Bundle; the transaction-response Bundle.

    The Bundle is validated already, or ``confirm`` validates it: it is awaited before
    anything commits (see :func:`plugins.fhir.ingest.ingest_bundle`).
    """
    entries = bundle_entries(bundle, "transaction")
    plans: list[Plan] = []
    for i, entry in enumerate(entries):
        try:
            plans.append(plan_entry(i, entry))
        except FhirError as exc:
            raise at_entry(exc, i) from None
    _check_unique_full_urls(plans)
    local = {
        p.full_url: f"{p.resource_type}/{p.new_id}"
        for p in plans
        if p.full_url and p.new_id is not None
    }
    if local:
        plans = [Plan(**{**_fields(p), "resource": _rewrite(p.resource, local)}) for p in plans]
    await read_ahead_identifiers(viewer, patient_identifier_criteria(plans))
    batch = Batch(viewer)
    outcomes: dict[int, Outcome] = {}
    # Where a reference to an entry must point once the entry has run: a conditional create
    # that found an existing resource (or Patient) is that resource, not the new id planned.
    found: dict[str, str] = {}
    for plan in sorted(plans, key=_run_order):
        if found:
            plan.resource = _rewrite(plan.resource, found)
        try:
            outcomes[plan.index] = await apply_plan(batch, plan)
        except FhirError as exc:
            raise at_entry(exc, plan.index) from None
        _note_target(batch, plan, outcomes[plan.index], found)
    await batch.commit(confirm)
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": entry_response(outcomes[p.index])} for p in plans],
    }


def _check_unique_full_urls(plans: list[Plan]) -> None:
    """400 naming the second entry that repeats an earlier entry's ``fullUrl``: references
    to it could not tell the two apart (bdl-7)."""
    seen: set[str] = set()
    for plan in plans:
        if plan.full_url is None:
            continue
        if plan.full_url in seen:
            where = f"Bundle.entry[{plan.index}].fullUrl"
            raise FhirError.of(
                400, "invalid", f"{where}: the same fullUrl as an earlier entry", where
            )
        seen.add(plan.full_url)


def _run_order(plan: Plan) -> tuple[bool, bool, int, int]:
    """Patients first (creates and conditional updates alike: they reference nothing, and
    other entries reference them), then creates before updates, in dependency order."""
    return (
        plan.resource_type != "Patient",
        plan.method != "POST",
        ORDER[plan.resource_type],
        plan.index,
    )


def _note_target(batch: Batch, plan: Plan, outcome: Outcome, found: dict[str, str]) -> None:
    """Record where references to ``plan``'s entry must point now that it has run.

    A created resource already has the id the references were rewritten to. A conditional
    create that matched an existing resource redirects them to that resource; a Patient
    created by a conditional update (``PUT Patient?criteria``) is registered under its
    ``fullUrl`` like a Patient created by ``POST``.
    """
    stored = outcome.stored
    if plan.new_id is not None and stored is not None and stored.id != plan.new_id:
        found[f"{plan.resource_type}/{plan.new_id}"] = f"{stored.type}/{stored.id}"
    if plan.resource_type != "Patient" or not plan.full_url:
        return
    if outcome.patient_key is not None:
        # Batch.create registers POSTed Patients itself; a conditional update does not.
        batch._patients.setdefault(plan.full_url, outcome.patient_key)
    elif outcome.person:
        found[plan.full_url] = f"Patient/{outcome.person}"


def patient_identifier_criteria(plans: list[Plan]) -> list[str]:
    """The ``identifier`` tokens of the Patient conditional creates and updates (read ahead in
    one query; a malformed criterion is left to the entry, which reports it)."""
    tokens: list[str] = []
    for plan in plans:
        criteria = plan.if_none_exist if plan.method == "POST" else plan.criteria
        if plan.resource_type != "Patient" or not criteria:
            continue
        for name, value in parse_qsl(criteria.lstrip("?"), keep_blank_values=True):
            if name == "identifier" and value:
                tokens.extend(value.split(","))
    return tokens


def _fields(plan: Plan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in Plan.__slots__}


def status_text(status: int) -> str:
    """``Bundle.entry.response.status``: the code and its reason phrase (``201 Created``)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def entry_response(outcome: Outcome) -> dict[str, Any]:
    """``Bundle.entry.response`` of one write."""
    out: dict[str, Any] = {"status": status_text(outcome.status)}
    stored = outcome.stored
    if stored is not None:
        out["location"] = f"{stored.type}/{stored.id}/_history/{stored.version}"
        out["etag"] = stored.etag
        out["lastModified"] = stored.last_updated
    elif outcome.person:
        out["location"] = f"Patient/{outcome.person}"
    if outcome.consent_note and outcome.consent_note != "applied":
        out["outcome"] = operation_outcome(
            [Issue("informational", f"consent gate: {outcome.consent_note}", (), "information")]
        )
    return out
