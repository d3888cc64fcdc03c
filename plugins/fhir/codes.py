"""Code systems, URNs and value maps the FHIR connector uses (one place, documented).

The hub names its own things with URNs under ``urn:cie-hub:`` (it claims no web domain):

* ``urn:cie-hub:hmis:<ImplementationID>`` — the FHIR system of an HMIS PersonalID whose
  canonical system is ``hmis:<ImplementationID>``;
* ``urn:cie-hub:aa:<authority>`` — any other canonical system that is not already a URI
  (an HL7 assigning authority such as ``MERCY``);
* ``urn:cie-hub:agency`` — the identifier system of an agency id (``Organization.identifier``);
* ``urn:cie-hub:network`` — a trust network (``hmis``, ``cie``) as a consent actor;
* ``urn:cie-hub:consent`` — the id of an MPA consent record (``Consent.identifier``);
* ``urn:cie-hub:record`` — the opaque, stable id of a hub record (conditional updates
  when pushing to partners);
* ``urn:cie-hub:fhir:ext:<name>`` — the hub's extensions (lossless round trips of data
  that FHIR has no element for).
"""

from __future__ import annotations

from typing import Final

HUB_URN: Final = "urn:cie-hub:"
HMIS_SYSTEM_PREFIX: Final = "urn:cie-hub:hmis:"
AUTHORITY_SYSTEM_PREFIX: Final = "urn:cie-hub:aa:"
AGENCY_SYSTEM: Final = "urn:cie-hub:agency"
NETWORK_SYSTEM: Final = "urn:cie-hub:network"
RECORD_SYSTEM: Final = "urn:cie-hub:record"
CONSENT_ID_SYSTEM: Final = "urn:cie-hub:consent"
HUB_PURPOSE_SYSTEM: Final = "urn:cie-hub:purpose"
EXT: Final = "urn:cie-hub:fhir:ext:"

# ---- HL7 and FHIR code systems ----------------------------------------------------------

V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0003: Final = "http://terminology.hl7.org/CodeSystem/v2-0003"
V2_0004: Final = "http://terminology.hl7.org/CodeSystem/v2-0004"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_NULL_FLAVOR: Final = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
V3_PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC: Final = "http://loinc.org"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"
SDOHCC_TEMP: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
US_SSN: Final = "http://hl7.org/fhir/sid/us-ssn"
OMB_RACE_ETHNICITY: Final = "urn:oid:2.16.840.1.113883.6.238"
US_CORE_RACE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

# ---- the hub's extensions -----------------------------------------------------------------

EXT_SEX: Final = EXT + "sex"
EXT_GENDER_IDENTITY: Final = EXT + "gender-identity"
EXT_RACE_SOURCE: Final = EXT + "race-source"
EXT_VETERAN_STATUS: Final = EXT + "veteran-status"
EXT_DECEASED_SOURCE: Final = EXT + "deceased-source"
EXT_NAME_QUALITY: Final = EXT + "name-data-quality"
EXT_SSN_QUALITY: Final = EXT + "ssn-data-quality"
EXT_DOB_QUALITY: Final = EXT + "dob-data-quality"
EXT_SOURCE_CODE: Final = EXT + "source-code"
EXT_CONSENT_METHOD: Final = EXT + "consent-method"
EXT_CONSENT_GIVEN_BY: Final = EXT + "consent-given-by"
EXT_CONSENT_REVOKED_ON: Final = EXT + "consent-revoked-on"
EXT_PART2_RECIPIENT: Final = EXT + "part2-recipient"
EXT_REFERRAL_STATUS: Final = EXT + "referral-status"
EXT_REFERRAL_PRIORITY: Final = EXT + "referral-priority"

# ---- value sets the hub checks (R4 required bindings it relies on) ------------------------

