"""The plugin API: every hook a connector plugin may implement.

Hooks *register* things — connectors, sinks, configuration sections, CLI commands, HTTP
routes, long-running services, scheduled jobs. They never make decisions on the data path:
the core runs the consent gate, and no hook can skip, wrap or override it.

Hooks are grouped by the phase in which the hub calls them. Each docstring is the hook's
contract; ``docs/plugins.md`` documents every hook (a test fails when one is missing).
Compatibility: hook arguments are only ever added; a removal is announced first through
pluggy's deprecation warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from aiohttp import web

    from hub.bench.model import Benchmark
    from hub.context import HubContext
    from hub.core.ports import Sink
    from hub.plugin_api import Codec, ConnectorInfo, ScheduledJob, Service

PROJECT = "cie_hub"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- discovery (when the plugin manager loads plugins) ------------------------------------


@hookspec
def hub_connectors() -> list[ConnectorInfo] | None:
    """Describe the connectors this plugin provides.

    Called by ``hub plugins list`` and at start-up. Return one :class:`ConnectorInfo` per
    connector (name, direction ``source``/``sink``/``codec``, formats, one-line summary).
    Must be cheap and free of I/O.
    """


@hookspec
def hub_config_sections() -> dict[str, str] | None:
    """Name the top-level ``hub.toml`` sections this plugin owns, with a one-line summary.

    A section nobody owns is a configuration error ("unknown key"). The owner validates its
    section in :func:`hub_validate_config`.
    """


@hookspec
def hub_validate_config(section: str, value: Any, agencies: frozenset[str]) -> list[str] | None:
    """Validate one owned configuration section; return error strings (empty when valid).

    Each error names the key path (``hl7.senders[0].agency``) and what is wrong, never a
    secret's value. Return None for sections this plugin does not own. ``agencies`` are the
    configured agency ids, for cross-checks.
    """


@hookspec
def hub_codecs() -> list[Codec] | None:
    """Return the codecs this plugin provides: canonical records to and from one format.

    Each :class:`hub.plugin_api.Codec` has a ``name``, the record ``kinds`` it handles,
    ``encode(records) -> bytes`` and ``decode(data, *, source, owner) -> list[Record]``.
    ``decode`` keys every record in ``source`` and makes ``owner`` its owner (the hub, not
    the data, decides who owns what arrives); input it cannot read raises
    :class:`hub.plugin_api.CodecError` whose ``location`` names the file, row, field or
    segment, never a value. Encoding and decoding are pure (no I/O, no clock needed for
    correctness) and never log client data. A codec may declare ``carries`` (record kind →
    the fields the format keeps) for the round-trip check of the contract test kit
    (``hub.testing``). Must be cheap to call: build codecs, do not open anything.
    """


# ---- commands (when the CLI is built) -----------------------------------------------------


@hookspec
def hub_cli_commands(cli: click.Group) -> None:
    """Add subcommands to the ``hub`` CLI (e.g. ``hub import clarity``).

    Add to the existing groups ``hub import`` and ``hub export`` where the command imports or
    exports a format (``cli.commands["import"]``); every command needs ``--help`` text with
    an example.
    """


# ---- running (when ``hub serve`` or ``hub worker`` starts) -------------------------------


@hookspec
def hub_sinks(ctx: HubContext) -> list[Sink] | None:
    """Return the sinks (outbound connectors) this plugin delivers through.

    A feed's ``connector`` names one sink. The delivery worker hands a sink only records the
    consent gate released, already redacted; the sink renders and sends them and reports an
    outcome per delivery.
    """


@hookspec
def hub_http_routes(app: web.Application, ctx: HubContext) -> None:
    """Add HTTP routes to the hub's aiohttp application (FHIR API, consult endpoints …).

    Handlers authenticate through ``ctx`` and read other agencies' data only through
    ``ctx.engine.disclose_person`` (the gate). Errors are JSON and never echo client data.
    """


@hookspec
def hub_services(ctx: HubContext) -> list[Service] | None:
    """Return long-running services to start with ``hub serve`` (an MLLP listener …).

    Each has ``start()`` and ``stop()``; ``stop`` must stop accepting new work, finish or
    safely abandon in-flight work, and return within a few seconds.
    """


@hookspec
def hub_scheduled_jobs(ctx: HubContext) -> list[ScheduledJob] | None:
    """Return jobs for the scheduler (APScheduler) with their cron or interval triggers.

    A job must be safe to run again after a crash (a drop folder import, a scheduled export).
    """


# ---- measuring (when ``hub bench`` runs) --------------------------------------------------


@hookspec
def hub_benchmarks() -> list[Benchmark] | None:
    """Return the benchmarks of this plugin's hot paths for ``hub bench``.

    Each :class:`hub.bench.model.Benchmark` measures one path and, beside it in the same run,
    the floor it is compared with; the suite alternates them and reports the ratio. Data is
    generated deterministically by the benchmark itself; nothing is downloaded.
    """
