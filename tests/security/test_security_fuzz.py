"""Fuzzing the trust boundaries with hypothesis: whatever arrives, the answer is a proper,
specific error (or a parse), never a crash or a hang."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.hl7.directory import AgencyDirectory
from plugins.hl7.framing import MllpDecoder
from plugins.hl7.mapping import MappingError, SenderContext, map_message
from plugins.hl7.parser import Hl7ParseError, parse_message

SEGMENT_IDS = st.sampled_from(
    ["MSH", "PID", "PV1", "EVN", "RF1", "PRD", "NTE", "DG1", "ARV", "ZZZ"]
)
FIELD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
MSH = "MSH|^~\\&|APP|MERCY|HUB|CIE|20250101120000||{type}|C{n}|P|{version}"


@st.composite
def hl7_like(draw: st.DrawFn) -> str:
    """Text that looks like HL7 often enough to reach deep into the parser and mapper."""
    msh = MSH.format(
        type=draw(st.sampled_from(["ADT^A01^ADT_A01", "ADT^A08", "REF^I12", "ORU^R01", "", "^^"])),
        n=draw(st.integers(0, 99)),
        version=draw(st.sampled_from(["2.3", "2.5.1", "2.8", "", "9.9"])),
    )
    segments = [msh] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 6))):
        fields = draw(st.lists(FIELD, max_size=30))
        segments.append("|".join([draw(SEGMENT_IDS), *fields]))
    end = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    return end.join(segments)


SENDER = SenderContext(
    "MERCY", "hospital-x", datetime(2025, 1, 1, tzinfo=UTC), "h", AgencyDirectory()
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(hl7_like(), st.binary(max_size=400).map(lambda b: b.decode("latin-1"))))
def test_hl7_parser_and_mapper_never_crash(text: str) -> None:
    try:
        message = parse_message(text)
    except Hl7ParseError as exc:
        assert str(exc)  # a specific, readable reason
        return
    try:
        map_message(message, SENDER)
    except MappingError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(16, 4096))
def test_mllp_framer_never_crashes_and_stays_bounded(chunks: list[bytes], limit: int) -> None:
    decoder = MllpDecoder(max_frame_bytes=limit)
    for chunk in chunks:
        for event in decoder.feed(chunk):
            payload = getattr(event, "payload", b"")
            assert len(payload) <= limit


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


@st.composite
def fhir_bodies(draw: st.DrawFn) -> bytes:
    """Malformed bytes, wrong shapes, and Patient-like objects with random elements."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.binary(max_size=200))
    import orjson

    if kind == 1:
        return orjson.dumps(draw(JSONISH))
    body = {"resourceType": draw(st.sampled_from(["Patient", "Bundle", "Task", "Foo"]))}
    body.update(
        draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "gender",
                        "birthDate",
                        "identifier",
                        "entry",
                        "type",
                        "status",
                        "extension",
                        "x",
                    ]
                ),
                JSONISH,
                max_size=4,
            )
        )
    )
    return orjson.dumps(body)


def test_fhir_intake_answers_every_body_with_an_operation_outcome(web_hub, make_key) -> None:
    async def scenario() -> None:
        async with web_hub() as (ctx, url, http):
            key = await make_key(ctx, "hospital-x")
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"}
            seen: list[int] = []

            @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
            @given(fhir_bodies(), st.sampled_from(["/fhir/Patient", "/fhir/", "/fhir/Task"]))
            def probe(body: bytes, path: str) -> None:
                async def once() -> None:
                    async with http.post(f"{url}{path}", data=body, headers=headers) as r:
                        seen.append(r.status)
                        assert r.status < 500, await r.text()
                        if r.status >= 400:
                            outcome = await r.json()
                            assert outcome["resourceType"] == "OperationOutcome"

                asyncio.run_coroutine_threadsafe(once(), loop).result(timeout=10)

            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, probe)
            assert seen and all(s < 500 for s in seen)

    asyncio.run(scenario())
