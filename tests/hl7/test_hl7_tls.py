"""MLLP over TLS: the listener with mutual TLS, and the sink's TLS option."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.context import HubContext
from plugins.hl7.listener import MllpListener
from plugins.hl7.settings import TlsSettings
from plugins.hl7.sink import MllpSink
from plugins.hl7.tls import TlsConfigError, server_context
from tests.hl7.conftest import MllpTestClient, adt, msa
from tests.hl7.test_hl7_sink import delivery


def _issue(
    subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("test-ca", None, ca=True)
    _write(root / "ca", ca_cert, ca_key)
    for name in ("server", "client"):
        cert, key = _issue(name, (ca_cert.subject, ca_key))
        _write(root / name, cert, key)
    return root


def _client_ctx(pki: Path, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if with_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


@pytest.fixture
async def tls_listener(hl7_hub: HubContext, pki: Path) -> AsyncIterator[MllpListener]:
    tls = TlsSettings(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    service = MllpListener(hl7_hub, "127.0.0.1", 0, ssl_context=server_context(tls))
    await service.start()
    yield service
    await asyncio.wait_for(service.stop(), 5)


async def test_mutual_tls_client_is_served(tls_listener: MllpListener, pki: Path) -> None:
    client = await MllpTestClient.open(tls_listener.port, ssl=_client_ctx(pki, True))
    assert msa(await client.request(adt("A01", "TLS1")))[1:3] == ["AA", "TLS1"]
    await client.close()


async def test_client_without_certificate_is_refused_and_others_still_served(
    tls_listener: MllpListener, pki: Path
) -> None:
    refused = False
    try:
        client = await MllpTestClient.open(tls_listener.port, ssl=_client_ctx(pki, False))
        await client.send(adt("A01", "NOCERT"))
        refused = await client.closed_by_peer(2)
        await client.close()
    except (ssl.SSLError, ConnectionError):
        refused = True
    assert refused
    good = await MllpTestClient.open(tls_listener.port, ssl=_client_ctx(pki, True))
    assert msa(await good.request(adt("A01", "AFTER")))[1] == "AA"
    await good.close()


async def test_sink_delivers_over_mutual_tls(tls_listener: MllpListener, pki: Path) -> None:
    sink = MllpSink()
    tls = {
        "ca_file": str(pki / "ca.pem"),
        "cert_file": str(pki / "client.pem"),
        "key_file": str(pki / "client.key"),
    }
    item = delivery(tls_listener.port, tls=tls, sending_facility="MERCY")
    outcomes = await asyncio.wait_for(sink.deliver([item]), 5)
    await sink.close()
    assert [(o.ok, o.error) for o in outcomes] == [(True, "")]


@pytest.mark.parametrize(
    ("option", "setting"),
    [("ca_file", "tls.ca_file"), ("cert_file", "tls.cert_file")],
)
async def test_an_unusable_sink_certificate_is_a_configuration_error(
    tmp_path: Path, option: str, setting: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    item = delivery(1, tls={option: str(junk), "key_file": str(junk)})
    (outcome,) = await asyncio.wait_for(MllpSink().deliver([item]), 5)
    assert (outcome.ok, outcome.retry) == (False, False)  # dead letter: fix the feed, replay
    assert outcome.error.startswith(f"{setting}: unusable")


def test_missing_tls_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError) as info:
        server_context(TlsSettings(tmp_path / "nope.pem", tmp_path / "nope.key"))
    assert "hl7.tls.cert_file: file not found" in str(info.value)


@asynccontextmanager
async def _mapped_client(
    tmp_path: Path, pki: Path, mapped_cn: str
) -> AsyncIterator[MllpTestClient]:
    """A client (certificate CN "client") of a mutual-TLS listener on a hub whose
    ``[[auth.certificates]]`` maps ``mapped_cn`` to hospital-x."""
    from tests.hl7.conftest import HL7_TOML, open_hub

    mapping = f'\n[[auth.certificates]]\nsubject_cn = "{mapped_cn}"\nagency = "hospital-x"\n'
    async with open_hub(tmp_path, HL7_TOML + mapping) as ctx:
        tls = TlsSettings(pki / "server.pem", pki / "server.key", pki / "ca.pem")
        service = MllpListener(ctx, "127.0.0.1", 0, ssl_context=server_context(tls))
        await service.start()
        try:
            client = await MllpTestClient.open(service.port, ssl=_client_ctx(pki, True))
            try:
                yield client
            finally:
                await client.close()
        finally:
            await asyncio.wait_for(service.stop(), 5)


async def test_certificate_binds_the_connection_to_its_agency(tmp_path: Path, pki: Path) -> None:
    """A partner's client certificate may only carry messages of its own agency's senders."""
    async with _mapped_client(tmp_path, pki, "client") as client:
        # MERCY belongs to hospital-x, the certificate's agency: accepted
        assert msa(await client.request(adt("A01", "OWN")))[1] == "AA"
        # "IA Public Health Lab" belongs to cie-211: refused on this connection
        other = adt("A01", "FOREIGN", facility="IA Public Health Lab")
        ack = await client.request(other)
        assert msa(ack)[1] == "AR"
        assert "CERTIFICATE_MISMATCH" in ack


async def test_a_certificate_no_entry_maps_is_refused_once_certificates_are_mapped(
    tmp_path: Path, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``[[auth.certificates]]`` configured, a certificate the CA signed but no entry
    maps vouches for no sender: its messages get AR, whatever MSH-4 claims."""
    async with _mapped_client(tmp_path, pki, "another-partner") as client:
        ack = await client.request(adt("A01", "UNMAPPED"))
        assert msa(ack)[1] == "AR"
        assert "CERTIFICATE_NOT_MAPPED" in ack
    assert any("not mapped to an agency" in r.getMessage() for r in caplog.records)