TASK_STATUSES: Final = frozenset(
    {
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)
REQUEST_STATUSES: Final = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
REQUEST_INTENTS: Final = frozenset(
    {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
TASK_INTENTS: Final = frozenset(
    {
        "unknown",
        "proposal",
        "plan",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
PRIORITIES: Final = frozenset({"routine", "urgent", "asap", "stat"})
CONSENT_STATUSES: Final = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
EVENT_STATUSES: Final = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)
ENCOUNTER_STATUSES: Final = frozenset(
    {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
ADMINISTRATIVE_GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
NAME_USES: Final = frozenset(
    {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}
)
ADDRESS_USES: Final = frozenset({"home", "work", "temp", "old", "billing"})
TELECOM_SYSTEMS: Final = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
TELECOM_USES: Final = frozenset({"home", "work", "temp", "old", "mobile"})
BUNDLE_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})

REQUIRED_CODES: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("Task", "status"): TASK_STATUSES,
    ("Task", "intent"): TASK_INTENTS,
    ("Task", "priority"): PRIORITIES,
    ("ServiceRequest", "status"): REQUEST_STATUSES,
    ("ServiceRequest", "intent"): REQUEST_INTENTS,
    ("ServiceRequest", "priority"): PRIORITIES,
    ("Consent", "status"): CONSENT_STATUSES,
    ("Procedure", "status"): EVENT_STATUSES,
    ("Encounter", "status"): ENCOUNTER_STATUSES,
    ("Patient", "gender"): ADMINISTRATIVE_GENDERS,
}
"""(resource type, top-level element) → the codes an R4 required binding allows.

fhir.resources checks structure and types, not terminology; the hub checks these codes
itself because its workflow depends on them."""

# ---- purposes of use (MPA purpose ↔ v3-ActReason) -----------------------------------------

PURPOSE_TO_CODE: Final[dict[str, tuple[str, str]]] = {
    "coordination": (V3_ACT_REASON, "COC"),
    "treatment": (V3_ACT_REASON, "TREAT"),
    "payment": (V3_ACT_REASON, "HPAYMT"),
    "operations": (V3_ACT_REASON, "HOPERAT"),
    "eligibility": (V3_ACT_REASON, "ELIGDTRM"),
    "research": (V3_ACT_REASON, "HRESCH"),
    "marketing": (V3_ACT_REASON, "HMARKT"),
    "referral": (HUB_PURPOSE_SYSTEM, "referral"),
}
"""How an MPA purpose is written as a ``provision.purpose`` coding.

v3-ActReason has no code for "referral"; the hub writes it in its own system."""

CODE_TO_PURPOSE: Final[dict[str, str]] = {
    "COC": "coordination",
    "CAREMGT": "coordination",
    "TREAT": "treatment",
    "ETREAT": "treatment",
    "HPAYMT": "payment",
    "HOPERAT": "operations",
    "ELIGDTRM": "eligibility",
    "ELIGVER": "eligibility",
    "ELIG": "eligibility",
    "HRESCH": "research",
    "HMARKT": "marketing",
    "REFERRAL": "referral",
}
"""Codes read back as MPA purposes (v3-ActReason and the synonyms partners send)."""

# ---- sensitivity (MPA sensitive category ↔ v3-ActCode security label) ---------------------

CATEGORY_TO_LABEL: Final[dict[str, str]] = {
    "substance_use": "ETH",
    "hiv": "HIV",
    "behavioral_health": "PSY",
    "dv": "SDV",
}
LABEL_TO_CATEGORY: Final[dict[str, str]] = {v: k for k, v in CATEGORY_TO_LABEL.items()}

# ---- patient class (HL7 v2 PV1-2 ↔ v3-ActCode encounter class) ----------------------------

PATIENT_CLASS_TO_ACT: Final[dict[str, str]] = {
    "E": "EMER",
    "I": "IMP",
    "O": "AMB",
    "P": "PRENC",
}
ACT_TO_PATIENT_CLASS: Final[dict[str, str]] = {v: k for k, v in PATIENT_CLASS_TO_ACT.items()}
