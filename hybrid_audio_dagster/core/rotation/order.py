"""The pure layer of the rotation: :class:`PairOrder`, :class:`StreamOrder`,
:class:`FeistelPermutation` and :class:`KeySet` (no I/O, no Dagster).

The pair order
--------------
Let ``N`` = #names, ``M`` = #developers, ``L = N·M``. The larger dimension is the *major*
one (names on a tie), size ``n``; the other is the *minor* one, size ``m``; ``g = gcd(n, m)``
and ``l = lcm(n, m) = L / g``. Position ``i`` in ``[0, L)`` maps to slots::

    major slot x = i mod n
    minor slot y = (i + ⌊i / l⌋) mod m

and slots map to items through seeded permutations of the sorted names and developers.
This is the Latin-square "diagonal walk" generalised to ``n ≠ m``: inside block
``b = ⌊i / l⌋`` the pairs are ``(x, x + b)`` read modulo ``(n, m)``; by the Chinese
remainder theorem a block hits exactly the slot pairs with ``y − x ≡ b (mod g)``, and the
``g`` blocks hit the ``g`` residue classes, so every pair appears exactly once, whether
``n = m``, ``n ≠ m`` or ``g > 1``. Guarantees, within one cycle of the membership the cycle
was built from (each one is tested exactly as stated):

G1  Every pair appears exactly once in ``[0, L)``; :meth:`PairOrder.position_of` inverts it.
G2  Major sliding window: any ``n`` consecutive positions hold every major item once (so
    with ``N ≥ M``: no name reappears before all names had their turn, at any offset).
G3  Turns for both dimensions: each aligned block ``[k·m, (k+1)·m)`` holds every minor
    item once (``l`` is a multiple of ``m``) and each ``[k·n, (k+1)·n)`` every major item
    once. Hence, at every prefix, usage counts of names differ by at most 1 and so do
    counts of developers; at a cycle's end all are equal, so this turn-taking holds across
    cycles too while the datasets don't change.
G4  Minor sliding window: any ``m`` consecutive positions hold distinct minor items,
    except windows straddling one of the ``g − 1`` block starts ``b·l`` (b = 1..g−1), where
    the minor slot steps by 2 instead of 1 (both sequences cannot be periodic when
    ``g > 1``: two periodic sequences only produce ``l < L`` distinct pairs).
G5  Consecutive pairs never share the major item (``n ≥ 2``) and share the minor item only
    when unavoidable given G2: ``m = 1`` (every pair), or ``m = 2`` with ``n`` even, once,
    at position ``n``. (With ``m = 2`` never repeating means strict alternation, so
    positions ``i`` and ``i + n`` get the same minor item when ``n`` is even, while G2
    gives them the same major item: the same pair twice. G2 is kept, one repeat allowed.)
G6  Across a cycle boundary the first pair of the new cycle shares neither name nor
    developer with the last pair handed out before it (when that dimension has ≥ 2
    items): the permutation is rotated by one slot if it would (``avoid``).
G7  Deterministic: the order depends only on the key sets, ``str(seed)``, the cycle number
    and ``avoid``; SHA-2 and integer arithmetic only, so it is identical across
    processes, ``PYTHONHASHSEED`` values and platforms.
G8  Memory: the permutations are 8-round Feistel networks over ``[0, 2^b)``,
    ``2^b < 2n``, with cycle walking (expected < 2 evaluations), keyed by
    SHA-512(seed, cycle, label, size). Nothing proportional to ``L`` is ever built; the
    only O(N + M) data are the sorted key tuples themselves. (The shuffles are well mixed,
    not uniform over all ``n!`` orders: this is a schedule, not cryptography.)

Single-dimension streams (names, developers, scripts) are round robins over a seeded
permutation per stream cycle, with their own cursor and the same G6 rule, so no item
repeats before all others had their turn and a boundary never repeats an item.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from hybrid_audio_dagster.core.rotation.errors import DatasetError, RotationStateError

_KDF_TAG = "hybrid-audio/rotation/v1"
_M64 = (1 << 64) - 1
# even, so the left/right widths are back in place after the last round; 8 rather than 4
# because tiny domains (a handful of scripts or developers) mix poorly with 4 rounds
# (4 rounds over 7 items reach ~58% of the 5040 orders, 8 rounds all of them)
_FEISTEL_ROUNDS = 8


# --------------------------------------------------------------------------- pure layer


def seed_text(seed: str | int) -> str:
    # bool is an int subclass; True as a seed is almost certainly a bug
    if isinstance(seed, bool) or not isinstance(seed, (str, int)):
        raise TypeError(f"seed must be a str or an int, got {type(seed).__name__} {seed!r}")
    return str(seed)


def _round_keys(seed: str, cycle: int, label: str, size: int) -> tuple[int, ...]:
    """Eight 64-bit Feistel round keys from SHA-512 over an unambiguous JSON encoding."""
    material = json.dumps([_KDF_TAG, seed, cycle, label, size], ensure_ascii=True).encode("ascii")
    digest = hashlib.sha512(material).digest()
    return tuple(int.from_bytes(digest[j : j + 8], "big") for j in range(0, 8 * _FEISTEL_ROUNDS, 8))


class FeistelPermutation:
    """A keyed bijection of ``range(n)`` evaluated point-wise in O(1) memory.

    A balanced-as-possible Feistel network over ``b = bit_length(n - 1)`` bits (halves of
    ``⌊b/2⌋`` and ``⌈b/2⌉`` bits alternating roles), so the domain ``2^b`` is below ``2n``
    and cycle walking (re-encrypt until the value falls in range) needs fewer than two
    evaluations on average. The round function is the SplitMix64 finaliser of
    ``half ^ round_key``: fast integer arithmetic, well mixed even for tiny halves.
    """

    __slots__ = ("n", "_shift", "_rmask", "_rounds")

    def __init__(self, n: int, round_keys: Sequence[int]) -> None:
        if n < 0:
            raise ValueError(f"permutation size must be >= 0, got {n}")
        if len(round_keys) % 2:
            raise ValueError(f"need an even number of round keys, got {len(round_keys)}")
        self.n = n
        bits = max(0, (n - 1).bit_length())
        left, right = bits // 2, bits - bits // 2
        self._shift = right
        self._rmask = (1 << right) - 1
        # round j overwrites the half that currently sits on the left: left bits on even
        # rounds, right bits on odd ones (the halves swap places every round)
        self._rounds = tuple((k & _M64, (1 << (left if j % 2 == 0 else right)) - 1) for j, k in enumerate(round_keys))

    def _enc(self, x: int) -> int:
        hi, lo = x >> self._shift, x & self._rmask
        for key, mask in self._rounds:
            z = lo ^ key
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            hi, lo = lo, hi ^ ((z ^ (z >> 31)) & mask)
        return (hi << self._shift) | lo

    def _dec(self, y: int) -> int:
        hi, lo = y >> self._shift, y & self._rmask
        for key, mask in reversed(self._rounds):
            z = hi ^ key
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            hi, lo = lo ^ ((z ^ (z >> 31)) & mask), hi
        return (hi << self._shift) | lo

    def __call__(self, x: int) -> int:
        n = self.n
        if not 0 <= x < n:
            raise IndexError(f"{x} is outside the permutation domain [0, {n})")
        if n == 1:
            return 0
        y = self._enc(x)
        while y >= n:  # cycle walking: stays a bijection of [0, n)
            y = self._enc(y)
        return y

    def inverse(self, y: int) -> int:
        n = self.n
        if not 0 <= y < n:
            raise IndexError(f"{y} is outside the permutation domain [0, {n})")
        if n == 1:
            return 0
        x = self._dec(y)
        while x >= n:
            x = self._dec(x)
        return x


class KeySet(Sequence[str]):
    """An immutable sorted, de-duplicated set of item keys with a content fingerprint.

    The fingerprint is the SHA-256 of the canonical JSON array (ASCII, no spaces), which
    is also the byte content of the membership sidecar, so a sidecar verifies itself.
    """

    __slots__ = ("_keys", "_fingerprint", "_set")

    def __init__(self, keys: Iterable[str], *, what: str = "keys") -> None:
        if isinstance(keys, (str, bytes)):
            raise DatasetError(f"{what}: expected an iterable of keys, got a single value {keys!r}")
        unique: set[str] = set()
        for key in keys:
            if not isinstance(key, str) or not key:
                raise DatasetError(f"{what}: invalid key {key!r}; keys must be non-empty strings")
            unique.add(key)
        self._keys: tuple[str, ...] = tuple(sorted(unique))
        self._fingerprint = hashlib.sha256(self.canonical_bytes()).hexdigest()
        self._set: frozenset[str] | None = None

    @classmethod
    def coerce(cls, keys: Iterable[str], what: str) -> KeySet:
        return keys if isinstance(keys, KeySet) else cls(keys, what=what)

    @classmethod
    def from_canonical_bytes(cls, data: bytes, *, expected_fingerprint: str, source: str) -> KeySet:
        """Rebuild a key set from its sidecar bytes, refusing bytes whose hash differs."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_fingerprint:
            raise RotationStateError(f"{source}: content hash {actual[:12]}… does not match its name")
        try:
            keys = json.loads(data)
        except ValueError as exc:
            raise RotationStateError(f"{source}: not a JSON array of keys ({exc})") from exc
        ks = cls(keys, what=source)
        if ks._fingerprint != expected_fingerprint:  # not canonical (unsorted/duplicates)
            raise RotationStateError(f"{source}: keys are not in canonical sorted order")
        return ks

    def canonical_bytes(self) -> bytes:
        return json.dumps(self._keys, ensure_ascii=True, separators=(",", ":")).encode("ascii")

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def index(self, key: object, start: int = 0, stop: int | None = None) -> int:
        """Position of ``key`` in sorted order (binary search); ``ValueError`` if absent."""
        if isinstance(key, str):
            i = bisect_left(self._keys, key)
            if i < len(self._keys) and self._keys[i] == key:
                return i
        raise ValueError(f"{key!r} is not in this key set")

    def __contains__(self, key: object) -> bool:
        if self._set is None:
            self._set = frozenset(self._keys)
        return key in self._set

    def __getitem__(self, i):  # type: ignore[override]
        return self._keys[i]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySet) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"KeySet({len(self._keys)} keys, {self._fingerprint[:12]}…)"


