"""Canonical Referral ↔ FHIR R4 ServiceRequest + Task (Gravity style, plain dicts)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plugins.fhir import codes
from plugins.fhir.fhirjson import (
    DATE,
    Json,
    canonical_datetime,
    coding_of,
    coding_text,
    ext,
    ext_value,
    fhir_datetime,
    reference_to,
    reference_value,
)

# ---- Referral ↔ ServiceRequest + Task ----------------------------------------------------


def canonical_instant(value: str) -> str:
    """A FHIR dateTime as the ISO text a canonical record holds; a partial date (``2025`` or
    ``2025-03``, valid FHIR) is taken as the first instant it names (``2025-03-01T00:00:00``).

    Raises ValueError for text that is no FHIR dateTime at all.
    """
    try:
        return canonical_datetime(value)
    except ValueError:
        if not DATE.fullmatch(value) or len(value) == 10:
            raise
    year, _, month = value.partition("-")
    return canonical_datetime(f"{year}-{month or '01'}-01")


_V2_REFERRAL_STATUS = {"A": "accepted", "P": "requested", "R": "rejected", "E": "cancelled"}
_V2_PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}
_TASK_TO_REQUEST_STATUS = {
    "draft": "draft",
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
    "failed": "revoked",
    "entered-in-error": "entered-in-error",
}
_OUTPUT_TYPE = {
    "coding": [
        {
            "system": codes.SDOHCC_TEMP,
            "code": "resulting-activity",
            "display": "Resulting Activity",
        }
    ]
}
_TYPED_REF = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def referral_to_fhir(
    payload: Mapping[str, Any],
    *,
    service_request_id: str,
    task_id: str,
    patient_ref: str | None = None,
) -> tuple[Json, Json]:
    """(ServiceRequest, Task) for a canonical Referral payload, Gravity style.

    The Task (``intent`` order, ``code`` fulfill) focuses the ServiceRequest; requester and
    performer agencies are ``Organization/<agency id>``; a status or priority FHIR has no
    code for travels in an extension; ``consent_ref`` (``Consent/<id>``) goes to
    ``ServiceRequest.supportingInfo``; outputs (``Procedure/<id>``) to ``Task.output``.
    """
    status = str(payload.get("status", ""))
    task_status = (
        status if status in codes.TASK_STATUSES else _V2_REFERRAL_STATUS.get(status, "requested")
    )
    priority = str(payload.get("priority", ""))
    fhir_priority = priority if priority in codes.PRIORITIES else _V2_PRIORITY.get(priority)
    sr: Json = {"resourceType": "ServiceRequest", "id": service_request_id}
    task: Json = {"resourceType": "Task", "id": task_id}
    extensions: list[Json] = []
    if status and status != task_status:
        extensions.append(ext(codes.EXT_REFERRAL_STATUS, status))
    if priority and priority != fhir_priority:
        extensions.append(ext(codes.EXT_REFERRAL_PRIORITY, priority))
    if extensions:
        task["extension"] = extensions
    sr["status"] = _TASK_TO_REQUEST_STATUS.get(task_status, "active")
    sr["intent"] = "order"
    task["status"] = task_status
    task["intent"] = "order"
    if fhir_priority:
        sr["priority"] = fhir_priority
        task["priority"] = fhir_priority
    if payload.get("service_codes"):
        sr["code"] = {"coding": [coding_of(c) for c in payload["service_codes"]]}
    task["code"] = {"coding": [{"system": codes.TASK_CODE, "code": "fulfill"}]}
    task["focus"] = {"reference": f"ServiceRequest/{service_request_id}"}
    if patient_ref:
        sr["subject"] = {"reference": patient_ref}
        task["for"] = {"reference": patient_ref}
    if payload.get("authored_on"):
        when = fhir_datetime(payload["authored_on"])
        sr["authoredOn"] = when
        task["authoredOn"] = when
    if payload.get("requester"):
        ref = reference_to("Organization", payload["requester"])
        sr["requester"] = ref
        task["requester"] = dict(ref)
    if payload.get("performer"):
        ref = reference_to("Organization", payload["performer"])
        sr["performer"] = [ref]
        task["owner"] = dict(ref)
    reasons: list[Json] = []
    if payload.get("reason"):
        reasons.append({"text": payload["reason"]})
    reasons.extend({"coding": [coding_of(d)]} for d in payload.get("diagnoses") or ())
    if reasons:
        sr["reasonCode"] = reasons
    consent_ref = str(payload.get("consent_ref", ""))
    if consent_ref:
        info = (
            {"reference": consent_ref}
            if consent_ref.startswith("Consent/") and _TYPED_REF.fullmatch(consent_ref)
            else {"display": consent_ref}
        )
        sr["supportingInfo"] = [info]
    if payload.get("notes"):
        sr["note"] = [{"text": n} for n in payload["notes"]]
    if payload.get("outputs"):
        task["output"] = [
            {
                "type": _OUTPUT_TYPE,
                "valueReference": {"reference": o} if _TYPED_REF.fullmatch(o) else {"display": o},
            }
            for o in payload["outputs"]
        ]
    return sr, task


def referral_from_fhir(
    service_request: Mapping[str, Any],
    task: Mapping[str, Any],
    *,
    client: Mapping[str, str] | None = None,
) -> Json:
    """A canonical Referral payload from a ServiceRequest and its Task (inverse of
    :func:`referral_to_fhir`); ``client`` is the SourceKey dict of the person's record."""
    out: Json = {}
    if client:
        out["client"] = dict(client)
    status = ext_value(task, codes.EXT_REFERRAL_STATUS) or str(task.get("status", ""))
    if status:
        out["status"] = status
    priority = (
        ext_value(task, codes.EXT_REFERRAL_PRIORITY)
        or task.get("priority")
        or service_request.get("priority")
    )
    if priority:
        out["priority"] = str(priority)
    requester = reference_value(
        task.get("requester") or service_request.get("requester"), "Organization"
    )
    if requester:
        out["requester"] = requester
    performer_ref = task.get("owner")
    if performer_ref is None:
        performers = service_request.get("performer") or ()
        performer_ref = performers[0] if performers else None
    performer = reference_value(performer_ref, "Organization")
    if performer:
        out["performer"] = performer
    code = service_request.get("code")
    if isinstance(code, Mapping) and code.get("coding"):
        out["service_codes"] = [coding_text(c) for c in code["coding"] if isinstance(c, Mapping)]
    reasons = [r for r in service_request.get("reasonCode") or () if isinstance(r, Mapping)]
    texts = [str(r["text"]) for r in reasons if r.get("text") and not r.get("coding")]
    if texts:
        out["reason"] = texts[0]
    diagnoses = [coding_text(r["coding"][0]) for r in reasons if r.get("coding")]
    if diagnoses:
        out["diagnoses"] = diagnoses
    notes = [
        str(n["text"])
        for n in service_request.get("note") or ()
        if isinstance(n, Mapping) and n.get("text")
    ]
    if notes:
        out["notes"] = notes
    authored = service_request.get("authoredOn") or task.get("authoredOn")
    if authored:
        out["authored_on"] = canonical_instant(str(authored))
    for info in service_request.get("supportingInfo") or ():
        if not isinstance(info, Mapping):
            continue
        literal = info.get("reference")
        if isinstance(literal, str) and literal.startswith("Consent/"):
            out["consent_ref"] = literal
            break
        if isinstance(info.get("display"), str) and not literal:
            out["consent_ref"] = info["display"]
            break
    outputs: list[str] = []
    for item in task.get("output") or ():
        ref = item.get("valueReference") if isinstance(item, Mapping) else None
        if isinstance(ref, Mapping):
            value = ref.get("reference") or ref.get("display")
            if isinstance(value, str) and value:
                outputs.append(value)
    if outputs:
        out["outputs"] = outputs
    return out
