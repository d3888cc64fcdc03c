"""``hub.toml``: load, validate (naming the key and its line), and expose typed settings."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from consent import Agency, ConsentPolicy
from consent.categories import AGENCY_KINDS, CATEGORIES, NETWORKS, PURPOSES
from hub.core.records import RECORD_TYPES
from hub.core.routing import FeedSpec

DEFAULT_CONFIG = "hub.toml"

CORE_SECTIONS: dict[str, str] = {
    "store": "where the hub keeps its data",
    "http": "the HTTP server (FHIR, admin API, health, metrics)",
    "agencies": "the organisations of the network",
    "consent": "MPA policy switches",
    "feeds": "partner subscriptions",
    "delivery": "outbox workers, retries, dead letters",
    "retention": "pruning of payloads and delivered outbox rows",
    "keys": "where the key file is",
    "logging": "log level and format",
    "plugins": "disabled plugins",
    "auth": "SMART Backend Services clients, client certificates, rate limits",
}


class ConfigError(ValueError):
    """A configuration problem, with the file, line and key it concerns."""


def _within(default: Any, low: float, high: float) -> Any:
    """A setting with its default and the range ``low``…``high`` it must be in."""
    return field(default=default, metadata={"range": (low, high)})


DAY_SECONDS = 86_400.0
MAX_BODY_BYTES = 10 * 1024 * 1024
"""Default of ``[http] max_body_bytes``: the largest request body the hub reads."""


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Outbox workers: concurrency, retries with exponential backoff and jitter, leases."""

    workers: int = _within(2, 1, 64)
    batch_size: int = _within(50, 1, 10_000)
    max_attempts: int = _within(8, 1, 1_000)
    backoff_base_seconds: float = _within(2.0, 0.001, DAY_SECONDS)
    backoff_max_seconds: float = _within(3600.0, 0.001, 30 * DAY_SECONDS)
    lease_seconds: float = _within(60.0, 0.1, DAY_SECONDS)
    poll_seconds: float = _within(0.5, 0.001, 60.0)
    feed_settle_seconds: float = _within(60.0, 0.0, DAY_SECONDS)
    """A scheduled feed takes records stored at least this long ago: a write still being
    committed elsewhere (another process on PostgreSQL) is never passed by the cursor. It must
    exceed the longest write transaction and the clock difference between the machines that
    write to one store."""


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long payloads, delivered outbox rows and audit entries are kept.

    ``delivered_days``: delivered and withheld outbox rows (with their payloads) are deleted
    this long after they were settled. ``payload_days``: dead letters (which keep their
    payload for a replay) and the inbound de-duplication entries (each holds the answer
    sent) are deleted this long after they were made. ``audit_years``: the audit log is
    kept at least this long; the hub never deletes audit entries (its hash chain and the
    accounting of disclosures need it whole), so this is the promise it makes, checked to
    be at least HIPAA's six years.
    """

    delivered_days: int = _within(30, 1, 36_500)
    payload_days: int = _within(365, 1, 36_500)
    audit_years: int = _within(6, 6, 100)


@dataclass(frozen=True, slots=True)
class SmartClient:
    """A partner system allowed the SMART Backend Services client-credentials flow."""

    client_id: str
    agency: str
    public_key_pem: bytes
    role: str = "partner"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A client certificate (by subject CN or SHA-256 fingerprint) mapped to an agency."""

    agency: str
    subject_cn: str = ""
    sha256: str = ""
    role: str = "partner"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """A server certificate, and the CA whose client certificates are required (mutual TLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class AuthConfig:
    """Who may call the hub other than with API keys, and how often."""

    clients: tuple[SmartClient, ...] = ()
    certificates: tuple[ClientCertificate, ...] = ()
    token_lifetime_seconds: int = 300
    requests_per_minute: int = 1200
    token_url: str = ""
    """The token endpoint's public URL, the audience partners' assertions must name (behind a
    proxy or a DNS name, set it); empty: the address the request arrived on."""


@dataclass(frozen=True)
class HubConfig:
    """The validated configuration."""

    path: Path | None
    base_dir: Path
    store_url: str = "sqlite:///hub-data/hub.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    agencies: Mapping[str, Agency] = field(default_factory=dict)
    organization_agencies: Mapping[str, str] = field(default_factory=dict)
    consent_policy: ConsentPolicy = field(default_factory=ConsentPolicy)
    feeds: tuple[FeedSpec, ...] = ()
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    keys_file: Path | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    http_tls: TlsConfig | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    disabled_plugins: frozenset[str] = frozenset()
    sections: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """A raw top-level section (plugins read their own); empty when absent."""
        value = self.sections.get(name, {})
        return value if isinstance(value, Mapping) else {}

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p


# ---- locating errors ---------------------------------------------------------------------


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


def _headers(lines: list[str]) -> list[tuple[int, str, bool]]:
    """The table headers of TOML lines: (line index, dotted name, is an array element)."""
    found: list[tuple[int, str, bool]] = []
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m:
            name = ".".join(p.strip().strip("\"'") for p in m.group(2).split("."))
            found.append((i, name, m.group(1) == "[["))
    return found


def _table_start(
    headers: list[tuple[int, str, bool]], parts: list[str]
) -> tuple[int, str, list[str]] | None:
    """Where the table a key path names starts: (line index, table name, the rest of the
    path). ``feeds[1]`` is the second ``[[feeds]]`` header; ``[feeds.options]`` sub-tables
    are not elements of the array. An array written inline (``columns = [{…}]``) has no
    headers: the table holding it is found instead."""
    digit = next((k for k, p in enumerate(parts) if p.isdigit()), len(parts))
    if digit < len(parts):
        table = ".".join(parts[:digit])
        elements = [i for i, name, array in headers if array and name == table]
        index = int(parts[digit])
        if index < len(elements):
            return elements[index], table, parts[digit + 1 :]
    for k in range(digit, 0, -1):
        table = ".".join(parts[:k])
        found = [i for i, name, _ in headers if name == table]
        if found:
            return found[0], table, parts[k:]
    return None


def _key_line(
    lines: list[str], start: int, stops: Mapping[int, str], inside: set[str], name: str
) -> int | None:
    """The line index of ``name = …`` in the table from ``start`` (through its sub-tables
    ``inside``), or None."""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*=")
    for i in range(start + 1, len(lines)):
        if i in stops:
            if stops[i] not in inside:
                return None
            continue
        if pattern.match(lines[i]):
            return i
    return None


def line_of(text: str, dotted: str) -> int | None:
    """Best-effort line number of a key path such as ``agencies[1].kind`` in TOML text."""
    parts = [p for p in re.split(r"[.\[\]]", dotted) if p]
    if not parts:
        return None
    lines = text.splitlines()
    headers = _headers(lines)
    located = _table_start(headers, parts)
    start, table, rest = located if located is not None else (-1, "", parts)
    names = [p for p in rest if not p.isdigit()]
    header_at = {i: name for i, name, _ in headers}
    # sub-tables on the key's path ([feeds.options] for feeds[0].options.url) are inside it
    inside = {".".join([table, *names[:j]]) for j in range(1, len(names))} if table else set()
    # the innermost key first; a key inside an inline table is found by its outer key
    for name in reversed(names):
        found = _key_line(lines, start, header_at, inside, name)
        if found is not None:
            return found + 1
    return start + 1 if start >= 0 else None


class _Checker:
    def __init__(self, path: Path | None, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, message: str) -> ConfigError:
        where = str(self.path) if self.path else "config"
        line = line_of(self.text, key)
        at = f"{where} line {line}" if line else where
        return ConfigError(f"{at}: key '{key}': {message}")

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a table, got {type(value).__name__}")
        return value

    def known(self, table: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(f"{key}.{k}", f"unknown key (known: {hint})")

    def typed(self, table: Mapping[str, Any], key: str, name: str, tp: Any, default: Any) -> Any:
        if name not in table:
            return default
        value = table[name]
        ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            want = tp.__name__ if isinstance(tp, type) else "/".join(t.__name__ for t in tp)
            raise self.fail(f"{key}.{name}", f"expected {want}, got {type(value).__name__}")
        return value

    def bounded(
        self,
        table: Mapping[str, Any],
        key: str,
        name: str,
        default: int | float,
        low: float,
        high: float,
    ) -> Any:
        """:meth:`typed` (the default's type), also refusing a value outside ``low``…``high``."""
        value = self.typed(table, key, name, type(default), default)
        if not low <= value <= high:
            raise self.fail(f"{key}.{name}", f"must be from {low:g} to {high:g}")
        return value

    def tables(self, table: Mapping[str, Any], key: str, name: str) -> list[Mapping[str, Any]]:
        """An array of tables (``[[key.name]]`` or ``name = [{…}, …]``); empty when absent."""
        value = table.get(name, [])
        if not isinstance(value, list):
            raise self.fail(
                f"{key}.{name}", f"expected a list of tables, got {type(value).__name__}"
            )
        return [self.table(item, f"{key}.{name}[{i}]") for i, item in enumerate(value)]

    def strings(self, table: Mapping[str, Any], key: str, name: str) -> list[str]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{key}.{name}", "expected a list of strings")
        return list(value)


def _agencies(c: _Checker, raw: Any) -> tuple[dict[str, Agency], dict[str, str]]:
    agencies: dict[str, Agency] = {}
    orgs: dict[str, str] = {}
    if not isinstance(raw, list):
        raise c.fail("agencies", "expected [[agencies]] tables")
    allowed = {
        "id",
        "name",
        "kind",
        "networks",
        "active",
        "active_from",
        "active_until",
        "identifiers",
        "hmis_organization_ids",
    }
    for i, item in enumerate(raw):
        key = f"agencies[{i}]"
        t = c.table(item, key)
        c.known(t, key, allowed)
        aid = c.typed(t, key, "id", str, "")
        if not aid:
            raise c.fail(f"{key}.id", "required")
        if aid in agencies:
            raise c.fail(f"{key}.id", f"duplicate agency id {aid!r}")
        kind = c.typed(t, key, "kind", str, "cie")
        if kind not in AGENCY_KINDS:
            raise c.fail(f"{key}.kind", f"unknown kind {kind!r} (one of {', '.join(AGENCY_KINDS)})")
        networks = c.strings(t, key, "networks")
        for n in networks:
            if n not in NETWORKS:
                raise c.fail(f"{key}.networks", f"unknown network {n!r}")
        idents: list[tuple[str, str]] = []
        for j, it in enumerate(c.tables(t, key, "identifiers")):
            c.known(it, f"{key}.identifiers[{j}]", {"system", "value"})
            idents.append((str(it.get("system", "")), str(it.get("value", ""))))
        dates: dict[str, date | None] = {}
        for name in ("active_from", "active_until"):
            v = t.get(name)
            if v is not None and not isinstance(v, date):
                raise c.fail(f"{key}.{name}", "expected a date (YYYY-MM-DD)")
            dates[name] = v
        agencies[aid] = Agency(
            id=aid,
            name=c.typed(t, key, "name", str, aid),
            kind=kind,
            networks=frozenset(networks),
            active=c.typed(t, key, "active", bool, True),
            active_from=dates["active_from"],
            active_until=dates["active_until"],
            identifiers=tuple(idents),
        )
        for org in _organization_ids(c, t, key):
            orgs[org] = aid
    return agencies, orgs


def _organization_ids(c: _Checker, t: Mapping[str, Any], key: str) -> list[str]:
    """An agency's ``hmis_organization_ids``: a list of strings (or whole numbers)."""
    value = t.get("hmis_organization_ids", [])
    ok = isinstance(value, list) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    )
    if not ok:
        raise c.fail(f"{key}.hmis_organization_ids", "expected a list of strings")
    return [str(v) for v in value]


