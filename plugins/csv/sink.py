"""The ``csv-file`` sink: one partner CSV file per batch, to a folder or a signed HTTPS POST.

Feed options:

* ``mapping`` — the ``[csv.mappings.<name>]`` that lays out the columns (required);
* ``dir`` — a folder (relative to ``hub.toml``): the file is written to a temporary name
  and then linked under its final name, so a partner's pick-up job never sees half a file;
  a file already there is never replaced (the new one is named ``<stem>-1.csv``, ``-2`` …);
  files are readable by the hub's user and group only (mode 0640);
* ``file_name`` — pattern with ``{feed}``, ``{recipient}``, ``{timestamp}``, ``{date}``,
  ``{first_id}``, ``{count}`` (default ``{feed}-{timestamp}-{first_id}.csv``);
* ``url`` with ``secret_envs`` (and ``timeout_seconds``) — instead of ``dir``: POST the CSV
  signed like the webhook (``X-Hub-Signature``, ``Idempotency-Key`` for the batch);
* ``key_column`` — optional column name carrying each row's idempotency key;
* ``escape_formulas`` — true by default: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return (and not a plain number) is written with a leading ``'``, so a
  spreadsheet opening the file shows it as text instead of running it as a formula.

Every record of a batch must be of the mapping's kind: a record of another kind is
dead-lettered (it would otherwise be written as a row of blank cells).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import errno
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from hub.fileio import fsync_dir
from hub.plugin_api import (
    Delivery,
    DeliveryOutcome,
    SigningError,
    check_url,
    post_signed,
    secrets_from_env,
)
from plugins.csv.mapping import CsvMapping, partner_cells

DEFAULT_FILE_NAME = "{feed}-{timestamp}-{first_id}.csv"
DEFAULT_TIMEOUT_SECONDS = 30.0
FILE_MODE = 0o640
"""Mode of a written file: the hub's user and group may read it, other users may not."""
MAX_NAME_SUFFIX = 1000

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def escape_formula(cell: str) -> str:
    """The cell, with a leading ``'`` when a spreadsheet would run it as a formula.

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
    to Excel and LibreOffice (OWASP "CSV injection"); a plain number such as ``-3`` is not
    changed.
    """
    if cell.startswith(FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def render_csv(
    mapping: CsvMapping,
    deliveries: Sequence[Delivery],
    key_column: str | None,
    *,
    escape_formulas: bool = True,
) -> bytes:
    """The CSV bytes (UTF-8, CRLF, header first) of a batch of deliveries.

    With ``escape_formulas`` every cell goes through :func:`escape_formula`.
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=mapping.delimiter, lineterminator="\r\n")
    header = mapping.header + ([key_column] if key_column else [])
    writer.writerow(header)
    for d in deliveries:
        row = partner_cells(mapping, d.payload)
        if escape_formulas:
            row = [escape_formula(cell) for cell in row]
        if key_column:
            row.append(d.idempotency_key)
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def batch_key(deliveries: Sequence[Delivery]) -> str:
    """One idempotency key for a batch: the same rows give the same key."""
    joined = "\n".join(sorted(d.idempotency_key for d in deliveries))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def file_name(pattern: str, deliveries: Sequence[Delivery], now: datetime) -> str:
    """The file name of a batch; ``ValueError`` for an unknown placeholder or a path."""
    first = deliveries[0]
    try:
        name = pattern.format(
            feed=first.feed,
            recipient=first.recipient,
            timestamp=now.strftime("%Y%m%dT%H%M%S%fZ"),
            date=now.strftime("%Y%m%d"),
            first_id=min(d.outbox_id for d in deliveries),
            count=len(deliveries),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"feed option 'file_name' has an unknown placeholder: {exc}") from None
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise ValueError("feed option 'file_name' must give a plain file name")
    return name


def write_atomic(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` (mode :data:`FILE_MODE`) through a temporary file.

    The whole file appears at once under its final name, which never replaces a file
    already there (a partner may not have picked that one up yet): the name then gets a
    ``-1``, ``-2`` … before its extension. Returns the path written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with open(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        final = _publish(tmp, folder, name)
        fsync_dir(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return final


def _publish(tmp: Path, folder: Path, name: str) -> Path:
    """Give ``tmp`` the first free name of ``name``, ``<stem>-1<suffix>`` …; never replace."""
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    for n in range(MAX_NAME_SUFFIX):
        final = folder / (name if n == 0 else f"{stem}-{n}{dot}{suffix}")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError as exc:
            # A file system without hard links: rename, after checking the name is free.
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if final.exists():
                continue
            os.rename(tmp, final)
        return final
    raise FileExistsError(errno.EEXIST, "no free file name", str(folder / name))


class CsvFileSink:
    """Renders each batch with its feed's mapping and writes or posts one CSV file."""

    name = "csv-file"

    def __init__(
        self,
        mappings: Mapping[str, CsvMapping],
        base_dir: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.mappings = dict(mappings)
        self.base_dir = base_dir
        self._environ = environ
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """One file per feed in the batch; every row of a file shares its outcome.

        A record whose kind is not its feed mapping's kind is dead-lettered on its own.
        """
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(deliveries):
            mapping = self.mappings.get(str(d.options.get("mapping", "")))
            if mapping is not None and d.kind and d.kind != mapping.kind:
                outcomes[i] = _dead(
                    f"a {d.kind} record cannot be written with mapping {mapping.name!r} "
                    f"(kind {mapping.kind})"
                )
                continue
            groups.setdefault(id(d.options), []).append(i)
        for indexes in groups.values():
            outcome = await self._deliver_file([deliveries[i] for i in indexes])
            for i in indexes:
                outcomes[i] = outcome
        return [o for o in outcomes if o is not None]

    async def _deliver_file(self, group: list[Delivery]) -> DeliveryOutcome:
        options = group[0].options
        mapping = self.mappings.get(str(options.get("mapping", "")))
        if mapping is None:
            return _dead("feed option 'mapping' must name a [csv.mappings.<name>] table")
        key_column = options.get("key_column")
        data = render_csv(
            mapping,
            group,
            key_column if isinstance(key_column, str) else None,
            escape_formulas=options.get("escape_formulas", True) is not False,
        )
        if "dir" in options:
            return await self._write(options, group, data)
        if "url" in options:
            return await self._post(options, group, data)
        return _dead("feed options need 'dir' (a folder) or 'url' (an https endpoint)")

    async def _write(
        self, options: Mapping[str, Any], group: list[Delivery], data: bytes
    ) -> DeliveryOutcome:
        folder = Path(str(options["dir"]))
        if not folder.is_absolute():
            folder = self.base_dir / folder
        try:
            name = file_name(
                str(options.get("file_name", DEFAULT_FILE_NAME)), group, datetime.now(UTC)
            )
        except ValueError as exc:
            return _dead(str(exc))
        try:
            # A thread cannot be cancelled: on cancellation, let the atomic write finish
            # (its temporary file renamed or removed) before giving up.
            task = asyncio.ensure_future(asyncio.to_thread(write_atomic, folder, name, data))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                await asyncio.wait([task])
                raise
        except OSError as exc:
            return DeliveryOutcome(
                ok=False, retry=True, error=f"cannot write {folder}: {exc.strerror}"
            )
        return DeliveryOutcome(ok=True)

    async def _post(
        self, options: Mapping[str, Any], group: list[Delivery], data: bytes
    ) -> DeliveryOutcome:
        problem = check_url(options.get("url"), bool(options.get("allow_insecure_http")))
        if problem is not None:
            return _dead(problem)
        try:
            secrets = secrets_from_env(options.get("secret_envs"), self._environ)
        except SigningError as exc:
            return _dead(str(exc))
        timeout = options.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            timeout = DEFAULT_TIMEOUT_SECONDS
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return await post_signed(
            self._session,
            str(options["url"]),
            data,
            secrets=secrets,
            idempotency_key=batch_key(group),
            content_type="text/csv; charset=utf-8",
            timeout_seconds=float(timeout),
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _dead(error: str) -> DeliveryOutcome:
    return DeliveryOutcome(ok=False, retry=False, error=error)
