"""Mutual TLS on HTTP: a client certificate from the configured CA is mapped to a partner;
no certificate, or one from an unknown CA, never gets in."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from aiohttp import web

from hub.tls import server_context
from hub.web import make_app


def client_ssl(pki, stem: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    if stem:
        ctx.load_cert_chain(str(pki[f"{stem}.crt"]), str(pki[f"{stem}.key"]))
    return ctx


async def test_client_certificate_maps_to_partner(hub_factory, pki) -> None:
    extra = f"""
[http.tls]
cert_file = "{pki["server.crt"]}"
key_file = "{pki["server.key"]}"
client_ca_file = "{pki["ca.crt"]}"

[[auth.certificates]]
subject_cn = "partner-x"
agency = "hospital-x"
"""
    async with hub_factory(extra) as ctx:
        assert ctx.config.http_tls is not None
        runner = web.AppRunner(make_app(ctx))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(ctx.config.http_tls))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"https://127.0.0.1:{port}/cds-services"
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(url, ssl=client_ssl(pki, "client")) as r:
                    assert r.status == 200
                for stem in (None, "rogue"):
                    with pytest.raises(aiohttp.ClientError):
                        async with http.get(url, ssl=client_ssl(pki, stem)) as r:
                            await r.read()
        finally:
            await runner.cleanup()
