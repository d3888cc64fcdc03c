"""Hmac256: the HMAC-SHA256 of the standard library, with the key's pads hashed once."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.hmac_sha256 import Hmac256
from hub.sinks.signing import signature


@given(key=st.binary(min_size=1, max_size=200), parts=st.lists(st.binary(max_size=300), min_size=1))
def test_the_mac_equals_the_standard_librarys_for_any_key_and_message(
    key: bytes, parts: list[bytes]
) -> None:
    mac = Hmac256(key)
    expected = hmac.new(key, b"".join(parts), hashlib.sha256)
    assert mac.digest(*parts) == expected.digest()
    assert mac.hexdigest(*parts) == expected.hexdigest()
    # The pads are copied, never used up: a second message under the same key is right too.
    assert mac.digest(b"again") == hmac.digest(key, b"again", "sha256")


def test_a_webhook_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"record": {}}'
    assert (
        signature(b"s3cret", 1700000000, body)
        == hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    )


def test_a_mac_shows_and_gives_away_no_key() -> None:
    mac = Hmac256(b"very-secret-key-bytes")
    assert "secret" not in repr(mac)
    with pytest.raises(TypeError):
        pickle.dumps(mac)
