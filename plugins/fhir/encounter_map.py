"""Canonical Encounter ↔ FHIR R4 Encounter (V2-to-FHIR IG style, plain dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugins.fhir import codes
from plugins.fhir.fhirjson import (
    Json,
    coding_of,
    coding_text,
    fhir_datetime,
    identifier_type,
)
from plugins.fhir.referral_map import canonical_instant

# ---- Encounter ↔ Encounter ---------------------------------------------------------------


def encounter_to_fhir(
    payload: Mapping[str, Any],
    *,
    encounter_id: str | None = None,
    patient_ref: str | None = None,
) -> Json:
    """A FHIR R4 Encounter (V2-to-FHIR IG style) from a canonical Encounter payload.

    PV1-2 patient class → ``class`` (v3-ActCode for E, I, O, P; otherwise the v2-0004 code),
    the ADT event → ``type`` (v2-0003), PV1-19 → ``identifier`` typed VN, admit/discharge →
    ``period``, PV1-3 → ``location``, the facility → ``serviceProvider.display``, diagnoses →
    ``reasonCode``. Status is ``finished`` once a discharge time is known.
    """
    out: Json = {"resourceType": "Encounter"}
    if encounter_id:
        out["id"] = encounter_id
    if payload.get("visit_number"):
        out["identifier"] = [
            {
                "type": {"coding": [{"system": codes.V2_0203, "code": "VN"}]},
                "value": payload["visit_number"],
            }
        ]
    out["status"] = "finished" if payload.get("discharge_time") else "in-progress"
    patient_class = str(payload.get("patient_class", ""))
    if not patient_class:
        out["class"] = {"system": codes.V3_NULL_FLAVOR, "code": "UNK"}
    elif patient_class in codes.PATIENT_CLASS_TO_ACT:
        out["class"] = {
            "system": codes.V3_ACT_CODE,
            "code": codes.PATIENT_CLASS_TO_ACT[patient_class],
        }
    else:
        out["class"] = {"system": codes.V2_0004, "code": patient_class}
    if payload.get("event"):
        out["type"] = [{"coding": [{"system": codes.V2_0003, "code": payload["event"]}]}]
    if patient_ref:
        out["subject"] = {"reference": patient_ref}
    period: Json = {}
    if payload.get("admit_time"):
        period["start"] = fhir_datetime(payload["admit_time"])
    if payload.get("discharge_time"):
        period["end"] = fhir_datetime(payload["discharge_time"])
    if period:
        out["period"] = period
    if payload.get("diagnoses"):
        out["reasonCode"] = [{"coding": [coding_of(d)]} for d in payload["diagnoses"]]
    if payload.get("location"):
        out["location"] = [{"location": {"display": payload["location"]}}]
    if payload.get("facility"):
        out["serviceProvider"] = {"display": payload["facility"]}
    return out


def encounter_from_fhir(
    resource: Mapping[str, Any], *, client: Mapping[str, str] | None = None
) -> Json:
    """A canonical Encounter payload from a FHIR R4 Encounter (inverse of
    :func:`encounter_to_fhir`); ``client`` is the SourceKey dict of the person's record."""
    out: Json = {}
    if client:
        out["client"] = dict(client)
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping) and identifier_type(ident) == "VN" and ident.get("value"):
            out["visit_number"] = str(ident["value"])
            break
    cls = resource.get("class")
    if isinstance(cls, Mapping) and cls.get("code"):
        code = str(cls["code"])
        system = cls.get("system")
        if system == codes.V3_ACT_CODE:
            out["patient_class"] = codes.ACT_TO_PATIENT_CLASS.get(code, code)
        elif system != codes.V3_NULL_FLAVOR:
            out["patient_class"] = code
    for concept in resource.get("type") or ():
        for coding in concept.get("coding") or () if isinstance(concept, Mapping) else ():
            if coding.get("system") == codes.V2_0003 and coding.get("code"):
                out["event"] = str(coding["code"])
    period = resource.get("period")
    if isinstance(period, Mapping):
        if period.get("start"):
            out["admit_time"] = canonical_instant(str(period["start"]))
        if period.get("end"):
            out["discharge_time"] = canonical_instant(str(period["end"]))
    diagnoses = [
        coding_text(concept["coding"][0])
        for concept in resource.get("reasonCode") or ()
        if isinstance(concept, Mapping) and concept.get("coding")
    ]
    if diagnoses:
        out["diagnoses"] = diagnoses
    for loc in resource.get("location") or ():
        target = loc.get("location") if isinstance(loc, Mapping) else None
        if isinstance(target, Mapping) and target.get("display"):
            out["location"] = str(target["display"])
            break
    provider = resource.get("serviceProvider")
    if isinstance(provider, Mapping) and provider.get("display"):
        out["facility"] = str(provider["display"])
    return out
