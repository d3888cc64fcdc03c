"""A compact dictionary from record ids to a few distinct values (the import's state).

An import keeps one small value per client, per enrollment and per household of the export
(an owner, an entry date, a head-of-household count). As a ``dict`` that costs about 75
bytes an id — 75 MB per million — whatever the value. HMIS ids are mostly integers handed
out in sequence, so :class:`IdMap` keeps the values of integer ids lying close together in
one array of 4-byte codes (a code names one of the map's distinct values), and any other id
in a plain ``dict``. It behaves as the ``dict`` would, for the operations it offers, except
that values equal under ``==`` are stored once (a lookup returns the first one stored) and
that iteration lists the array's ids first. Sparse or non-integer ids cost what the ``dict``
costs.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar, overload

V = TypeVar("V", bound=Hashable)
D = TypeVar("D")

Key = int | str

_ABSENT = -1
_SLACK = 1 << 16
"""Ids may spread over this many more places than there are ids (plus 16 per id) before
the array stops growing: beyond that an id goes to the dict."""


class IdMap(Generic[V]):
    """``dict[int | str, V]`` for ids, compact when integer ids are dense."""

    __slots__ = ("_base", "_code_of", "_codes", "_count", "_loose", "_other", "_values")

    def __init__(self) -> None:
        self._base = 0
        self._codes = array("i")
        self._count = 0  # ids held in the array
        self._other: dict[Key, V] = {}
        self._loose = 0  # integer ids in the dict
        self._values: list[V] = []
        self._code_of: dict[V, int] = {}

    def __len__(self) -> int:
        return self._count + len(self._other)

    def __contains__(self, key: object) -> bool:
        if type(key) is int:
            i = key - self._base
            if 0 <= i < len(self._codes):
                return self._codes[i] != _ABSENT
        return key in self._other

    @overload
    def get(self, key: Key) -> V | None: ...

    @overload
    def get(self, key: Key, default: D) -> V | D: ...

    def get(self, key: Key, default: object = None) -> object:
        """The value of ``key``, else ``default``."""
        if type(key) is int:
            i = key - self._base
            if 0 <= i < len(self._codes):
                code = self._codes[i]
                return default if code == _ABSENT else self._values[code]
        return self._other.get(key, default)

    def __getitem__(self, key: Key) -> V:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __setitem__(self, key: Key, value: V) -> None:
        code = self._code_of.get(value)
        if code is None:
            code = self._code_of[value] = len(self._values)
            self._values.append(value)
        else:
            value = self._values[code]  # the one stored (see the module docstring)
        if type(key) is int:
            i = key - self._base
            codes = self._codes
            if not 0 <= i < len(codes):
                if not self._grow(key):
                    if key not in self._other:
                        self._loose += 1
                    self._other[key] = value
                    return
                i = key - self._base
                codes = self._codes
            if codes[i] == _ABSENT:
                self._count += 1
            codes[i] = code
            return
        self._other[key] = value

    def __delitem__(self, key: Key) -> None:
        if type(key) is int:
            i = key - self._base
            if 0 <= i < len(self._codes) and self._codes[i] != _ABSENT:
                self._codes[i] = _ABSENT
                self._count -= 1
                return
            if key in self._other:
                self._loose -= 1
        del self._other[key]

    def __iter__(self) -> Iterator[Key]:
        base = self._base
        for i, code in enumerate(self._codes):
            if code != _ABSENT:
                yield base + i
        yield from list(self._other)

    def keys(self) -> Iterator[Key]:
        """The ids (the array's in id order, then the others)."""
        return iter(self)

    def items(self) -> Iterator[tuple[Key, V]]:
        """(id, value) pairs, as :meth:`keys` orders them."""
        base, values = self._base, self._values
        for i, code in enumerate(self._codes):
            if code != _ABSENT:
                yield base + i, values[code]
        yield from list(self._other.items())

    def _grow(self, key: int) -> bool:
        """Widen the array to hold ``key`` when the ids stay dense enough; moves the dict's
        integer ids that the wider array covers into it."""
        codes = self._codes
        size = len(codes)
        if not size:
            low, high = key, key + 1
        else:
            low = min(self._base, key)
            high = max(self._base + size, key + 1)
        if high - low > 16 * (len(self) + 1) + _SLACK:
            return False
        # Grow by at least doubling (amortised O(1) per id), towards the side that needs it.
        if size:
            if key < self._base:
                low = min(low, self._base - size)
            else:
                high = max(high, self._base + 2 * size)
        else:
            high = key + 1024
        grown = array("i", [_ABSENT]) * (high - low)
        start = self._base - low if size else 0
        grown[start : start + size] = codes
        self._codes, self._base = grown, low
        if self._loose:
            moved = [k for k in self._other if type(k) is int and low <= k < high]
            for k in moved:
                grown[k - low] = self._code_of[self._other.pop(k)]
            self._count += len(moved)
            self._loose -= len(moved)
        return True


_MISSING = object()


def ck(value: str) -> int | str:
    """A compact dictionary key for an id: canonical decimal ids become ints."""
    if (
        value.isdigit()
        and value.isascii()
        and len(value) < 19
        and (value[0] != "0" or len(value) == 1)
    ):
        return int(value)
    return value
