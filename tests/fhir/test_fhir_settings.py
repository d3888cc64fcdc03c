"""The ``[fhir]`` section: validated through the plugin hook, errors name the key."""

from __future__ import annotations

from hub.context import make_plugins
from plugins.fhir.settings import FhirSettings, settings_of, validate_section


def errors(value: object) -> list[str]:
    found = make_plugins().hook.hub_validate_config(
        section="fhir", value=value, agencies=frozenset()
    )
    return [e for result in found if result for e in result]


def test_fhir_settings_valid_and_defaults() -> None:
    assert errors({"base_url": "https://hub.example.org/fhir", "page_size": 20}) == []
    assert settings_of({}) == FhirSettings()
    assert settings_of({"base_url": "https://h/fhir/"}).base_url == "https://h/fhir"


def test_fhir_settings_errors_name_the_key() -> None:
    assert errors({"pagesize": 1}) == [
        "fhir.pagesize: unknown key (known: base_url, default_purpose, max_page_size, "
        "page_size, validation_workers)"
    ]
    assert errors({"page_size": "10"}) == ["fhir.page_size: expected int"]
    assert errors({"default_purpose": "gossip"}) == ["fhir.default_purpose: unknown purpose"]
    assert validate_section({"page_size": 900, "max_page_size": 500}) == [
        "fhir.page_size: must be 1-max_page_size"
    ]
    assert validate_section({"base_url": "ftp://x"}) == ["fhir.base_url: expected an http(s) URL"]
    assert validate_section({"validation_workers": -1}) == ["fhir.validation_workers: must be 0-64"]
    assert settings_of({"validation_workers": 0}).validation_workers == 0
