"""``ingest_bundle``: the FHIR Bundle ingest path (API transactions and the benchmark)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from plugins.fhir.bench import patient_bundle, render_figures
from plugins.fhir.ingest import ingest_bundle
from plugins.fhir.outcome import FhirError


async def test_fhir_ingest_bundle_of_patients(hub_factory: Callable[..., Any]) -> None:
    async with hub_factory() as ctx:
        bundle = patient_bundle(20)
        first = await ingest_bundle(ctx, "hospital-x", bundle)
        assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 20
        persons = {e["response"]["location"] for e in first["entry"]}
        assert len(persons) == 20
        again = await ingest_bundle(ctx, "hospital-x", bundle)
        assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 20
        assert {e["response"]["location"] for e in again["entry"]} == persons
        assert (await ctx.store.count_records())["client"] == 20
        async with ctx.store.transaction() as tx:
            row = await tx.get_record(
                "client", "fhir:hospital-x", "urn:oid:2.16.840.1.113883.19.5|BENCH-0000003"
            )
        assert row is not None and row.owner == "hospital-x"


async def test_fhir_ingest_bundle_rejects_a_bad_entry_whole(
    hub_factory: Callable[..., Any],
) -> None:
    async with hub_factory() as ctx:
        data = orjson.loads(patient_bundle(5))
        data["entry"][3]["resource"]["contact"] = [{"bogus": True}]
        with pytest.raises(FhirError) as err:
            await ingest_bundle(ctx, "hospital-x", orjson.dumps(data))
        assert err.value.status == 400
        assert err.value.issues[0].expression == ("Bundle.entry[3].resource.contact[0].bogus",)
        assert (await ctx.store.count_records()).get("client", 0) == 0


async def test_fhir_ingest_partial_birth_date(hub_factory: Callable[..., Any]) -> None:
    async with hub_factory() as ctx:
        data = orjson.loads(patient_bundle(1))
        data["entry"][0]["resource"]["birthDate"] = "1980"
        response = await ingest_bundle(ctx, "hospital-x", orjson.dumps(data))
        assert response["entry"][0]["response"]["status"] == "201 Created"


def test_fhir_render_figures_shape() -> None:
    figures = render_figures(200)
    assert figures["patients"] == 200 and figures["patients_per_second"] > 0
