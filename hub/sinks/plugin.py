"""The built-in sinks as a plugin module (registered with the plugin manager by the hub)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.core.ports import Sink
from hub.hookspecs import hookimpl
from hub.plugin_api import ConnectorInfo
from hub.sinks.webhook import WebhookSink

if TYPE_CHECKING:
    from hub.context import HubContext


def builtin_sinks(ctx: HubContext | None = None) -> list[Sink]:
    """Fresh instances of every built-in sink (``webhook``)."""
    return [WebhookSink()]


@hookimpl
def hub_connectors() -> list[ConnectorInfo]:
    """The built-in sinks."""
    return [ConnectorInfo("webhook", "sink", ("json",), "signed JSON POST per record")]


@hookimpl
def hub_sinks(ctx: HubContext) -> list[Sink]:
    """The built-in sinks, for the delivery workers."""
    return builtin_sinks(ctx)
