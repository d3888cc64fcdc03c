"""Hook implementations of the FHIR R4 plugin: the REST API, the push sink, ``[fhir]``."""

from __future__ import annotations

from typing import Any

from hub.plugin_api import ConnectorInfo, Sink, hookimpl
from plugins.fhir.settings import SECTION, settings_of, validate_section


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """The FHIR REST API and the push sink."""
    return [
        ConnectorInfo("fhir-api", "source", ("fhir-r4",), "FHIR R4 REST API under /fhir/"),
        ConnectorInfo("fhir-push", "sink", ("fhir-r4",), "push to a partner's FHIR server"),
    ]


@hookimpl
def hub_config_sections() -> dict[str, str]:
    """The [fhir] section."""
    return {SECTION: "the FHIR API and push settings"}


@hookimpl
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Validate ``[fhir]`` (base_url, default_purpose, page sizes)."""
    if section != SECTION:
        return None
    return validate_section(value)


@hookimpl
def hub_codecs() -> list[Any]:
    """The ``fhir-r4`` codec: Patient, Encounter and ServiceRequest+Task JSON."""
    from plugins.fhir.codec import FhirCodec

    return [FhirCodec()]


@hookimpl
def hub_sinks(ctx: Any) -> list[Sink]:
    """The ``fhir-push`` sink (relative key files resolve against the config folder)."""
    from plugins.fhir.push import FhirPushSink

    return [FhirPushSink(resolve=ctx.config.resolve)]


@hookimpl
def hub_http_routes(app: Any, ctx: Any) -> None:
    """Mount ``/fhir/`` and offer stored Consents to the consent consult."""
    from plugins.fhir.api import add_routes
    from plugins.fhir.consents import fhir_consents_for

    add_routes(app, settings_of(ctx.config.section(SECTION)))
    ctx.extras["fhir_consents_for"] = fhir_consents_for


@hookimpl
def hub_services(ctx: Any) -> list[Any]:
    """The worker processes that validate large Bundles (``[fhir] validation_workers``)."""
    from plugins.fhir.validation_pool import ValidationPool

    workers = settings_of(ctx.config.section(SECTION)).validation_workers
    return [ValidationPool(ctx, workers)] if workers > 0 else []


@hookimpl
def hub_benchmarks() -> list[Any]:
    """Bundle ingest and Patient rendering beside their floors (``benchmarks.py``)."""
    from plugins.fhir.benchmarks import benchmarks

    return list(benchmarks())
