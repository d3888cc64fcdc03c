"""The CapabilityStatement at ``GET /fhir/metadata``: exactly what the API supports."""

from __future__ import annotations

from typing import Any

from plugins.fhir.search import PARAM_DOCS, include_names

SOFTWARE_VERSION = "0.1.0"
RELEASE_DATE = "2025-01-01"

_COMMON_PARAMS = [
    {"name": "_id", "type": "token", "documentation": "Logical id"},
    {
        "name": "_lastUpdated",
        "type": "date",
        "documentation": "meta.lastUpdated (prefixes eq ne gt lt ge le sa eb)",
    },
]


def _params(resource_type: str) -> list[dict[str, Any]]:
    docs = PARAM_DOCS[resource_type]
    return _COMMON_PARAMS + [
        {"name": name, "type": kind, "documentation": text}
        for name, (kind, text) in sorted(docs.items())
    ]


def _stored(resource_type: str, documentation: str) -> dict[str, Any]:
    return {
        "type": resource_type,
        "documentation": f"{documentation}; vread answers the current version only",
        "interaction": [
            {"code": "read"},
            {"code": "vread"},
            {"code": "create"},
            {"code": "update"},
            {"code": "search-type"},
        ],
        "versioning": "versioned-update",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalRead": "not-supported",
        "conditionalDelete": "not-supported",
        "searchParam": _params(resource_type),
        "searchInclude": include_names(resource_type),
    }


def capability_statement(base_url: str) -> dict[str, Any]:
    """The CapabilityStatement of this hub's FHIR R4 API."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASE_DATE,
        "publisher": "CIE Hub",
        "kind": "instance",
        "software": {"name": "CIE Hub", "version": SOFTWARE_VERSION},
        "implementation": {"description": "CIE Hub FHIR R4 API", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Patients are what the MPA consent gate releases to the calling partner; "
                    "a person with nothing released is not found. Purpose of use: header "
                    "X-Purpose-Of-Use (MPA purpose or v3-ActReason code)."
                ),
                "security": {
                    "cors": False,
                    "description": "Authorization: Bearer <partner API key>",
                },
                "resource": [
                    {
                        "type": "Patient",
                        "documentation": "id = hub person id; create takes the partner's "
                        "record of a client",
                        "interaction": [
                            {"code": "read"},
                            {"code": "create"},
                            {"code": "search-type"},
                        ],
                        "versioning": "no-version",
                        "conditionalCreate": True,
                        "searchParam": [
                            {"name": "_id", "type": "token"},
                            {"name": "identifier", "type": "token"},
                            {"name": "name", "type": "string"},
                            {"name": "family", "type": "string"},
                            {"name": "given", "type": "string"},
                            {"name": "birthdate", "type": "date"},
                            {
                                "name": "_lastUpdated",
                                "type": "date",
                                "documentation": "newest change among the released records; "
                                "narrows a search with other criteria",
                            },
                        ],
                    },
                    {
                        "type": "Organization",
                        "documentation": "every configured agency; id = agency id",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "versioning": "no-version",
                        "searchParam": [
                            {"name": "_id", "type": "token"},
                            {"name": "identifier", "type": "token"},
                            {"name": "name", "type": "string"},
                        ],
                    },
                    _stored("ServiceRequest", "Gravity referral request"),
                    _stored("Task", "Gravity referral management Task"),
                    _stored("Procedure", "what was done for a referral (Task.output)"),
                    _stored(
                        "Consent",
                        "patient-privacy consents; MPA-expressible ones are enforced by the gate",
                    ),
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