def _feeds(
    c: _Checker, raw: Any, agencies: Mapping[str, Agency], default_attempts: int
) -> list[FeedSpec]:
    feeds: list[FeedSpec] = []
    if not isinstance(raw, list):
        raise c.fail("feeds", "expected [[feeds]] tables")
    allowed = {
        "name",
        "recipient",
        "kinds",
        "purpose",
        "categories",
        "connector",
        "schedule",
        "owners",
        "person_has",
        "where",
        "batch_size",
        "max_attempts",
        "options",
    }
    names: set[str] = set()
    for i, item in enumerate(raw):
        key = f"feeds[{i}]"
        t = c.table(item, key)
        c.known(t, key, allowed)
        name = c.typed(t, key, "name", str, f"feed-{i + 1}")
        if name in names:
            raise c.fail(f"{key}.name", f"duplicate feed name {name!r}")
        names.add(name)
        recipient = c.typed(t, key, "recipient", str, "")
        if recipient not in agencies:
            raise c.fail(f"{key}.recipient", f"unknown agency {recipient!r}")
        purpose = c.typed(t, key, "purpose", str, "coordination")
        if purpose not in PURPOSES:
            raise c.fail(f"{key}.purpose", f"unknown purpose {purpose!r}")
        cats = t.get("categories")
        categories: frozenset[str] | None = None
        if cats is not None:
            categories = frozenset(c.strings(t, key, "categories"))
            bad = sorted(categories - set(CATEGORIES))
            if bad:
                raise c.fail(f"{key}.categories", f"unknown category {bad[0]!r}")
        kinds = _record_kinds(c, t, key, "kinds") or ["client"]
        person_has = _record_kinds(c, t, key, "person_has")
        owners = c.strings(t, key, "owners")
        for owner in owners:
            if owner not in agencies:
                raise c.fail(f"{key}.owners", f"unknown agency {owner!r}")
        connector = c.typed(t, key, "connector", str, "")
        if not connector:
            raise c.fail(f"{key}.connector", "required (webhook, fhir-push, hl7-mllp, csv-file …)")
        where_raw = c.table(t.get("where", {}), f"{key}.where")
        where = {
            k: frozenset(str(x) for x in (v if isinstance(v, list) else [v]))
            for k, v in where_raw.items()
        }
        feeds.append(
            FeedSpec(
                name=name,
                recipient=recipient,
                kinds=frozenset(kinds),
                purpose=purpose,
                connector=connector,
                categories=categories,
                schedule=_schedule(c, t, key),
                owners=frozenset(owners),
                person_has=frozenset(person_has),
                where=where,
                batch_size=c.typed(t, key, "batch_size", int, 100),
                max_attempts=c.typed(t, key, "max_attempts", int, default_attempts),
                options=dict(c.table(t.get("options", {}), f"{key}.options")),
            )
        )
    return feeds


