"""Hook implementations of the example plugin (entry point ``ndjson_https``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cie_hub_ndjson_https.codec import NdjsonCodec
from cie_hub_ndjson_https.sink import DEFAULT_MAX_LINES, DEFAULT_TIMEOUT_SECONDS, NdjsonHttpsSink
from hub.plugin_api import Codec, ConnectorInfo, Sink, hookimpl

SECTION = "ndjson_https"


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """The sink and the codec."""
    return [
        ConnectorInfo("ndjson-https", "sink", ("ndjson",), "signed NDJSON batches over HTTPS"),
        ConnectorInfo("ndjson", "codec", ("ndjson",), "records as NDJSON lines"),
    ]


@hookimpl
def hub_config_sections() -> dict[str, str]:
    """The [ndjson_https] section."""
    return {SECTION: "NDJSON over HTTPS: default timeout and lines per POST"}


def _check(key: str, value: Any) -> str | None:
    if key == "timeout_seconds":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 300
        return None if ok else "expected a number of seconds above 0 and at most 300"
    if key == "max_lines":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100_000
        return None if ok else "expected a whole number from 1 to 100000"
    return "unknown key (known: max_lines, timeout_seconds)"


@hookimpl
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Check ``[ndjson_https]``; errors start with the key path."""
    if section != SECTION:
        return None
    if not isinstance(value, Mapping):
        return [f"{SECTION}: expected a table"]
    return [f"{SECTION}.{k}: {p}" for k, v in value.items() if (p := _check(str(k), v))]


@hookimpl
def hub_codecs() -> list[Codec]:
    """The NDJSON codec."""
    return [NdjsonCodec()]


@hookimpl
def hub_sinks(ctx: Any) -> list[Sink]:
    """The sink, with the defaults of ``[ndjson_https]``."""
    section = ctx.config.section(SECTION)
    return [
        NdjsonHttpsSink(
            timeout_seconds=float(section.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            max_lines=int(section.get("max_lines", DEFAULT_MAX_LINES)),
        )
    ]
