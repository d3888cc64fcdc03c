"""Shared fixtures: a real hub on SQLite or PostgreSQL in a temporary directory."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from hub.auth import new_key
from hub.config import load_config
from hub.context import HubContext, make_plugins, open_context
from hub.keys import KeyRing
from hub.web import make_app

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HUB_SHARED_DIR", REPO_ROOT.parent / "shared"))

BASE_TOML = """
[store]
url = "{store_url}"

[keys]
file = "hub-data/keys.json"

[[agencies]]
id = "shelter-a"
name = "Shelter A"
kind = "hmis"
networks = ["hmis", "cie"]

[[agencies]]
id = "hospital-x"
name = "Hospital X"
kind = "health"
networks = ["cie"]

[[agencies]]
id = "cie-211"
name = "211"
kind = "cie"
networks = ["cie"]

[[agencies]]
id = "safe-haven"
name = "Safe Haven"
kind = "vsp"
networks = ["hmis"]

[[agencies]]
id = "recovery-p2"
name = "Recovery Program"
kind = "part2"
networks = ["cie"]
"""


def _pg_reachable() -> bool:
    """Whether the server accepts TCP connections (a synchronous probe, safe in any loop)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(PG_URL)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=3):
            return True
    except OSError:
        return False


_PG_STATE: dict[str, bool] = {}


