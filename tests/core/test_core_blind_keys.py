"""Blind match keys computed the quick way are exactly the keys the plain way gives: the
store holds keys made by earlier releases, so a different key would miss every match."""

from __future__ import annotations

import copy
import hmac
import pickle
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.identity import MatchKeys, full_valid_ssn, match_keys, normalise_name
from hub.core.records import Client
from hub.keys import KeyRing
from hub.synthetic import client

NAMES = st.text(
    alphabet=st.sampled_from("abcxyzABCXYZ -'.09ÄÖéñßøŁæﬁＡ①İı\u0301\u00a0"), max_size=10
)


def plain_blind(key: bytes, value: str) -> str:
    return hmac.digest(key, value.encode("utf-8"), "sha256").hex()[:32]


def plain_normalise(family: str, given: Sequence[str]) -> str:
    def fold(s: str) -> str:
        ascii_form = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
        return re.sub(r"[^A-Z]", "", ascii_form.upper())

    f, g = fold(family), fold(given[0] if given else "")
    return f"{f}|{g}" if f and g else ""


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=130), value=st.text(max_size=80))
def test_blind_is_the_hmac_of_the_index_key(key: bytes, value: str) -> None:
    ring = KeyRing.generate()
    ring = KeyRing(key, ring.signing_key, ring.signing_key_id, ring.data_keys, ring.active_data_key)
    assert ring.blind(value) == plain_blind(key, value)


def test_a_key_ring_survives_pickling_and_copying() -> None:
    """A key ring handed to a worker process (pickled) or deep-copied blinds alike."""
    ring = KeyRing.generate()
    for again in (pickle.loads(pickle.dumps(ring)), copy.deepcopy(ring)):
        assert again == ring
        assert again.blind("n:DOE|JANE") == ring.blind("n:DOE|JANE")


def test_a_key_ring_from_its_key_file_blinds_alike() -> None:
    ring = KeyRing.generate()
    again = KeyRing.from_json(ring.to_json(), "test")
    assert again == ring
    assert again.blind("id:urn:oid:1.2|MRN-1") == ring.blind("id:urn:oid:1.2|MRN-1")
    assert ring.blind("n:DOE|JANE") == plain_blind(ring.index_key, "n:DOE|JANE")


@settings(max_examples=500, deadline=None)
@given(family=NAMES, given_names=st.lists(NAMES, max_size=2))
def test_normalise_name_folds_as_unicode_says(family: str, given_names: list[str]) -> None:
    assert normalise_name(family, given_names) == plain_normalise(family, given_names)


def plain_match_keys(rec: Client, blind: Callable[[str], str]) -> MatchKeys:
    """:func:`match_keys` as it was written first (each name folded where it is used)."""
    strong = [blind(f"id:{i.system}|{i.value}") for i in rec.identifiers if i.value]
    values = [blind(f"idv:{i.value}") for i in rec.identifiers if i.value]
    name = plain_normalise(rec.names[0].family, rec.names[0].given) if rec.names else ""
    dob = rec.birth_date.isoformat() if rec.birth_date else ""
    ssn = full_valid_ssn(rec.ssn) or ""
    if ssn:
        strong.append(blind(f"ssn:{ssn}"))
    pair = [
        blind(text)
        for text, wanted in (
            (f"nd:{name}|{dob}", name and dob),
            (f"ns:{name}|{ssn}", name and ssn),
            (f"ds:{dob}|{ssn}", dob and ssn),
        )
        if wanted
    ]
    weak = [blind(f"n:{name}")] if name else []
    if dob and rec.names and rec.names[0].family:
        weak.append(blind(f"df:{dob}|{plain_normalise(rec.names[0].family, ['X'])}"))
    ssn_key = blind(f"ssn:{ssn}") if ssn else ""
    ssn_pairs = tuple(k for k in pair if ssn and k != blind(f"nd:{name}|{dob}"))
    return MatchKeys(tuple(strong), tuple(pair), tuple(weak), tuple(values), ssn_key, ssn_pairs)


@settings(max_examples=300, deadline=None)
@given(
    family=NAMES,
    first=NAMES,
    birth=st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1))),
    ssn=st.sampled_from([None, "", "078-05-1121", "123-45-6788", "xxx-xx-1121"]),
)
def test_match_keys_are_the_plain_keys(
    family: str, first: str, birth: date | None, ssn: str | None
) -> None:
    ring = KeyRing.generate()
    rec = client("1", family=family, given=first, birth_date=birth, ssn=ssn)
    keys = match_keys(rec, ring.blind)
    assert keys == plain_match_keys(rec, lambda value: plain_blind(ring.index_key, value))
    nameless = replace(rec, names=())
    assert match_keys(nameless, ring.blind) == plain_match_keys(
        nameless, lambda value: plain_blind(ring.index_key, value)
    )
