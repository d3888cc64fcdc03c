"""Person identity across sources: which records are the same human being.

Rules (strongest first):

* a source identifier matches (HMIS PersonalID per implementation, an MRN per assigning
  authority), or a full, valid SSN matches → link — unless the SSN's person shares neither
  the record's name nor its birth date (a parent's SSN entered for a child, a mistyped
  digit): that is a conflict, not a match, since linking would let one person's consent
  release another's records;
* two of three agree — normalised full name, birth date, full SSN → link;
* anything conflicting (strong keys pointing at different persons, or several two-of-three
  candidates) or weaker (same name only, same birth date and family name) → a new person and
  an item on the review list; never an automatic merge.

A birth date known only to the year or month takes no part in matching (no key holds it),
and neither does a value its source marks as not full (HUD data quality 2: a partial,
street or code name; an approximate or partial SSN or birth date) or as unreliable (8, 9,
99: a value the client did not know, refused or was not asked for should be blank): an
approximate 1980-01-01 is shared by many people, and linking on it would let one person's
consent release another's records. An SSN is still checked against such a record: with its
name and birth date left out there is nothing to check it against, so it links only where a
pair key agrees, else the record goes to review. A name left out still finds its person in
a name search (a value-only key, never matched on).

Match keys are blind: the caller passes a keyed hash, so the store keeps no readable PII.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from hub.core.partial_dates import is_partial
from hub.core.records import Client

BlindIndex = Callable[[str], str]

_NON_LETTERS = re.compile(r"[^A-Z]")
_SSN_DIGITS = re.compile(r"\D")


def _fold(s: str) -> str:
    """The upper-case ASCII letters of a name part, accents folded."""
    if s.isascii():  # NFKD leaves ASCII as it is
        upper = s.upper()
        return upper if upper.isalpha() else _NON_LETTERS.sub("", upper)
    ascii_form = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return _NON_LETTERS.sub("", ascii_form.upper())


def _joined(family: str, first: str) -> str:
    return f"{family}|{first}" if family and first else ""


def normalise_name(family: str, given: Sequence[str]) -> str:
    """Upper-case ASCII letters of the first given name and the family name, accents folded."""
    return _joined(_fold(family), _fold(given[0] if given else ""))


def full_valid_ssn(ssn: str | None) -> str | None:
    """The nine digits of an SSN when it is full and could have been issued, else None."""
    if not ssn:
        return None
    digits = _SSN_DIGITS.sub("", ssn)
    if len(digits) != 9 or "x" in ssn.lower():
        return None
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(digits)) == 1 or digits in ("123456789", "078051120"):
        return None
    return digits


class MatchStrength(Enum):
    """How much a match key proves on its own."""

    STRONG = "strong"
    PAIR = "pair"
    WEAK = "weak"


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """The blind match keys of one client record, by strength."""

    strong: tuple[str, ...]
    pair: tuple[str, ...]
    weak: tuple[str, ...]
    value_only: tuple[str, ...]
    ssn: str = ""
    """The SSN's key (also in ``strong``); "" when the record has no full, valid SSN."""
    ssn_pairs: tuple[str, ...] = ()
    """The pair keys that hold the SSN with the name or with the birth date: a person
    carrying one shares the record's SSN *and* its name or birth date."""
    quality_withheld: bool = False
    """The record has a name or birth date left out of matching for its data quality: its
    SSN cannot be checked against them, so it links only where a pair key agrees (never on
    its own, as the SSN of a record with no name and no birth date does)."""

    def all(self) -> tuple[str, ...]:
        """Every key, to index under the person the record is linked to."""
        return self.strong + self.pair + self.weak + self.value_only


def identifier_key(system: str, value: str) -> str:
    """The plain (not yet blinded) key of a source identifier."""
    return f"id:{system}|{value}"


def identifier_value_key(value: str) -> str:
    """The plain key of an identifier value whatever its system (consents may omit it)."""
    return f"idv:{value}"


FULL_QUALITY = frozenset({"", "1"})
"""Data quality codes under which a name, SSN or birth date takes part in matching: HUD's
``1`` (full value reported) and ``""`` (the source gives no quality: HL7, FHIR, partner
CSV)."""


