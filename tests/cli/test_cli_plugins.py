"""``hub plugins list``: every built-in plugin with its connectors and codecs."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from click.testing import Result


def test_plugins_list_names_connectors_and_codecs(hub_cli: Callable[..., Result]) -> None:
    listed = {p["name"]: p for p in orjson.loads(hub_cli("plugins", "list", "--json").output)}
    assert {"clarity", "csv", "fhir", "hl7", "hub"} <= set(listed)
    assert "hl7v2" in listed["hl7"]["codecs"]
    assert "fhir-r4" in listed["fhir"]["codecs"]
    assert {"hud-client-csv", "hud-client-csv-2026"} <= set(listed["clarity"]["codecs"])
    assert {c["name"] for c in listed["hl7"]["connectors"]} == {"hl7-mllp-listener", "hl7-mllp"}
    table = hub_cli("plugins", "list").output
    assert "hl7v2 (codec)" in table and "hl7-mllp (sink)" in table
