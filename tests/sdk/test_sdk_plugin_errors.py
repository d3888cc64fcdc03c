"""A plugin that does not fit the API or whose hook fails is named in a one-line error."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hub.plugin_api import ConnectorInfo, hookimpl
from hub.plugins import PluginError, PluginManager


class MisspeltArgument:
    @hookimpl
    def hub_sinks(self, context: Any) -> list[Any]:  # the hook's argument is `ctx`
        return []


class FailingConnectors:
    @hookimpl
    def hub_connectors(self) -> list[ConnectorInfo]:
        raise RuntimeError("boom")


class CodecDeclaredTwice:
    @hookimpl
    def hub_connectors(self) -> list[ConnectorInfo]:
        return [ConnectorInfo("ndjson-x", "codec"), ConnectorInfo("drop-x", "source")]

    @hookimpl
    def hub_codecs(self) -> list[Any]:
        return [SimpleNamespace(name="ndjson-x")]


def test_a_hook_with_a_wrong_argument_is_refused_naming_the_plugin() -> None:
    with pytest.raises(PluginError, match="plugin 'misspelt' does not fit the plugin API"):
        PluginManager().register(MisspeltArgument(), name="misspelt")


def test_a_failing_hook_is_named_not_a_traceback() -> None:
    pm = PluginManager()
    pm.register(FailingConnectors(), name="failing")
    with pytest.raises(PluginError, match="plugin 'failing': a hook failed: RuntimeError: boom"):
        pm.describe()


def test_a_codec_also_declared_as_a_connector_is_listed_once() -> None:
    pm = PluginManager()
    pm.register(CodecDeclaredTwice(), name="twice")
    [described] = [d for d in pm.describe() if d.name == "twice"]
    names = [c.name for c in described.connectors] + list(described.codecs)
    assert sorted(names) == ["drop-x", "ndjson-x"]