def match_keys(client: Client, blind: BlindIndex) -> MatchKeys:
    """The blind match keys of a client record (a name, SSN or birth date of a data quality
    other than :data:`FULL_QUALITY` makes none)."""
    strong: list[str] = []
    values: list[str] = []
    for ident in client.identifiers:
        if ident.value:
            strong.append(blind(identifier_key(ident.system, ident.value)))
            values.append(blind(identifier_value_key(ident.value)))
    name = ""
    family = ""  # the first name's family name, folded
    named = bool(client.names) and client.name_quality in FULL_QUALITY
    if client.names:
        n = client.names[0]
        family = _fold(n.family)
        name = _joined(family, _fold(n.given[0] if n.given else ""))
    searchable = name  # kept for name searches even when not for matching
    if not named:
        name = family = ""
    # Only a whole birth date makes keys. A year or a month is shared by far too many people
    # to link on (name + 1980 would merge two John Smiths, and one's consent would release
    # the other's records), and its first day must never pass for a real birth date: a
    # partial date counts here as no birth date, as it did before the hub kept them.
    dated = client.birth_date is not None and not is_partial(client.birth_date_precision)
    dob = (
        client.birth_date.isoformat()
        if client.birth_date is not None and dated and client.birth_date_quality in FULL_QUALITY
        else ""
    )
    withheld = (bool(client.names) and not named) or (dated and not dob)
    ssn = (full_valid_ssn(client.ssn) if client.ssn_quality in FULL_QUALITY else None) or ""
    ssn_key = blind(f"ssn:{ssn}") if ssn else ""
    if ssn_key:
        strong.append(ssn_key)
    ssn_pairs: list[str] = []
    if name and ssn:
        ssn_pairs.append(blind(f"ns:{name}|{ssn}"))
    if dob and ssn:
        ssn_pairs.append(blind(f"ds:{dob}|{ssn}"))
    pair = [blind(f"nd:{name}|{dob}")] if name and dob else []
    pair += ssn_pairs
    weak: list[str] = []
    if name:
        weak.append(blind(f"n:{name}"))
    if dob and named and client.names[0].family:
        weak.append(blind(f"df:{dob}|{_joined(family, 'X')}"))
    if searchable and not name:
        # A name of low quality still finds its person by name (FHIR Patient?name=); being
        # among the value-only keys, it never decides a link.
        values.append(blind(f"n:{searchable}"))
    return MatchKeys(
        tuple(strong),
        tuple(pair),
        tuple(weak),
        tuple(values),
        ssn_key,
        tuple(ssn_pairs),
        withheld,
    )


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """What to do with a client record: link to ``person`` (None: a new person), maybe review."""

    person: str | None
    review_candidates: tuple[str, ...] = ()
    reason: str = ""


def decide_link(keys: MatchKeys, found: dict[str, set[str]]) -> LinkDecision:
    """Decide a link from the persons that already carry each of the record's keys."""

    def persons(ks: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for k in ks:
            holders = found.get(k)
            if holders:
                out |= holders
        return out

    strong = persons([k for k in keys.strong if k != keys.ssn])
    shared_ssn: set[str] = set()
    if keys.ssn:
        ssn_holders = persons([keys.ssn])
        if keys.ssn_pairs or keys.quality_withheld:
            # A record with a name or birth date: the SSN links only to persons sharing one.
            agreeing = ssn_holders & persons(keys.ssn_pairs)
            shared_ssn = ssn_holders - agreeing
            ssn_holders = agreeing
        strong |= ssn_holders
    if len(strong) == 1:
        return LinkDecision(next(iter(strong)))
    if len(strong) > 1:
        return LinkDecision(None, tuple(sorted(strong)), "conflicting source identifiers")
    pair = persons(keys.pair)
    if len(pair) == 1:
        return LinkDecision(next(iter(pair)))
    if len(pair) > 1:
        return LinkDecision(None, tuple(sorted(pair)), "several persons match two of three")
    if shared_ssn:
        return LinkDecision(
            None, tuple(sorted(shared_ssn)), "SSN shared with a different name and birth date"
        )
    weak = persons(keys.weak)
    if weak:
        return LinkDecision(None, tuple(sorted(weak)), "weak match (name or birth date only)")
    return LinkDecision(None)
