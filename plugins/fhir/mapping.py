"""Canonical records ↔ FHIR R4 resources, as pure functions on plain dicts.

The canonical side is a record payload as :func:`hub.core.serialize.record_payload` makes it
(JSON-able dicts, lists for tuples, ISO strings for dates, default values left out); the FHIR
side is resource JSON. Nothing here validates with fhir.resources or touches I/O, so the
functions are cheap enough for the outbound hot path (serialise their output with orjson).

Every mapping round-trips: ``patient_to_client(client_to_patient(p)) == p`` and likewise for
encounters, referrals and consents (see :mod:`plugins.fhir.consent_mapping`). Source values
that FHIR has no code for travel in the hub's extensions (:mod:`plugins.fhir.codes`); known
limits: an empty referral status is written as ``requested``, a naive date-time is written
as UTC, and an identifier in the ``us-ssn`` system is read as the SSN.
"""

from __future__ import annotations

from plugins.fhir.consent_mapping import consent_from_fhir, consent_to_fhir
from plugins.fhir.encounter_map import encounter_from_fhir, encounter_to_fhir
from plugins.fhir.fhirjson import fhir_datetime, reference_to
from plugins.fhir.patient_map import client_to_patient, merge_client_payloads, patient_to_client
from plugins.fhir.referral_map import referral_from_fhir, referral_to_fhir
from plugins.fhir.systems import canonical_system, fhir_system

__all__ = [
    "canonical_system",
    "client_to_patient",
    "consent_from_fhir",
    "consent_to_fhir",
    "encounter_from_fhir",
    "encounter_to_fhir",
    "fhir_datetime",
    "fhir_system",
    "merge_client_payloads",
    "patient_to_client",
    "reference_to",
    "referral_from_fhir",
    "referral_to_fhir",
]
