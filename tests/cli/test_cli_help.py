"""Every command's ``--help`` explains with an example, and usage mistakes are refused in
one line before anything runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from hub.cli import cli


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command under ``group``, as its words."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        elif command is not None:
            yield (*path, name)


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    found = list(commands(cli))
    assert ("outbox", "list") in found and ("identity", "unlink") in found
    missing = []
    for words in found:
        result = runner.invoke(cli, [*words, "--help"])
        assert result.exit_code == 0, (words, result.output)
        if "Example" not in result.output:
            missing.append(" ".join(words))
    assert missing == []


def test_usage_mistakes_are_refused_before_anything_runs(
    hub_dir: Callable[[str], Path], hub_cli: Callable[..., Any]
) -> None:
    config = hub_dir("")
    result = hub_cli(
        "consent", "check", "--client", "1", "--owner", "shelter-a", "--recipient",
        "cie-211", "--purpose", "coordinaton", config=config,
    )  # fmt: skip
    assert result.exit_code == 2 and "'coordinaton' is not one of" in result.output
    result = hub_cli("identity", "review", "--link", "abc", config=config)
    assert result.exit_code == 2 and "--link needs --resolve" in result.output
