"""``hub outbox …``: inspect the outbox, retry, list and replay dead letters.

The CLI runs with the operator's access to the store, so it shows the admin view; payloads
only with ``--payload`` and only for delivered entries (see :mod:`hub.admin`).
"""

from __future__ import annotations

from typing import Any

import click

from hub.admin import (
    DEFAULT_LIMIT,
    STATUSES,
    OutboxOpError,
    entry_json,
    get_entry,
    list_entries,
    replay_dead,
    replay_entry,
    retry_entry,
)
from hub.cli_support import CliState, echo_json, fail, run_with_context
from hub.context import HubContext

OUTBOX_ID = click.IntRange(1, 2**63 - 1)
"""An outbox entry id: what the stores can hold (a larger number is refused by click)."""


def _run(state: CliState, work: Any) -> Any:
    try:
        return run_with_context(state, work)
    except OutboxOpError as exc:
        fail(str(exc), code=1 if exc.status == 409 else 2)


def register(cli: click.Group) -> None:
    """Add the ``outbox`` group to the ``hub`` CLI."""

    @cli.group()
    def outbox() -> None:
        """The delivery outbox: entries, retries, dead letters and replays."""

    @outbox.command("list")
    @click.option("--status", type=click.Choice(STATUSES), help="only entries with this status")
    @click.option("--recipient", help="only entries for this agency id")
    @click.option("--feed", help="only entries of this feed")
    @click.option(
        "--limit", type=click.IntRange(1, 100_000), default=DEFAULT_LIMIT, show_default=True
    )
    @click.option(
        "--before",
        type=OUTBOX_ID,
        default=None,
        help="only entries older than this id (the next page: the last id listed)",
    )
    @click.pass_obj
    def list_command(
        state: CliState,
        status: str | None,
        recipient: str | None,
        feed: str | None,
        limit: int,
        before: int | None,
    ) -> None:
        """List outbox entries, newest first, as JSON.

        \b
        Example:
          hub outbox list --status retry --recipient cie-211
          hub outbox list --status delivered --before 5120   # the page after id 5120
        """

        async def work(ctx: HubContext) -> list[dict[str, Any]]:
            rows = await list_entries(
                ctx, status=status, recipient=recipient, feed=feed, limit=limit, before_id=before
            )
            return [entry_json(r, admin=True) for r in rows]

        echo_json(_run(state, work))

    @outbox.command("show")
    @click.argument("outbox_id", type=OUTBOX_ID)
    @click.option("--payload", is_flag=True, help="include the released payload (delivered only)")
    @click.pass_obj
    def show_command(state: CliState, outbox_id: int, payload: bool) -> None:
        """Show one outbox entry as JSON.

        \b
        Example:
          hub outbox show 42
        """

        async def work(ctx: HubContext) -> dict[str, Any]:
            return entry_json(await get_entry(ctx, outbox_id), admin=True, with_payload=payload)

        echo_json(_run(state, work))

    @outbox.command("retry")
    @click.argument("outbox_id", type=OUTBOX_ID)
    @click.pass_obj
    def retry_command(state: CliState, outbox_id: int) -> None:
        """Send an entry that waits to retry now (its attempts start again).

        \b
        Example:
          hub outbox retry 42
        """

        async def work(ctx: HubContext) -> dict[str, Any]:
            return entry_json(await retry_entry(ctx, outbox_id), admin=True)

        echo_json(_run(state, work))

    @outbox.command("dead-letter")
    @click.option("--feed", help="only dead letters of this feed")
    @click.option(
        "--limit", type=click.IntRange(1, 100_000), default=DEFAULT_LIMIT, show_default=True
    )
    @click.option(
        "--before",
        type=OUTBOX_ID,
        default=None,
        help="only entries older than this id (the next page: the last id listed)",
    )
    @click.pass_obj
    def dead_letter_command(
        state: CliState, feed: str | None, limit: int, before: int | None
    ) -> None:
        """List dead letters (entries that ran out of attempts or were refused), as JSON.

        \b
        Example:
          hub outbox dead-letter --feed partner-clients
        """

        async def work(ctx: HubContext) -> list[dict[str, Any]]:
            rows = await list_entries(ctx, status="dead", feed=feed, limit=limit, before_id=before)
            return [entry_json(r, admin=True) for r in rows]

        echo_json(_run(state, work))

    @outbox.command("replay")
    @click.argument("outbox_id", type=OUTBOX_ID, required=False)
    @click.option("--all-dead", is_flag=True, help="replay every dead letter")
    @click.option("--feed", help="with --all-dead: only this feed's dead letters")
    @click.pass_obj
    def replay_command(
        state: CliState, outbox_id: int | None, all_dead: bool, feed: str | None
    ) -> None:
        """Queue dead letters again; the consent gate runs again before each is sent.

        \b
        Examples:
          hub outbox replay 42
          hub outbox replay --all-dead --feed partner-clients
        """
        if (outbox_id is None) == (not all_dead):
            fail("give either an outbox ID or --all-dead")
        if feed is not None and not all_dead:
            fail("--feed goes with --all-dead")

        async def work(ctx: HubContext) -> dict[str, Any]:
            if outbox_id is not None:
                return entry_json(await replay_entry(ctx, outbox_id), admin=True)
            ids = await replay_dead(ctx, feed)
            return {"replayed": len(ids), "ids": ids}

        echo_json(_run(state, work))
