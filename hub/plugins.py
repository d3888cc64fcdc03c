"""The plugin manager: an object the application owns (never a module-level global)."""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass

import pluggy

from hub import hookspecs
from hub.plugin_api import ConnectorInfo


class PluginError(RuntimeError):
    """A plugin could not be loaded or implements a hook that does not exist."""


@dataclass(frozen=True, slots=True)
class PluginDescription:
    """A loaded plugin: its entry-point name, distribution version and connectors."""

    name: str
    version: str
    module: str
    connectors: tuple[ConnectorInfo, ...]
    codecs: tuple[str, ...] = ()
    """Names of the codecs the plugin provides (``hub_codecs``)."""


class PluginManager:
    """Loads plugins from the ``cie_hub`` entry-point group and calls their hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._versions: dict[str, tuple[str, str]] = {}

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hook relay (``manager.hook.hub_sinks(ctx=…)``)."""
        return self.pm.hook

    def load_entry_points(self, disabled: frozenset[str] = frozenset()) -> None:
        """Register every installed plugin of the group but the ``disabled`` ones, then
        refuse unknown hook names. A disabled name that no installed plugin has is refused
        (a misspelt name would leave the plugin running)."""
        installed = list(md.entry_points(group=hookspecs.PROJECT))
        unknown = sorted(disabled - {ep.name for ep in installed})
        if unknown:
            names = ", ".join(sorted({ep.name for ep in installed})) or "none"
            raise PluginError(
                f"[plugins] disabled names {unknown[0]!r}, which is not an installed plugin "
                f"(installed: {names})"
            )
        for ep in installed:
            if ep.name in disabled or self.pm.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}; "
                    f"reinstall it or disable it in [plugins] disabled"
                ) from None
            try:
                self.pm.register(module, name=ep.name)
            except pluggy.PluginValidationError as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) does not fit the plugin API: {exc}; "
                    f"fix it or disable it in [plugins] disabled"
                ) from None
            dist = ep.dist
            self._versions[ep.name] = (
                dist.version if dist is not None else "unknown",
                ep.value,
            )
        self.check()

    def register(self, plugin: object, name: str, version: str = "local") -> None:
        """Register a plugin object directly (tests, embedded use)."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} does not fit the plugin API: {exc}") from None
        self._versions[name] = (version, getattr(plugin, "__name__", type(plugin).__name__))
        self.check()

    def check(self) -> None:
        """Fail loudly on a hook implementation that matches no hookspec (a misspelt hook)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin implements an unknown hook: {exc}") from None

    def describe(self) -> list[PluginDescription]:
        """Every loaded plugin with its version and connectors, sorted by name."""
        out: list[PluginDescription] = []
        for name, plugin in self.pm.list_name_plugin():
            if name is None:
                continue
            infos: list[ConnectorInfo] = []
            impl = getattr(plugin, "hub_connectors", None)
            try:
                if impl is not None:
                    infos = list(impl())
                codecs = getattr(plugin, "hub_codecs", None)
                found = {c.name for c in (codecs() or [])} if codecs is not None else set()
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r}: a hook failed: {type(exc).__name__}: {exc}"
                ) from None
            # A codec is often declared as a connector too: listed once.
            names = tuple(sorted(found - {i.name for i in infos if i.direction == "codec"}))
            version, module = self._versions.get(name, ("unknown", name))
            out.append(PluginDescription(name, version, module, tuple(infos), names))
        return sorted(out, key=lambda d: d.name)

    def owned_sections(self) -> dict[str, str]:
        """Config section → owning plugin's summary, over every plugin."""
        sections: dict[str, str] = {}
        try:
            results = self.hook.hub_config_sections()
        except Exception as exc:
            raise PluginError(
                f"a plugin's hub_config_sections hook failed: {type(exc).__name__}: {exc}"
            ) from None
        for result in results:
            sections.update(result or {})
        return sections
