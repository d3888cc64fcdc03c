"""Benchmark figures of the FHIR connector (for ``hub bench``; not timed tests).

* Bundle ingest: ``ingest_bundle`` of a transaction Bundle of N Patients into a fresh hub,
  against its floor — validating the same Bundle with the ``fhir.resources.R4B`` model alone.
* Patient rendering: ``client_to_patient`` + ``orjson.dumps`` of canonical Client payloads.

Synthetic, invented data only.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle

from hub.synthetic import name_tag
from plugins.fhir.ingest import ingest_bundle
from plugins.fhir.mapping import client_to_patient

_GIVEN = ("Ada", "Ben", "Cleo", "Dev", "Eun", "Fay", "Gus", "Hal")
_FAMILY = ("Testperson", "Sample", "Example", "Demo", "Mock", "Trial")


def synthetic_patient(i: int) -> dict[str, Any]:
    """An invented Patient number ``i`` (a distinct name, so identity sees distinct people)."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "urn:oid:2.16.840.1.113883.19.5",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "value": f"BENCH-{i:07d}",
            }
        ],
        "name": [
            {"family": _FAMILY[i % len(_FAMILY)] + name_tag(i), "given": [_GIVEN[i % len(_GIVEN)]]}
        ],
        "gender": ("female", "male", "other", "unknown")[i % 4],
        "birthDate": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "address": [{"line": [f"{i} Bench St"], "city": "San Diego", "state": "CA"}],
        "telecom": [{"system": "phone", "value": f"555-{i % 10000:04d}"}],
    }


def patient_bundle(n: int, start: int = 0) -> bytes:
    """A transaction Bundle (JSON bytes) that POSTs ``n`` Patients."""
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": synthetic_patient(i),
            "request": {"method": "POST", "url": "Patient"},
        }
        for i in range(start, start + n)
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def validation_floor(bundle: bytes) -> float:
    """Seconds to parse and validate a Bundle with the R4B model alone."""
    started = time.perf_counter()
    Bundle.model_validate(orjson.loads(bundle))
    return time.perf_counter() - started


async def ingest_figures(ctx: Any, agency: str, n: int = 1000, rounds: int = 3) -> dict[str, float]:
    """Ingest ``n`` new Patients per round through ``ingest_bundle``, measuring the floor
    (R4B validation of the same Bundle) beside each round; best of ``rounds`` each."""
    floors: list[float] = []
    takes: list[float] = []
    for r in range(rounds):
        bundle = patient_bundle(n, start=r * n)
        floors.append(validation_floor(bundle))
        started = time.perf_counter()
        response = await ingest_bundle(ctx, agency, bundle)
        takes.append(time.perf_counter() - started)
        assert len(response["entry"]) == n
    floor, took = min(floors), min(takes)
    return {
        "patients": float(n),
        "ingest_seconds": took,
        "validation_floor_seconds": floor,
        "ratio_of_floor": floor / took,
        "patients_per_second": n / took,
    }


def render_figures(n: int = 20_000) -> dict[str, float]:
    """Patients rendered per second (mapping + orjson) from canonical Client payloads."""
    payloads = [
        {
            "identifiers": [{"system": "hmis:IMPL-1", "value": f"P{i}", "type": "PI"}],
            "names": [{"family": _FAMILY[i % len(_FAMILY)], "given": [_GIVEN[i % len(_GIVEN)]]}],
            "birth_date": f"{1940 + i % 60}-01-01",
            "sex": "1",
            "race": ["White"],
            "ethnicity": "0",
            "addresses": [{"lines": [f"{i} Bench St"], "city": "San Diego", "state": "CA"}],
        }
        for i in range(n)
    ]
    started = time.perf_counter()
    for payload in payloads:
        orjson.dumps(client_to_patient(payload))
    took = time.perf_counter() - started
    return {"patients": float(n), "seconds": took, "patients_per_second": n / took}