def _record_kinds(c: _Checker, t: Mapping[str, Any], key: str, name: str) -> list[str]:
    """A list of record kinds: the canonical ones (``client``, ``encounter`` …) or a plugin's
    own, which carry its prefix (``hmis.Project``); a typo would select nothing, silently."""
    kinds = c.strings(t, key, name)
    for kind in kinds:
        if kind not in RECORD_TYPES and "." not in kind:
            known = ", ".join(sorted(RECORD_TYPES))
            raise c.fail(
                f"{key}.{name}",
                f"unknown record kind {kind!r} (one of {known}, or a plugin's such as "
                "'hmis.Project')",
            )
    return kinds


def _schedule(c: _Checker, t: Mapping[str, Any], key: str) -> str:
    """``on-change`` or a five-field crontab line, checked now rather than at start-up."""
    schedule: str = c.typed(t, key, "schedule", str, "on-change")
    if schedule != "on-change":
        from hub.schedules import checked_cron_trigger

        try:
            checked_cron_trigger(schedule)
        except ValueError as exc:
            raise c.fail(f"{key}.schedule", f"not 'on-change' or a crontab line: {exc}") from None
    return schedule


def _dataclass_section(c: _Checker, raw: Any, key: str, cls: Any) -> Any:
    t = c.table(raw, key)
    fields = cls.__dataclass_fields__
    c.known(t, key, set(fields))
    kwargs = {}
    for name, f in fields.items():
        bounds = f.metadata.get("range")
        if bounds is None:
            kwargs[name] = c.typed(t, key, name, type(f.default), f.default)
        else:
            kwargs[name] = c.bounded(t, key, name, f.default, *bounds)
    return cls(**kwargs)


