"""``hub audit …`` and ``hub partners …``."""

from __future__ import annotations

import sys

import click

from hub.audit import disclosures, verify_store, write_checkpoint
from hub.auth import ROLES, new_key
from hub.cli_support import CliState, echo_json, fail, run_with_context
from hub.context import HubContext


def register(cli: click.Group) -> None:
    """Add the ``audit`` and ``partners`` groups."""

    @cli.group()
    def audit() -> None:
        """The tamper-evident audit log: verify, checkpoint, accounting of disclosures."""

    @audit.command("verify")
    @click.pass_obj
    def audit_verify(state: CliState) -> None:
        """Exit 0 when the chain and its signed checkpoints are intact; else name the first
        bad entry and exit 1.

        \b
        Example:
          hub audit verify
        """
        report = run_with_context(state, lambda ctx: verify_store(ctx.store, ctx.keys))
        if report.problem is not None:
            click.echo(
                f"audit chain broken at entry {report.problem.seq} "
                f"({report.problem.kind}): {report.problem.message}",
                err=True,
            )
            sys.exit(1)
        if report.checkpoint_problem is not None:
            click.echo(f"audit checkpoint mismatch: {report.checkpoint_problem}", err=True)
            sys.exit(1)
        head = f"head {report.head[0]}" if report.head else "empty log"
        click.echo(f"audit chain intact: {report.entries} entries, {head}")

    @audit.command("checkpoint")
    @click.pass_obj
    def audit_checkpoint(state: CliState) -> None:
        """Sign the current chain head (Ed25519) and store it, so that a rewritten log is
        detectable later.

        \b
        Example:
          hub audit checkpoint
        """
        head = run_with_context(state, lambda ctx: write_checkpoint(ctx.store, ctx.keys))
        if head is None:
            click.echo("audit log is empty; nothing to sign")
        else:
            click.echo(f"signed checkpoint at entry {head[0]}")

    @audit.command("disclosures")
    @click.option("--client", "value", required=True, help="Client identifier value.")
    @click.option("--client-system", "system", default=None, help="Identifier system.")
    @click.pass_obj
    def audit_disclosures(state: CliState, value: str, system: str | None) -> None:
        """Print the accounting of disclosures for a client (date, recipient, what, purpose).

        \b
        Example:
          hub audit disclosures --client 4711 --client-system hmis:sd
        """
        from hub.consent_cli import AmbiguousClient, find_person

        async def work(ctx: HubContext) -> list[dict[str, object]]:
            person = await find_person(ctx, value, system)
            return [] if person is None else await disclosures(ctx.store, person)

        try:
            echo_json(run_with_context(state, work))
        except AmbiguousClient as exc:
            fail(str(exc))

    @cli.group()
    def partners() -> None:
        """Partner API keys: create, list, revoke."""

    @partners.command("create")
    @click.argument("agency")
    @click.option("--role", type=click.Choice(ROLES), default="partner", show_default=True)
    @click.pass_obj
    def partners_create(state: CliState, agency: str, role: str) -> None:
        """Create an API key for AGENCY; the key is printed once, as the last line.

        \b
        Example:
          hub partners create hospital-x
        """
        if agency not in state.config.agencies:
            fail(f"unknown agency {agency!r} (configure it under [[agencies]])")
        key, key_id, salt, digest = new_key()

        async def work(ctx: HubContext) -> None:
            await ctx.store.add_partner_key(key_id, agency, role, salt, digest)

        run_with_context(state, work, migrate=True)
        click.echo(f"key id {key_id} for {agency} ({role}); store it now, it is not shown again:")
        click.echo(key)

    @partners.command("list")
    @click.pass_obj
    def partners_list(state: CliState) -> None:
        """List API keys (ids and agencies; never the keys) as JSON.

        \b
        Example:
          hub partners list
        """
        rows = run_with_context(state, lambda ctx: ctx.store.list_partner_keys())
        echo_json(
            [
                {"key_id": k, "agency": a, "role": r, "created_at": c, "revoked_at": v}
                for k, a, r, c, v in rows
            ]
        )

    @partners.command("revoke-key")
    @click.argument("key_id")
    @click.pass_obj
    def partners_revoke(state: CliState, key_id: str) -> None:
        """Revoke an API key at once.

        \b
        Example:
          hub partners revoke-key 3f9a1c2b4d5e
        """
        if not run_with_context(state, lambda ctx: ctx.store.revoke_partner_key(key_id)):
            fail(f"no live key with id {key_id!r}")
        click.echo(f"revoked {key_id}")
