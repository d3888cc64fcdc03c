"""Hook implementations of the HL7 v2 plugin."""

from __future__ import annotations

from typing import Any

from hub.plugin_api import ConnectorInfo, Service, Sink, hookimpl


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """The MLLP listener and sender."""
    return [
        ConnectorInfo("hl7-mllp-listener", "source", ("hl7v2",), "ADT and REF^I12 over MLLP"),
        ConnectorInfo("hl7-mllp", "sink", ("hl7v2",), "ADT A08/A31 and REF^I12 over MLLP"),
    ]


@hookimpl
def hub_config_sections() -> dict[str, str]:
    """The [hl7] section."""
    return {"hl7": "the MLLP listener, its senders and TLS"}


@hookimpl
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Validate ``[hl7]``: ports, sizes, timeouts, senders (agency must exist), TLS files."""
    if section != "hl7":
        return None
    from plugins.hl7.settings import validate_section

    return validate_section(value, agencies)


@hookimpl
def hub_codecs() -> list[Any]:
    """The ``hl7v2`` codec: Client, Encounter and Referral records as ADT and REF^I12."""
    from plugins.hl7.codec import Hl7Codec

    return [Hl7Codec()]


@hookimpl
def hub_services(ctx: Any) -> list[Service]:
    """The MLLP listener, when ``[hl7]`` is configured with a non-zero port."""
    section = ctx.config.section("hl7")
    if not section:
        return []
    from plugins.hl7.listener import MllpListener
    from plugins.hl7.settings import load_settings

    settings = load_settings(section, ctx.config.resolve)
    if settings.port == 0:
        return []
    return [MllpListener(ctx, settings=settings)]


@hookimpl
def hub_sinks(ctx: Any) -> list[Sink]:
    """The ``hl7-mllp`` sink."""
    from plugins.hl7.sink import MllpSink

    return [MllpSink(ctx.config.resolve)]


@hookimpl
def hub_benchmarks() -> list[Any]:
    """ADT^A01 over MLLP with ACK after commit, 1 and 8 connections (``bench.py``)."""
    from plugins.hl7.bench import benchmarks

    return list(benchmarks())
