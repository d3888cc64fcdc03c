"""A process that cannot deliver says so and stops before it says it is ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result

TYPO_FEED = """
[[feeds]]
name = "to-211"
recipient = "cie-211"
kinds = ["client"]
purpose = "coordination"
connector = "webhok"
options = { url = "http://127.0.0.1:9/hook", secret_envs = ["HUB_TEST_HOOK_SECRET"] }
"""


def test_a_feed_naming_no_installed_connector_stops_serve_and_worker(
    hub_dir: Callable[[str], Path], hub_cli: Callable[..., Result]
) -> None:
    # It used to start anyway ("hub ready"), and the feed's entries retried until dead.
    hub_dir(TYPO_FEED)
    assert hub_cli("migrate").exit_code == 0
    for command in (("worker",), ("serve",)):
        result = hub_cli(*command)
        assert result.exit_code == 2, result.output
        assert "feed 'to-211' names connector 'webhok', which no installed plugin" in result.output
        assert "webhook" in result.output, "the installed sinks are listed"
        assert "hub ready" not in result.output and "Traceback" not in result.output
