"""Canonical records built straight from payload dicts (the Bundle ingest hot path)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from hub.plugin_api import Address, Client, ContactPoint, HumanName, Identifier, RecordMeta


def client_record(meta: RecordMeta, payload: Mapping[str, Any]) -> Client:
    """A canonical Client from a payload made by :func:`patient_to_client` (built directly:
    this is the Bundle ingest hot path)."""
    get = payload.get
    birth = get("birth_date")
    idents = get("identifiers")
    names = get("names")
    telecom = get("telecom")
    addresses = get("addresses")
    return Client(
        meta=meta,
        identifiers=tuple([Identifier(i["system"], i["value"], i.get("type", "")) for i in idents])
        if idents
        else (),
        names=tuple(
            [
                HumanName(
                    n.get("family", ""),
                    tuple(n.get("given", ())),
                    n.get("prefix", ""),
                    n.get("suffix", ""),
                    n.get("use", ""),
                )
                for n in names
            ]
        )
        if names
        else (),
        birth_date=_date(birth) if birth else None,
        ssn=get("ssn"),
        telecom=tuple([ContactPoint(t["system"], t["value"], t.get("use", "")) for t in telecom])
        if telecom
        else (),
        addresses=tuple(
            [
                Address(
                    tuple(a.get("lines", ())),
                    a.get("city", ""),
                    a.get("state", ""),
                    a.get("postal_code", ""),
                    a.get("country", ""),
                    a.get("use", ""),
                )
                for a in addresses
            ]
        )
        if addresses
        else (),
        name_quality=get("name_quality", ""),
        ssn_quality=get("ssn_quality", ""),
        birth_date_quality=get("birth_date_quality", ""),
        sex=get("sex", ""),
        gender=tuple(get("gender", ())),
        race=tuple(get("race", ())),
        ethnicity=get("ethnicity", ""),
        veteran_status=get("veteran_status", ""),
        deceased=get("deceased", ""),
    )


def _date(text: str) -> date | None:
    """A birth date; a partial FHIR date (year or year-month) is not a full birth date."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
