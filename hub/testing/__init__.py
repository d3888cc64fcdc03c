"""The connector contract test kit: run it from a plugin's own pytest suite.

::

    from hub.testing import SinkContract, codec_test_class

    TestMyCodec = codec_test_class(MyCodec())

    class TestMySink(SinkContract):
        sink_factory = staticmethod(lambda folder: MySink())
        receiver = "http"
        options = staticmethod(lambda receiver: {"url": receiver.url})

The kit checks configuration errors, codec round trips on canonical fixture records
(:mod:`hub.testing.fixtures`), bad input, idempotent retries, cancellation, the consent gate
through a real hub (:func:`run_gated_hub`) and the logs for client data. It needs pytest and
pytest-asyncio; installing the hub registers its pytest plugin (``cie_hub``), which adds the
``gated_hub`` and ``kit_records`` fixtures. See ``docs/plugins.md``, "Testing a connector".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.testing import fixtures
    from hub.testing.contracts import (
        CODEC_CHECKS,
        SINK_CHECKS,
        CodecContract,
        SinkContract,
        codec_test_class,
        sink_test_class,
    )
    from hub.testing.deliveries import make_deliveries, make_delivery
    from hub.testing.gated import GatedRun, run_gated_hub
    from hub.testing.receivers import (
        FolderReceiver,
        HttpReceiver,
        MllpReceiver,
        Receiver,
        open_receiver,
    )

# Names are imported on first use, so the kit's pytest plugin can ask pytest to rewrite the
# kit's assertions before the modules holding them are imported.
_WHERE: dict[str, str] = {
    "fixtures": "hub.testing.fixtures",
    "CODEC_CHECKS": "hub.testing.contracts",
    "SINK_CHECKS": "hub.testing.contracts",
    "CodecContract": "hub.testing.contracts",
    "SinkContract": "hub.testing.contracts",
    "codec_test_class": "hub.testing.contracts",
    "sink_test_class": "hub.testing.contracts",
    "make_deliveries": "hub.testing.deliveries",
    "make_delivery": "hub.testing.deliveries",
    "GatedRun": "hub.testing.gated",
    "run_gated_hub": "hub.testing.gated",
    "FolderReceiver": "hub.testing.receivers",
    "HttpReceiver": "hub.testing.receivers",
    "MllpReceiver": "hub.testing.receivers",
    "Receiver": "hub.testing.receivers",
    "open_receiver": "hub.testing.receivers",
}


def __getattr__(name: str) -> Any:
    """Import a public name of the kit on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hub.testing' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "fixtures" else getattr(loaded, name)
    globals()[name] = value
    return value


__all__ = [
    "CODEC_CHECKS",
    "SINK_CHECKS",
    "CodecContract",
    "FolderReceiver",
    "GatedRun",
    "HttpReceiver",
    "MllpReceiver",
    "Receiver",
    "SinkContract",
    "codec_test_class",
    "fixtures",
    "make_deliveries",
    "make_delivery",
    "open_receiver",
    "run_gated_hub",
    "sink_test_class",
]
