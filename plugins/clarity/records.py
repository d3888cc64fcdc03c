"""Canonical records that also keep the HUD CSV row they came from.

A Client, Enrollment, Exit or Service read from HUD CSV carries, besides its canonical
fields, the row's original columns (``hmis_columns``, in the spec order of ``hmis_version``)
so an export can write the row back exactly. These fields have no consent category, so the
gate never releases them (redaction fails closed); the store keeps them in the record's
payload, and a record read back through the core comes back as the plain canonical type.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.plugin_api import Client, Enrollment, Exit, ServiceRecord


@dataclass(frozen=True, slots=True, repr=False)
class HmisClient(Client):
    """A Client plus its Client.csv row."""

    hmis_version: str = ""
    hmis_columns: tuple[str, ...] = ()
    hmis_hash_status: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class HmisEnrollment(Enrollment):
    """An Enrollment plus its Enrollment.csv row."""

    hmis_version: str = ""
    hmis_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class HmisExit(Exit):
    """An Exit plus its Exit.csv row."""

    hmis_version: str = ""
    hmis_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class HmisService(ServiceRecord):
    """A Service plus its Services.csv row."""

    hmis_version: str = ""
    hmis_columns: tuple[str, ...] = ()


ROW_FIELDS = ("hmis_version", "hmis_columns", "hmis_hash_status")
"""Payload keys that hold the source row (never released through the gate)."""
