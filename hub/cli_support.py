"""What CLI commands (the hub's and plugins') share: state, running async work, errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson

from hub.config import HubConfig
from hub.context import HubContext, open_context
from hub.heap import settle_heap
from hub.plugins import PluginManager

T = TypeVar("T")


@dataclass
class CliState:
    """Passed to every command as ``click`` object: the config, plugins and flags."""

    config_path: Path
    debug: bool = False
    config_explicit: bool = False
    """Whether the config was named (``--config``, ``$HUB_CONFIG``): it must then exist."""
    _config: HubConfig | None = None
    _plugins: PluginManager | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def plugins(self) -> PluginManager:
        """The loaded plugin manager."""
        if self._plugins is None:
            from hub.context import disabled_plugins_in, make_plugins

            self._plugins = make_plugins(disabled=disabled_plugins_in(self.config_path))
        return self._plugins

    @property
    def config(self) -> HubConfig:
        """The validated config (loaded on first use)."""
        if self._config is None:
            from hub.config import load_config

            pm = self.plugins
            self._config = load_config(
                self.config_path,
                implicit=not self.config_explicit,
                owned_sections=pm.owned_sections(),
                validate_section=lambda s, v, a: [
                    e
                    for r in pm.hook.hub_validate_config(section=s, value=v, agencies=a)
                    if r
                    for e in r
                ],
            )
        return self._config


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run_with_context(
    state: CliState, work: Callable[[HubContext], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Open the hub (store, keys, consents) and run ``work`` in an event loop."""

    async def main() -> T:
        async with open_context(state.config, state.plugins, migrate=migrate) as ctx:
            settle_heap()
            return await work(ctx)

    return asyncio.run(main())


def echo_json(data: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
