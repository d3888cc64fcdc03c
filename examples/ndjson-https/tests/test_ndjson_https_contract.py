"""The example plugin passes the hub's contract test kit, and its POSTs verify."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from cie_hub_ndjson_https import plugin
from cie_hub_ndjson_https.codec import NdjsonCodec
from cie_hub_ndjson_https.sink import NdjsonHttpsSink

from hub.sinks.webhook import verify_signature
from hub.testing import (
    HttpReceiver,
    Receiver,
    codec_test_class,
    fixtures,
    make_deliveries,
    open_receiver,
    sink_test_class,
)

SECRET_ENV = "NDJSON_HTTPS_TEST_SECRET"
SECRET = "example-secret"
VALID_CONFIG = {"timeout_seconds": 5, "max_lines": 100}
INVALID_CONFIGS = [
    ({"timeout_seconds": 0}, "ndjson_https.timeout_seconds"),
    ({"max_lines": "many"}, "ndjson_https.max_lines"),
    ({"colour": "blue"}, "ndjson_https.colour"),
]


def https_options(receiver: Receiver) -> dict[str, Any]:
    """Feed options aiming the sink at the kit's loopback HTTP receiver."""
    assert isinstance(receiver, HttpReceiver)
    return {"url": receiver.url + "ndjson", "secret_envs": [SECRET_ENV], "timeout_seconds": 5}


TestNdjsonCodec = codec_test_class(
    NdjsonCodec(),
    plugin=plugin,
    config_section="ndjson_https",
    valid_config=VALID_CONFIG,
    invalid_configs=INVALID_CONFIGS,
)

TestNdjsonHttpsSink = sink_test_class(
    lambda folder: NdjsonHttpsSink(max_lines=4),
    name="ndjson-https",
    receiver="http",
    options=https_options,
    kinds=("client", "encounter", "referral"),
    environ={SECRET_ENV: SECRET},
    invalid_options=[({"url": "ftp://example.org/x"}, "url"), ({"secret_envs": []}, "secret_envs")],
    plugin=plugin,
    config_section="ndjson_https",
    valid_config=VALID_CONFIG,
    invalid_configs=INVALID_CONFIGS,
)


async def test_posts_are_signed_and_decode_back(tmp_path: Any, monkeypatch: Any) -> None:
    """A receiver verifies each POST with the hub's signature check and reads the records."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    records = fixtures.records_of(["client"])
    sink = NdjsonHttpsSink(max_lines=4)
    async with open_receiver("http", tmp_path) as receiver:
        assert isinstance(receiver, HttpReceiver)
        try:
            outcomes = await sink.deliver(make_deliveries(records, https_options(receiver)))
        finally:
            await sink.close()
        assert all(o.ok for o in outcomes)
        assert len(receiver.arrivals) == 2  # 6 clients, 4 lines per POST
        decoded = []
        for arrival in receiver.arrivals:
            signature = arrival.headers["X-Hub-Signature"]
            assert verify_signature(signature, arrival.body, [SECRET])
            assert arrival.headers["Content-Type"] == "application/x-ndjson"
            decoded += NdjsonCodec().decode(arrival.body, source=fixtures.SOURCE, owner="x")
    assert [r.meta.key for r in decoded] == [r.meta.key for r in records]


def test_installed_through_its_entry_point() -> None:
    """Installed with pip, the hub loads the plugin from the cie_hub group."""
    from hub.context import make_plugins

    names = {ep.name for ep in importlib.metadata.entry_points(group="cie_hub")}
    assert "ndjson_https" in names, "install it first: pip install -e examples/ndjson-https"
    described = {d.name: d for d in make_plugins().describe()}
    assert {c.name for c in described["ndjson_https"].connectors} == {"ndjson-https", "ndjson"}