def tls_config(c: _Checker, raw: Any, key: str, base_dir: Path) -> TlsConfig | None:
    """A TLS table (cert_file, key_file, optional client_ca_file), files checked to exist."""
    if raw is None:
        return None
    t = c.table(raw, key)
    c.known(t, key, {"cert_file", "key_file", "client_ca_file"})
    paths: dict[str, Path | None] = {}
    for name in ("cert_file", "key_file", "client_ca_file"):
        value = c.typed(t, key, name, str, "")
        if not value:
            if name != "client_ca_file":
                raise c.fail(f"{key}.{name}", "required")
            paths[name] = None
            continue
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        if not path.is_file():
            raise c.fail(f"{key}.{name}", f"file not found: {path}")
        paths[name] = path
    cert, private = paths["cert_file"], paths["key_file"]
    assert cert is not None and private is not None
    return TlsConfig(cert, private, paths["client_ca_file"])


def _auth(c: _Checker, raw: Any, agencies: Mapping[str, Agency], base_dir: Path) -> AuthConfig:
    t = c.table(raw, "auth")
    c.known(
        t,
        "auth",
        {"clients", "certificates", "token_lifetime_seconds", "requests_per_minute", "token_url"},
    )
    token_url = c.typed(t, "auth", "token_url", str, "")
    if token_url and not token_url.startswith(("https://", "http://")):
        raise c.fail("auth.token_url", "expected an https:// (or http://) URL")
    clients: list[SmartClient] = []
    for i, ct in enumerate(c.tables(t, "auth", "clients")):
        key = f"auth.clients[{i}]"
        c.known(ct, key, {"client_id", "agency", "public_key_file", "role"})
        agency = c.typed(ct, key, "agency", str, "")
        if agency not in agencies:
            raise c.fail(f"{key}.agency", f"unknown agency {agency!r}")
        pem_path = c.typed(ct, key, "public_key_file", str, "")
        path = Path(pem_path) if Path(pem_path).is_absolute() else base_dir / pem_path
        if not pem_path or not path.is_file():
            raise c.fail(f"{key}.public_key_file", f"file not found: {path}")
        clients.append(
            SmartClient(
                client_id=c.typed(ct, key, "client_id", str, "") or agency,
                agency=agency,
                public_key_pem=path.read_bytes(),
                role=c.typed(ct, key, "role", str, "partner"),
            )
        )
    certs: list[ClientCertificate] = []
    for i, ct in enumerate(c.tables(t, "auth", "certificates")):
        key = f"auth.certificates[{i}]"
        c.known(ct, key, {"agency", "subject_cn", "sha256", "role"})
        agency = c.typed(ct, key, "agency", str, "")
        if agency not in agencies:
            raise c.fail(f"{key}.agency", f"unknown agency {agency!r}")
        certs.append(
            ClientCertificate(
                agency=agency,
                subject_cn=c.typed(ct, key, "subject_cn", str, ""),
                sha256=c.typed(ct, key, "sha256", str, "").lower().replace(":", ""),
                role=c.typed(ct, key, "role", str, "partner"),
            )
        )
    return AuthConfig(
        clients=tuple(clients),
        certificates=tuple(certs),
        token_lifetime_seconds=c.bounded(t, "auth", "token_lifetime_seconds", 300, 1, DAY_SECONDS),
        requests_per_minute=c.bounded(t, "auth", "requests_per_minute", 1200, 1, 10_000_000),
        token_url=token_url,
    )


