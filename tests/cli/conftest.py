"""Run ``hub`` commands in-process against a hub directory in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from hub.cli import cli
from hub.cli_support import CliState
from hub.context import make_plugins

HubCli = Callable[..., Result]


@pytest.fixture
def hub_cli(tmp_path: Path) -> HubCli:
    """``hub_cli("consent", "check", …)`` runs the command with tmp_path/hub.toml."""
    pm = make_plugins()
    pm.hook.hub_cli_commands(cli=cli)

    def run(*args: str, config: Path | None = None) -> Result:
        state = CliState(config_path=config or tmp_path / "hub.toml", _plugins=pm)
        return CliRunner().invoke(cli, list(args), obj=state, catch_exceptions=False)

    return run


def as_json(result: Result) -> object:
    """The JSON document a command printed."""
    return orjson.loads(result.stdout)
