"""Canonical records built straight from payload dicts (the Bundle ingest hot path)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from hub.core.partial_dates import coarser, first_day, parse_iso
from hub.plugin_api import Address, Client, ContactPoint, HumanName, Identifier, RecordMeta


def client_record(meta: RecordMeta, payload: Mapping[str, Any]) -> Client:
    """A canonical Client from a payload made by :func:`patient_to_client` (built directly:
    this is the Bundle ingest hot path)."""
    get = payload.get
    birth, precision = _birth(get("birth_date"), get("birth_date_precision", ""))
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
        birth_date=birth,
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
        birth_date_precision=precision,
    )


def _birth(text: Any, precision: str) -> tuple[date | None, str]:
    """(birth date, precision) of a payload's ``birth_date`` (``YYYY-MM-DD``, or a partial
    ``YYYY`` / ``YYYY-MM`` given as it is) and ``birth_date_precision``, the coarser of the
    two winning; a value that is no date is no birth date."""
    parsed = parse_iso(text) if text and isinstance(text, str) else None
    if parsed is None:
        return None, ""
    first, given = parsed
    known = coarser(given, precision)
    return first_day(first, known), known
