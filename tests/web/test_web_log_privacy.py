"""A request aiohttp cannot parse is logged by aiohttp itself, with an exception whose text
quotes the bytes sent: the hub's logs name the exception's type only, so a name in a
malformed header (which no PII pattern recognises) never reaches them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hub.logs import PiiFilter

NAME = "Quixtanova"


async def test_a_request_aiohttp_cannot_parse_leaves_no_client_data_in_the_logs(
    web_hub: Any, no_pii_in_logs: Any
) -> None:
    async with web_hub() as (_ctx, url, _http):
        host, port = url.split("//")[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /fhir/Patient HTTP/1.1\r\nHost: x\r\nX Name {NAME}: y\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(4000), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer
    logged = "\n".join(no_pii_in_logs.lines)
    assert "BadHttpMessage" in logged  # the failure is still logged, by its type
    assert NAME not in logged


def test_own_exception_texts_are_kept_and_scrubbed_library_ones_are_named_only() -> None:
    def record(logger: str) -> logging.LogRecord:
        try:
            raise ValueError(f"row 3: {NAME} 123-45-6789")
        except ValueError as exc:
            return logging.LogRecord(
                logger, logging.ERROR, "x", 1, "failed", None, (type(exc), exc, exc.__traceback__)
            )

    own, library = record("hub.delivery"), record("aiohttp.server")
    PiiFilter().filter(own)
    PiiFilter().filter(library)
    assert own.exc_text == f"ValueError: row 3: {NAME} [redacted]"
    assert library.exc_text == "ValueError"