def _is_implicit(path: Path, implicit: bool | None) -> bool:
    """Whether ``path`` is the default ``./hub.toml`` nobody asked for (see load_config)."""
    if implicit is not None:
        return implicit
    return path == Path(DEFAULT_CONFIG) and not os.environ.get("HUB_CONFIG")


def _read_text(path: Path) -> str:
    """The config file's text; ConfigError when it cannot be read or is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text (save the file as UTF-8)") from None


STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
STORE_URL_HINT = "expected sqlite:///path or postgresql://user@host:port/db"


def _store_url(c: _Checker, store: Mapping[str, Any]) -> str:
    """The store URL: ``HUB_STORE_URL`` when set (errors name the variable, never its value,
    which may hold a password), else ``[store] url``."""
    env = os.environ.get("HUB_STORE_URL")
    if env:
        if not env.startswith(STORE_SCHEMES):
            raise ConfigError(f"environment variable HUB_STORE_URL: {STORE_URL_HINT}")
        return env
    url: str = c.typed(store, "store", "url", str, "sqlite:///hub-data/hub.db")
    if not url.startswith(STORE_SCHEMES):
        raise c.fail("store.url", STORE_URL_HINT)
    return url


SectionValidator = Callable[[str, Any, frozenset[str]], list[str]]


def load_config(
    path: Path | None,
    *,
    owned_sections: Mapping[str, str] | None = None,
    validate_section: SectionValidator | None = None,
    text: str | None = None,
    implicit: bool | None = None,
) -> HubConfig:
    """Read and validate ``hub.toml``; raise :class:`ConfigError` naming file, line and key.

    With no file at the implicit default (``./hub.toml``, named by neither ``--config`` nor
    ``HUB_CONFIG``), the defaults (embedded SQLite in ``./hub-data``) are used; a file named
    on purpose must exist. ``implicit`` says whether ``path`` is that default; None infers
    it: ``path`` is None, or ``hub.toml`` with ``HUB_CONFIG`` unset.
    """
    if text is None:
        if path is None or not path.exists():
            if path is not None and not _is_implicit(path, implicit):
                raise ConfigError(f"{path}: config file not found (create one with 'hub init')")
            return HubConfig(path=None, base_dir=Path.cwd())
        text = _read_text(path)
    c = _Checker(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path or 'config'}: not valid TOML: {exc}") from None
    owned = dict(owned_sections or {})
    for section in raw:
        if section not in CORE_SECTIONS and section not in owned:
            known = ", ".join(sorted({*CORE_SECTIONS, *owned}))
            raise c.fail(section, f"unknown section (known: {known})")
    base_dir = path.parent.resolve() if path is not None else Path.cwd()

    store = c.table(raw.get("store", {}), "store")
    c.known(store, "store", {"url"})
    store_url = _store_url(c, store)

    http = c.table(raw.get("http", {}), "http")
    c.known(http, "http", {"host", "port", "max_body_bytes", "tls"})
    port = c.typed(http, "http", "port", int, 8080)
    if not 0 <= port <= 65535:
        raise c.fail("http.port", f"port {port} out of range 0-65535")
    c.bounded(http, "http", "max_body_bytes", MAX_BODY_BYTES, 1, 1 << 30)

    agencies, orgs = _agencies(c, raw.get("agencies", []))
    try:
        policy = ConsentPolicy.from_mapping(c.table(raw.get("consent", {}), "consent"))
    except ValueError as exc:
        raise c.fail("consent", str(exc)) from None
    delivery = _dataclass_section(c, raw.get("delivery", {}), "delivery", DeliveryConfig)
    feeds = _feeds(c, raw.get("feeds", []), agencies, delivery.max_attempts)
    retention = _dataclass_section(c, raw.get("retention", {}), "retention", RetentionConfig)

    keys = c.table(raw.get("keys", {}), "keys")
    c.known(keys, "keys", {"file"})
    keys_file = c.typed(keys, "keys", "file", str, "")

    logging_t = c.table(raw.get("logging", {}), "logging")
    c.known(logging_t, "logging", {"level", "format"})
    level = c.typed(logging_t, "logging", "level", str, "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise c.fail("logging.level", f"unknown level {level!r}")
    fmt = c.typed(logging_t, "logging", "format", str, "text")
    if fmt not in ("text", "json"):
        raise c.fail("logging.format", "expected 'text' or 'json'")

    auth = _auth(c, raw.get("auth", {}), agencies, base_dir)
    http_tls = tls_config(c, http.get("tls"), "http.tls", base_dir)

    plugins_t = c.table(raw.get("plugins", {}), "plugins")
    c.known(plugins_t, "plugins", {"disabled"})

    if validate_section is not None:
        for section in owned:
            if section in raw:
                errors = validate_section(section, raw[section], frozenset(agencies))
                if errors:
                    first = errors[0]
                    k, _, msg = first.partition(": ")
                    raise c.fail(k, msg or first)

    return HubConfig(
        path=path,
        base_dir=base_dir,
        store_url=store_url,
        http_host=c.typed(http, "http", "host", str, "127.0.0.1"),
        http_port=port,
        agencies=agencies,
        organization_agencies=orgs,
        consent_policy=policy,
        feeds=tuple(feeds),
        delivery=delivery,
        retention=retention,
        keys_file=(base_dir / keys_file) if keys_file else None,
        auth=auth,
        http_tls=http_tls,
        log_level=level,
        log_format=fmt,
        disabled_plugins=frozenset(c.strings(plugins_t, "plugins", "disabled")),
        sections=raw,
    )