def require_pg() -> str:
    """The PostgreSQL URL, or skip (fail when HUB_REQUIRE_PG=1) if no server answers."""
    if "ok" not in _PG_STATE:
        _PG_STATE["ok"] = _pg_reachable()
    if not _PG_STATE["ok"]:
        if os.environ.get("HUB_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required (HUB_REQUIRE_PG=1) but {PG_URL} does not answer")
        pytest.skip("PostgreSQL not reachable")
    return PG_URL


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new empty database on the test server; dropped afterwards."""
    import asyncpg

    base = require_pg()
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def write_hub(tmp_path: Path, extra_toml: str = "", store_url: str | None = None) -> Path:
    """Write hub.toml (base agencies + ``extra_toml``) and a key file; returns the config path."""
    url = store_url or "sqlite:///hub-data/hub.db"
    path = tmp_path / "hub.toml"
    path.write_text(BASE_TOML.format(store_url=url) + extra_toml, encoding="utf-8")
    KeyRing.generate().write(tmp_path / "hub-data" / "keys.json")
    return path


HubFactory = Callable[..., Any]


@pytest.fixture
def hub_factory(tmp_path: Path) -> HubFactory:
    """``async with hub_factory(extra_toml, store="sqlite"|"postgresql") as ctx`` → HubContext."""

    @asynccontextmanager
    async def make(extra_toml: str = "", store: str = "sqlite") -> AsyncIterator[HubContext]:
        if store == "postgresql":
            async with fresh_pg_database() as url:
                cfg = load_config(write_hub(tmp_path, extra_toml, url))
                async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
                    yield ctx
        else:
            cfg = load_config(write_hub(tmp_path, extra_toml))
            async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
                yield ctx

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_hub(
    request: pytest.FixtureRequest, hub_factory: HubFactory
) -> AsyncIterator[HubContext]:
    """A hub on each store (the one store test suite runs against both adapters)."""
    if request.param == "postgresql":
        require_pg()
    async with hub_factory(store=request.param) as ctx:
        yield ctx


def run(coro: Awaitable[Any]) -> Any:
    """Run a coroutine from synchronous test code."""
    return asyncio.get_event_loop().run_until_complete(coro)


@pytest.fixture
def hub_dir(tmp_path: Path) -> Callable[[str], Path]:
    """``hub_dir(extra_toml)`` writes hub.toml + key file in tmp_path; returns the config path."""

    def make(extra_toml: str = "") -> Path:
        return write_hub(tmp_path, extra_toml)

    return make


@pytest.fixture
def seed_records() -> Callable[..., Any]:
    """``seed_records(config_path, records)`` ingests canonical records into that hub."""

    def seed(config_path: Path, records: list[Any]) -> Any:
        async def main() -> Any:
            cfg = load_config(config_path)
            async with open_context(cfg, make_plugins(cfg), migrate=True) as ctx:
                return await ctx.engine.ingest(records)

        return asyncio.run(main())

    return seed


@pytest.fixture
def hub_cli(tmp_path: Path) -> Callable[..., Result]:
    """``hub_cli("consent", "check", …)`` runs the command with tmp_path/hub.toml."""
    from hub.cli import cli
    from hub.cli_support import CliState

    pm = make_plugins()
    pm.hook.hub_cli_commands(cli=cli)

    def run(*args: str, config: Path | None = None) -> Result:
        state = CliState(config_path=config or tmp_path / "hub.toml", _plugins=pm)
        return CliRunner().invoke(cli, list(args), obj=state, catch_exceptions=False)

    return run


# ---- no PII in logs ------------------------------------------------------------------------
# Every test runs with logging at DEBUG through the hub's own handler (PII filter and
# formatter); afterwards every line is scanned for the invented people's names, SSNs and
# birth dates that the tests use. A test whose code path logs client data fails.

PII_NEEDLES = [
    "Zebulon",
    "Quixtanova",
    "Alvarez",
    "Quinterro",
    "078-05-1121",
    "123-45-6789",
    "078051121",
    "123456789",
    "1961-07-23",
    "19610723",
    "4242 Hidden Lane",
    "100 Main St",
    "619-555-0100",
]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_pii_in_logs() -> Any:
    """Fail a test whose logs (as the hub writes them) contain test client data."""
    from hub.logs import JsonFormatter, PiiFilter

    capture = _Capture()
    capture.setFormatter(JsonFormatter())
    capture.addFilter(PiiFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    leaks = [(needle, line) for line in capture.lines for needle in PII_NEEDLES if needle in line]
    assert not leaks, f"client data in the logs: {leaks[:3]}"


# ---- a real HTTP server over a real hub ---------------------------------------------------


async def add_key(ctx: HubContext, agency: str, role: str = "partner") -> str:
    """Create an API key for an agency; returns the full key."""
    key, key_id, salt, digest = new_key()
    await ctx.store.add_partner_key(key_id, agency, role, salt, digest)
    return key


@pytest.fixture
def web_hub(hub_factory: Callable[..., Any]) -> Callable[..., Any]:
    """``async with web_hub(extra_toml) as (ctx, base_url, session)``."""

    @asynccontextmanager
    async def make(extra: str = "") -> AsyncIterator[tuple[HubContext, str, aiohttp.ClientSession]]:
        async with hub_factory(extra) as ctx:
            server = TestServer(make_app(ctx), host="127.0.0.1", port=0)
            await server.start_server()
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                try:
                    yield ctx, str(server.make_url("")).rstrip("/"), session
                finally:
                    await server.close()

    return make


@pytest.fixture
def make_key() -> Callable[..., Any]:
    """``await make_key(ctx, agency, role="partner")`` → a new bearer key."""
    return add_key


# ---- a small PKI for TLS tests -----------------------------------------------------------


def _pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate (CN partner-x) signed
    by the CA, and a client certificate from an unknown CA; PEM files in ``folder``."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str, issuer_key: Any, issuer: x509.Name, *, ca: bool = False, san: bool = False
    ) -> tuple[Any, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer if issuer_key is not None else name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return key, cert

    def write(stem: str, key: Any, cert: x509.Certificate) -> None:
        (folder / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key, ca = issue("Test CA", None, name("Test CA"), ca=True)
    write("ca", ca_key, ca)
    write("server", *issue("127.0.0.1", ca_key, ca.subject, san=True))
    write("client", *issue("partner-x", ca_key, ca.subject))
    rogue_key, rogue = issue("Rogue CA", None, name("Rogue CA"), ca=True)
    write("rogue", *issue("partner-x", rogue_key, rogue.subject))
    return {p.stem + p.suffix: p for p in folder.iterdir()}


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """PEM files: ca.crt, server.crt/.key, client.crt/.key (CN partner-x), rogue.crt/.key."""
    return _pki(tmp_path / "pki")
