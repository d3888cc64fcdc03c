"""The built-in connectors pass the contract test kit (``hub.testing``), one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plugins.clarity.plugin as clarity_plugin
import plugins.csv.plugin as csv_plugin
import plugins.fhir.plugin as fhir_plugin
import plugins.hl7.plugin as hl7_plugin
from hub.sinks.webhook import WebhookSink
from hub.testing import codec_test_class, sink_test_class
from plugins.clarity.codec import ClientCsvCodec
from plugins.csv.codec import client_roster_codec
from plugins.csv.mapping import parse_section
from plugins.csv.sink import CsvFileSink
from plugins.fhir.codec import FhirCodec
from plugins.fhir.push import FhirPushSink
from plugins.hl7.codec import Hl7Codec
from plugins.hl7.sink import MllpSink

KINDS = ("client", "encounter", "referral")
SECRET_ENV = "KIT_WEBHOOK_SECRET"
CSV_SECTION: dict[str, Any] = {
    "mappings": {
        "kit": {
            "kind": "client",
            "columns": [
                {"column": "Client ID", "field": "identifiers.0.value"},
                {"column": "Family", "field": "names.0.family"},
                {"column": "Given", "field": "names.0.given.0"},
                {"column": "DOB", "field": "birth_date", "format": "%m/%d/%Y"},
            ],
        }
    }
}
BAD_CSV_SECTION = {
    "mappings": {"m": {"kind": "client", "columns": [{"column": "A", "field": "x"}]}}
}
NOT_OURS = "the {codec} codec takes no configuration; the [{section}] section is the {sink} sink's"


def csv_sink(folder: Path) -> CsvFileSink:
    """The csv-file sink with the kit's mapping."""
    return CsvFileSink(parse_section(CSV_SECTION)[0], folder)


TestHl7Codec = codec_test_class(
    Hl7Codec(),
    exemptions={"config": NOT_OURS.format(codec="hl7v2", section="hl7", sink="hl7-mllp")},
)
TestFhirCodec = codec_test_class(
    FhirCodec(),
    exemptions={"config": NOT_OURS.format(codec="fhir-r4", section="fhir", sink="fhir-push")},
)
TestCsvCodec = codec_test_class(
    client_roster_codec(),
    plugin=csv_plugin,
    config_section="csv",
    valid_config=CSV_SECTION,
    invalid_configs=[(BAD_CSV_SECTION, "csv.mappings.m.columns[0].field"), ({"x": 1}, "csv.x")],
)
TestClarityCodec = codec_test_class(
    ClientCsvCodec(),
    plugin=clarity_plugin,
    config_section="clarity",
    valid_config={"batch_size": 500},
    invalid_configs=[({"drop_folder": 3}, "clarity.drop_folder"), ({"nope": 1}, "clarity.nope")],
)
TestClarity2026Codec = codec_test_class(
    ClientCsvCodec("2026"),
    exemptions={"config": "the same [clarity] section is checked by the FY2024 codec's class"},
)

TestWebhookSink = sink_test_class(
    lambda folder: WebhookSink(),
    name="webhook",
    receiver="http",
    options=lambda r: {"url": r.url, "secret_envs": [SECRET_ENV], "timeout_seconds": 5},
    kinds=KINDS,
    environ={SECRET_ENV: "kit-webhook-secret"},
    invalid_options=[
        ({"url": "ftp://example.org/hook"}, "url"),
        ({"secret_envs": []}, "secret_envs"),
    ],
    exemptions={
        "config": "the webhook sink owns no hub.toml section: it is set up by feed options"
    },
)
TestMllpSink = sink_test_class(
    lambda folder: MllpSink(),
    name="hl7-mllp",
    receiver="mllp",
    options=lambda r: {"host": r.host, "port": r.port, "timeout_seconds": 5},
    kinds=KINDS,
    invalid_options=[({"port": None}, "port"), ({"host": None}, "host")],
    plugin=hl7_plugin,
    config_section="hl7",
    valid_config={"port": 0},
    invalid_configs=[({"port": -1}, "hl7.port"), ({"senders": [{"agency": "x"}]}, "hl7.senders")],
)
TestFhirPushSink = sink_test_class(
    lambda folder: FhirPushSink(),
    name="fhir-push",
    receiver="http",
    options=lambda r: {"base_url": r.url.rstrip("/"), "timeout_seconds": 5},
    kinds=KINDS,
    invalid_options=[
        ({"base_url": "ftp://example.org"}, "base_url"),
        ({"auth": {"type": "x"}}, "auth"),
    ],
    plugin=fhir_plugin,
    config_section="fhir",
    valid_config={"default_purpose": "coordination"},
    invalid_configs=[({"base_url": 3}, "fhir.base_url"), ({"page_size": "x"}, "fhir.page_size")],
)
TestCsvFileSink = sink_test_class(
    csv_sink,
    name="csv-file",
    receiver="folder",
    options=lambda r: {"mapping": "kit", "dir": str(r.path), "key_column": "Idempotency Key"},
    invalid_options=[
        ({"mapping": "nope"}, "mapping"),
        ({"file_name": "../{feed}.csv"}, "file_name"),
    ],
    plugin=csv_plugin,
    config_section="csv",
    valid_config=CSV_SECTION,
    invalid_configs=[(BAD_CSV_SECTION, "csv.mappings.m.columns[0].field")],
)
