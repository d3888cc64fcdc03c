"""``hub consent …``: import, revoke, show and check MPA consents (see CONSENT.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from consent import ClientFacts, ConsentRecord
from consent.categories import CATEGORIES, DEFAULT_CATEGORIES, PURPOSES
from consent.parsing import ConsentValidationError, parse_consent_file
from hub.cli_support import CliState, echo_json, fail, run_with_context
from hub.context import ConsentImportError, HubContext
from hub.core.identity import identifier_key, identifier_value_key


def _parse_at(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at: not an ISO date-time: {text!r}")
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _matches(c: ConsentRecord, value: str, system: str | None) -> bool:
    if c.client.value != value:
        return False
    return system is None or c.client.system is None or c.client.system == system


class AmbiguousClient(ValueError):
    """A client identifier (a value without its system) names several clients."""

    def __init__(self) -> None:
        super().__init__("the client identifier names several clients: add --client-system")


async def find_person(ctx: HubContext, value: str, system: str | None) -> str | None:
    """The person a client identifier names; None when none does.

    Raises :class:`AmbiguousClient` when several do (a value without its system can recur
    in another system): an answer about one of them, or all, would be about someone else.
    """
    key = identifier_key(system, value) if system else identifier_value_key(value)
    async with ctx.store.transaction() as tx:
        found = await tx.persons_with_keys([ctx.keys.blind(key)])
    persons = set().union(*found.values()) if found else set()
    if len(persons) > 1:
        raise AmbiguousClient
    return next(iter(persons), None)


async def client_consents(
    ctx: HubContext, value: str, system: str | None
) -> tuple[tuple[ConsentRecord, ...], ClientFacts]:
    """The consents the gate applies to the client an identifier names, and its facts.

    For a known person, what the gate itself uses. For a client with no records yet, the
    consents naming that identifier (:class:`AmbiguousClient` when, without a system, they
    name clients of several systems).
    """
    person = await find_person(ctx, value, system)
    if person is not None:
        async with ctx.store.transaction() as tx:
            consents = await ctx.gate.consents_for(tx, person)
            facts = await ctx.gate.facts(tx, person)
        return consents, facts
    direct = tuple(c for c in ctx.gate.all_consents() if _matches(c, value, system))
    if system is None and len({c.client.system for c in direct if c.client.system}) > 1:
        raise AmbiguousClient
    return direct, ClientFacts()


async def check(
    ctx: HubContext,
    *,
    value: str,
    system: str | None,
    owner: str,
    recipient: str,
    purpose: str,
    categories: frozenset[str],
    at: datetime,
) -> dict[str, Any]:
    """The decision for one hypothetical disclosure (not audited: nothing is released)."""
    consents, facts = await client_consents(ctx, value, system)
    decision = ctx.gate.decide_disclosure(
        consents=consents,
        facts=facts,
        owner=owner,
        recipient=recipient,
        purpose=purpose,
        categories=categories,
        at=at,
    )
    return decision.to_json()


def register(cli: click.Group) -> None:
    """Add the ``consent`` group to the CLI."""

    @cli.group()
    def consent() -> None:
        """MPA consents: import, revoke, show, check."""

    @consent.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_obj
    def consent_import(state: CliState, file: Path) -> None:
        """Import consents from a JSON array or JSON Lines FILE (all or nothing).

        A consent with the id of a stored one replaces it, except that a stored revocation
        stands: importing the consent again without it (an old roster re-sent), or with a
        later date, keeps the stored date. Only a record signed after the revocation (a new
        signature) replaces it.

        \b
        Example:
          hub consent import consents.jsonl
        """
        cfg = state.config
        try:
            records = parse_consent_file(
                file.read_text(encoding="utf-8"), agencies=cfg.agencies, policy=cfg.consent_policy
            )
        except ConsentValidationError as exc:
            fail(f"{file}: {exc}; nothing imported")
        except UnicodeDecodeError:
            fail(f"{file}: not UTF-8 text; nothing imported")

        async def work(ctx: HubContext) -> int:
            return await ctx.import_consents(records)

        try:
            count = run_with_context(state, work, migrate=True)
        except ConsentImportError as exc:
            fail(f"{file}: {exc}; nothing imported")
        echo_json({"imported": count, "file": str(file)})

    @consent.command("revoke")
    @click.argument("consent_id")
    @click.option("--on", "on", required=True, help="Revocation date, YYYY-MM-DD.")
    @click.pass_obj
    def consent_revoke(state: CliState, consent_id: str, on: str) -> None:
        """Record that consent ID was revoked on a date (queued data stops at delivery).

        A revocation only stands or moves earlier, never later: when the consent is
        already revoked on or before the date given, the earlier date is kept, the
        command says so (the JSON shows the date in force and "unchanged": true) and
        exits 0. A date before the consent was signed is an error (exit 2). A
        revocation entered in error is not undone here: record a new consent instead.

        \b
        Example:
          hub consent revoke mpa-0001 --on 2025-06-30
        """
        try:
            day = date.fromisoformat(on)
        except ValueError:
            fail(f"--on: not a date (YYYY-MM-DD): {on!r}")

        async def work(ctx: HubContext) -> tuple[date, bool] | None:
            """The revocation date in force afterwards, and whether this run recorded it."""
            return await ctx.revoke_consent(consent_id, day)

        try:
            outcome = run_with_context(state, work)
        except ConsentImportError:
            fail(f"consent {consent_id}: --on {on} is before it was signed")
        if outcome is None:
            fail(f"no consent with id {consent_id!r}")
        in_force, recorded = outcome
        if not recorded:
            click.echo(
                f"note: consent {consent_id} is already revoked on {in_force.isoformat()}; "
                f"that date stands (--on {day.isoformat()} not recorded)",
                err=True,
            )
            echo_json({"revoked": consent_id, "on": in_force.isoformat(), "unchanged": True})
            return
        echo_json({"revoked": consent_id, "on": in_force.isoformat()})

    @consent.command("show")
    @click.option("--client", "value", required=True, help="Client identifier value.")
    @click.option("--client-system", "system", default=None, help="Identifier system.")
    @click.pass_obj
    def consent_show(state: CliState, value: str, system: str | None) -> None:
        """Show the consents recorded for a client (newest first).

        \b
        Example:
          hub consent show --client 4711 --client-system hmis:sd
        """

        async def work(ctx: HubContext) -> list[dict[str, object]]:
            consents, _facts = await client_consents(ctx, value, system)
            ordered = sorted(consents, key=lambda c: (c.signed_on, c.id), reverse=True)
            return [c.to_json() for c in ordered]

        try:
            echo_json(run_with_context(state, work))
        except AmbiguousClient as exc:
            fail(str(exc))

    @consent.command("check")
    @click.option("--client", "value", required=True, help="Client identifier value.")
    @click.option("--client-system", "system", default=None, help="Identifier system.")
    @click.option("--owner", required=True, help="Agency that owns the record.")
    @click.option("--recipient", required=True, help="Agency that would receive it.")
    @click.option("--purpose", required=True, type=click.Choice(PURPOSES), help="Purpose of use.")
    @click.option(
        "--categories",
        default=None,
        help="Comma-separated categories (default: all non-sensitive).",
    )
    @click.option("--at", "at_text", default=None, help="ISO date-time (default: now).")
    @click.pass_obj
    def consent_check(
        state: CliState,
        value: str,
        system: str | None,
        owner: str,
        recipient: str,
        purpose: str,
        categories: str | None,
        at_text: str | None,
    ) -> None:
        """Print the consent decision for one disclosure as JSON (exit 0 whatever it is).

        \b
        Example:
          hub consent check --client 4711 --owner shelter-a --recipient hospital-x \\
              --purpose coordination --categories identity,housing
        """
        cats = DEFAULT_CATEGORIES
        if categories:
            cats = frozenset(c.strip() for c in categories.split(",") if c.strip())
            unknown = sorted(cats - set(CATEGORIES))
            if unknown:
                fail(f"--categories: unknown category {unknown[0]!r}")
        at = _parse_at(at_text)
        try:
            result = run_with_context(
                state,
                lambda ctx: check(
                    ctx,
                    value=value,
                    system=system,
                    owner=owner,
                    recipient=recipient,
                    purpose=purpose,
                    categories=cats,
                    at=at,
                ),
                migrate=True,
            )
        except AmbiguousClient as exc:
            fail(str(exc))
        echo_json(result)
