"""Canonical identifier systems ↔ FHIR ``Identifier.system`` URIs."""

from __future__ import annotations

from plugins.fhir import codes

_ABSOLUTE_URI = ("urn:", "http://", "https://")


def fhir_system(system: str) -> str:
    """The FHIR ``Identifier.system`` URI of a canonical identifier system.

    ``hmis:<impl>`` becomes ``urn:cie-hub:hmis:<impl>``; a system that is already a URI
    (``urn:``, ``http://``, ``https://``) stays; any other name (an HL7 assigning authority)
    becomes ``urn:cie-hub:aa:<name>``.
    """
    if not system or system.startswith(_ABSOLUTE_URI):
        return system
    if system.startswith("hmis:"):
        return codes.HMIS_SYSTEM_PREFIX + system[5:]
    return codes.AUTHORITY_SYSTEM_PREFIX + system


def canonical_system(system: str) -> str:
    """The canonical identifier system of a FHIR ``Identifier.system`` (inverse of
    :func:`fhir_system`)."""
    if system.startswith(codes.HMIS_SYSTEM_PREFIX):
        return "hmis:" + system[len(codes.HMIS_SYSTEM_PREFIX) :]
    if system.startswith(codes.AUTHORITY_SYSTEM_PREFIX):
        return system[len(codes.AUTHORITY_SYSTEM_PREFIX) :]
    return system