class PairOrder:
    """The order of all name × developer pairs of one cycle (see the module docstring).

    ``avoid`` is the (name, developer) handed out just before this cycle; the cycle's
    first pair then shares neither with it when a dimension has ≥ 2 items (G6).
    """

    __slots__ = (
        "names",
        "developers",
        "seed",
        "cycle",
        "names_major",
        "length",
        "_n",
        "_m",
        "_g",
        "_l",
        "_inv",
        "_pn",
        "_pd",
        "_sn",
        "_sd",
    )

    def __init__(
        self,
        names: Iterable[str],
        developers: Iterable[str],
        *,
        seed: str | int,
        cycle: int,
        avoid: tuple[str, str] | None = None,
    ) -> None:
        self.names = KeySet.coerce(names, "names")
        self.developers = KeySet.coerce(developers, "developers")
        if not self.names or not self.developers:
            raise DatasetError(
                f"a pair cycle needs at least one name and one developer (got {len(self.names)} names, {len(self.developers)} developers)"
            )
        if cycle < 0:
            raise ValueError(f"cycle must be >= 0, got {cycle}")
        self.seed = seed_text(seed)
        self.cycle = cycle
        n_names, n_devs = len(self.names), len(self.developers)
        self.names_major = n_names >= n_devs
        n, m = (n_names, n_devs) if self.names_major else (n_devs, n_names)
        self._n, self._m = n, m
        self._g = math.gcd(n, m)
        self._l = n * m // self._g
        self.length = n * m
        # (n/g)^-1 mod (m/g), to solve the CRT in position_of; pow(x, -1, 1) == 0
        self._inv = pow(n // self._g, -1, m // self._g)
        # labels name the dimension, not its role, so a dimension's permutation doesn't
        # change just because the other one grew past it
        self._pn = FeistelPermutation(n_names, _round_keys(self.seed, cycle, "pairs/names", n_names))
        self._pd = FeistelPermutation(n_devs, _round_keys(self.seed, cycle, "pairs/developers", n_devs))
        self._sn = self._sd = 0
        if avoid is not None:
            # position 0 uses slot 0 in both dimensions; shifting by one slot keeps every
            # guarantee (it is just another bijection) and changes the first item
            if n_names >= 2 and self.names[self._pn(0)] == avoid[0]:
                self._sn = 1
            if n_devs >= 2 and self.developers[self._pd(0)] == avoid[1]:
                self._sd = 1

    def __len__(self) -> int:
        return self.length

    def slots_at(self, i: int) -> tuple[int, int]:
        """Indices into the sorted ``names`` and ``developers`` of the pair at position ``i``."""
        if not 0 <= i < self.length:
            raise IndexError(f"position {i} is outside the cycle [0, {self.length})")
        x = i % self._n
        y = (i + i // self._l) % self._m
        a, d = (x, y) if self.names_major else (y, x)
        return self._pn((a + self._sn) % len(self.names)), self._pd((d + self._sd) % len(self.developers))

    def pair_at(self, i: int) -> tuple[str, str]:
        """The (name, developer) at position ``i`` of the cycle; O(1) time and memory."""
        a, d = self.slots_at(i)
        return self.names[a], self.developers[d]

    def position_of(self, name: str, developer: str) -> int:
        """Inverse of :meth:`pair_at`; ``KeyError`` if either key is not in the cycle."""
        try:
            a = self.names.index(name)
            d = self.developers.index(developer)
        except ValueError:
            raise KeyError(f"pair ({name!r}, {developer!r}) is not in cycle {self.cycle}") from None
        a = (self._pn.inverse(a) - self._sn) % len(self.names)
        d = (self._pd.inverse(d) - self._sd) % len(self.developers)
        x, y = (a, d) if self.names_major else (d, a)
        n, m, g = self._n, self._m, self._g
        b = (y - x) % g  # the block whose diagonal holds (x, y)
        t = ((y - b - x) // g * self._inv) % (m // g)
        return b * self._l + x + n * t

    def pairs(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, str]]:
        """Lazily yield the pairs at positions ``[start, stop)``."""
        stop = self.length if stop is None else min(stop, self.length)
        for i in range(start, stop):
            yield self.pair_at(i)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.pairs()


class StreamOrder:
    """One cycle of a single-dimension round robin (scripts, or names/developers alone)."""

    __slots__ = ("keys", "seed", "cycle", "label", "length", "_p", "_s")

    def __init__(
        self,
        keys: Iterable[str],
        *,
        seed: str | int,
        cycle: int,
        label: str,
        avoid: str | None = None,
    ) -> None:
        self.keys = KeySet.coerce(keys, label)
        if not self.keys:
            raise DatasetError(f"{label}: a stream cycle needs at least one key")
        if cycle < 0:
            raise ValueError(f"cycle must be >= 0, got {cycle}")
        self.seed = seed_text(seed)
        self.cycle = cycle
        self.label = label
        self.length = len(self.keys)
        self._p = FeistelPermutation(self.length, _round_keys(self.seed, cycle, f"stream/{label}", self.length))
        self._s = 1 if avoid is not None and self.length >= 2 and self.keys[self._p(0)] == avoid else 0

    def __len__(self) -> int:
        return self.length

    def item_at(self, j: int) -> str:
        if not 0 <= j < self.length:
            raise IndexError(f"position {j} is outside the {self.label} cycle [0, {self.length})")
        return self.keys[self._p((j + self._s) % self.length)]

    def position_of(self, key: str) -> int:
        try:
            k = self.keys.index(key)
        except ValueError:
            raise KeyError(f"{key!r} is not in {self.label} cycle {self.cycle}") from None
        return (self._p.inverse(k) - self._s) % self.length

    def __iter__(self) -> Iterator[str]:
        return (self.item_at(j) for j in range(self.length))
