"""Canonical records built straight from payload dicts (the Bundle ingest hot path)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from hub.plugin_api import Address, Client, ContactPoint, HumanName, Identifier, RecordMeta


def client_record(meta: RecordMeta, payload: Mapping[str, Any]) -> Client:
    """A canonical Client from a payload made by :func:`patient_to_client` (built directly:
    this is the Bundle ingest hot path)."""
    birth = payload.get("birth_date")
    return Client(
        meta=meta,
        identifiers=tuple(
            Identifier(i["system"], i["value"], i.get("type", ""))
            for i in payload.get("identifiers", ())
        ),
        names=tuple(
            HumanName(
                n.get("family", ""),
                tuple(n.get("given", ())),
                n.get("prefix", ""),
                n.get("suffix", ""),
                n.get("use", ""),
            )
            for n in payload.get("names", ())
        ),
        birth_date=_date(birth) if birth else None,
        ssn=payload.get("ssn"),
        telecom=tuple(
            ContactPoint(t["system"], t["value"], t.get("use", ""))
            for t in payload.get("telecom", ())
        ),
        addresses=tuple(
            Address(
                tuple(a.get("lines", ())),
                a.get("city", ""),
                a.get("state", ""),
                a.get("postal_code", ""),
                a.get("country", ""),
                a.get("use", ""),
            )
            for a in payload.get("addresses", ())
        ),
        name_quality=payload.get("name_quality", ""),
        ssn_quality=payload.get("ssn_quality", ""),
        birth_date_quality=payload.get("birth_date_quality", ""),
        sex=payload.get("sex", ""),
        gender=tuple(payload.get("gender", ())),
        race=tuple(payload.get("race", ())),
        ethnicity=payload.get("ethnicity", ""),
        veteran_status=payload.get("veteran_status", ""),
        deceased=payload.get("deceased", ""),
    )


def _date(text: str) -> date | None:
    """A birth date; a partial FHIR date (year or year-month) is not a full birth date."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
