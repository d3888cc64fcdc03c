"""The ``hub`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import click

from hub.cli_support import CliState, echo_json, fail, run_with_context
from hub.config import DEFAULT_CONFIG, ConfigError
from hub.context import HubContext
from hub.delivery import DeliveryError
from hub.keys import KeyError_
from hub.plugins import PluginError
from hub.store import StoreError

EXPECTED_ERRORS = (ConfigError, StoreError, PluginError, KeyError_, DeliveryError, OSError)
DRIVER_ERRORS = (sqlite3.Error, asyncpg.PostgresError)


class HubGroup(click.Group):
    """The root group: turns expected failures into one-line errors (traces with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map known errors to exit code 2 with a one-line message."""
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            fail(str(exc) if not isinstance(exc, OSError) else f"{exc.strerror}: {exc.filename}")
        except DRIVER_ERRORS as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            # Driver messages can quote stored values: name the kind of failure only.
            fail(
                f"store error ({type(exc).__name__}); check 'hub migrate' and the store, "
                "or rerun with --debug"
            )


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("HUB_CONFIG", DEFAULT_CONFIG),
    show_default="./hub.toml or $HUB_CONFIG",
    help="The hub.toml to use.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, debug: bool) -> None:
    """CIE Hub: moves client records between an HMIS and its Community Information Exchange
    partners (HUD CSV, HL7 v2, FHIR R4, partner CSV), enforcing each client's MPA consent and
    recording every decision in a tamper-evident audit log.

    \b
    Start here:
      hub init ./my-hub && cd my-hub   # a working hub.toml, key file and store
      hub demo                          # the whole flow on synthetic data
      hub serve                         # HTTP, MLLP, scheduler and delivery workers
    """
    source = ctx.get_parameter_source("config_path")
    explicit = source is not click.core.ParameterSource.DEFAULT or bool(
        os.environ.get("HUB_CONFIG")
    )
    if isinstance(ctx.obj, CliState):
        if explicit:
            if ctx.obj.config_path != config_path:
                ctx.obj._plugins = None  # loaded again, minus this config's disabled ones
            ctx.obj.config_path = config_path
            ctx.obj.config_explicit = True
        ctx.obj.debug = debug
    else:
        ctx.obj = CliState(config_path=config_path, debug=debug, config_explicit=explicit)
    from hub.logs import configure_logging

    configure_logging(os.environ.get("HUB_LOG_LEVEL", "WARNING"))


@cli.group("import")
def import_group() -> None:
    """Import data into the hub (formats come from plugins).

    \b
    Example:
      hub import clarity ./export-2025-10.zip
    """


@cli.group("export")
def export_group() -> None:
    """Export data from the hub (formats come from plugins).

    \b
    Example:
      hub export clarity --out ./out --csv-version 2026
    """


# ---- set-up ------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing hub.toml and key file.")
def init(directory: Path, force: bool) -> None:
    """Write a working hub.toml, a key file (0600) and an empty SQLite store in DIRECTORY.

    \b
    Example:
      hub init ./my-hub
    """
    from hub.setup import init_directory

    try:
        written = init_directory(directory, force=force)
    except FileExistsError as exc:
        fail(f"{exc.filename} exists; use --force to overwrite")
    for path in written:
        click.echo(f"wrote {path}")


@cli.command()
@click.pass_obj
def migrate(state: CliState) -> None:
    """Bring the store schema up to date (hub serve also does this on start).

    \b
    Example:
      hub --config hub.toml migrate
    """
    from hub.store import open_store_from_url

    async def main() -> list[int]:
        store = open_store_from_url(state.config.store_url, state.config.base_dir)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()

    applied = asyncio.run(main())
    click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to build the demo hub (default: a temporary directory).",
)
def demo(directory: Path | None) -> None:
    """Run the main job end to end on synthetic data with the embedded SQLite store.

    Creates agencies (a shelter, a hospital, a CIE partner, a victim service provider),
    imports synthetic HMIS records, records consents (full, excluding an agency, revoked,
    none), runs records to the partners through the consent gate and prints what each
    partner received and what was withheld and why.

    \b
    Example:
      hub demo
    """
    from hub.demo import run_demo

    code = run_demo(directory)
    sys.exit(code)


# ---- running -----------------------------------------------------------------------------


@cli.command()
@click.option("--no-workers", is_flag=True, help="Do not run delivery workers in this process.")
@click.pass_obj
def serve(state: CliState, no_workers: bool) -> None:
    """Serve HTTP (FHIR, admin API, health, metrics), the MLLP listener, the scheduler and
    delivery workers. Migrates the store on start. SIGTERM/SIGINT stop it gracefully.

    \b
    Example:
      hub --config hub.toml serve
    """
    from hub.server import serve as run_server

    run_with_context(state, lambda ctx: run_server(ctx, workers=not no_workers), migrate=True)


@cli.command()
@click.pass_obj
def worker(state: CliState) -> None:
    """Run delivery workers only (scale-out: any number of them on one PostgreSQL store).

    \b
    Example:
      HUB_STORE_URL=postgresql://hub@db:5432/hub hub worker
    """
    from hub.delivery import close_sinks, prepare_delivery, run_workers, worker_count

    async def main(ctx: HubContext) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sinks = prepare_delivery(ctx)
        try:
            click.echo(
                f"{worker_count(ctx)} delivery worker(s) started on {ctx.store.dialect}", err=True
            )
            await run_workers(ctx, stop, sinks=sinks)
        finally:
            await close_sinks(sinks)
        click.echo("delivery workers stopped", err=True)

    run_with_context(state, main)


# ---- plugins -----------------------------------------------------------------------------


@cli.group()
def plugins() -> None:
    """Inspect connector plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def plugins_list(state: CliState, as_json: bool) -> None:
    """List plugins, their versions, connectors and codecs.

    \b
    Example:
      hub plugins list
    """
    described = state.plugins.describe()
    if as_json:
        echo_json(
            [
                {
                    "name": d.name,
                    "version": d.version,
                    "module": d.module,
                    "connectors": [
                        {"name": c.name, "direction": c.direction, "formats": list(c.formats)}
                        for c in d.connectors
                    ],
                    "codecs": list(d.codecs),
                }
                for d in described
            ]
        )
        return
    width = max((len(d.name) for d in described), default=10) + 2
    for d in described:
        parts = [f"{c.name} ({c.direction})" for c in d.connectors]
        parts += [f"{codec} (codec)" for codec in d.codecs]
        click.echo(f"{d.name:<{width}} {d.version:<10} {', '.join(parts)}")


# ---- identity ----------------------------------------------------------------------------


@cli.group()
def identity() -> None:
    """Person identity: the review list of undecided matches, and undoing links."""


@identity.command("review")
@click.option(
    "--resolve",
    "resolve_id",
    type=int,
    default=None,
    help="Close review item ID (after deciding it).",
)
@click.option(
    "--link",
    "link_to",
    default=None,
    help="With --resolve: link the item's record to this person id.",
)
@click.pass_obj
def identity_review(state: CliState, resolve_id: int | None, link_to: str | None) -> None:
    """List possible matches that were not merged automatically, or resolve one.

    \b
    Examples:
      hub identity review
      hub identity review --resolve 3 --link 9f2c…   # merge after checking
      hub identity review --resolve 4                # keep them apart
    """
    from hub.identity_admin import list_reviews, resolve_review

    if link_to is not None and resolve_id is None:
        raise click.UsageError("--link needs --resolve ID (the review item to close)")
    if resolve_id is None:
        echo_json(run_with_context(state, list_reviews))
    else:
        ok = run_with_context(state, lambda ctx: resolve_review(ctx, resolve_id, link_to))
        if not ok:
            fail(f"no open review item {resolve_id}")
        click.echo(f"review item {resolve_id} resolved")


@identity.command("unlink")
@click.argument("record")
@click.pass_obj
def identity_unlink(state: CliState, record: str) -> None:
    """Undo a record's link to its person (RECORD is kind/source/id, e.g. client/hmis:1/42).

    The record gets a new person of its own and the old link goes on the review list.

    \b
    Example:
      hub identity unlink client/hmis:1/42
    """
    from hub.identity_admin import unlink

    person = run_with_context(state, lambda ctx: unlink(ctx, record))
    if person is None:
        fail(f"record {record} is not linked")
    click.echo(f"unlinked {record} from person {person}")


def _register_subcommands() -> None:
    from hub.consent_cli import register as register_consent

    register_consent(cli)
    from hub.outbox_cli import register as register_outbox

    register_outbox(cli)
    from hub.admin_cli import register as register_admin

    register_admin(cli)
    from hub.keys_cli import register as register_keys

    register_keys(cli)
    from hub.plugins_cli import register as register_plugins

    register_plugins(cli)
    from hub.bench_cli import register as register_bench

    register_bench(cli)


_register_subcommands()


def main() -> None:
    """Console entry point: load plugin commands, then run."""
    from hub.context import disabled_plugins_in, make_plugins

    config_path = config_path_in(sys.argv[1:])
    try:
        pm = make_plugins(disabled=disabled_plugins_in(config_path))
        try:
            pm.hook.hub_cli_commands(cli=cli)
        except Exception as exc:
            raise PluginError(
                f"a plugin's hub_cli_commands hook failed: {type(exc).__name__}: {exc}; "
                "fix it or disable it in [plugins] disabled"
            ) from exc
    except PluginError as exc:
        if "--debug" in sys.argv:
            raise
        fail(str(exc))
    state = CliState(config_path=config_path, _plugins=pm)
    cli(prog_name="hub", obj=state)


def config_path_in(args: Sequence[str]) -> Path:
    """The config the command line names (``--config`` before the command), else
    ``$HUB_CONFIG``, else ``./hub.toml``: known before click parses, because plugins (and
    their commands) are loaded first, minus the ones the config disables."""
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.removeprefix("--config="))
        if not arg.startswith("-"):
            break  # the command: options after it are the command's own
    return Path(os.environ.get("HUB_CONFIG") or DEFAULT_CONFIG)
