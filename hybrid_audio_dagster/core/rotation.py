"""Deterministic, resumable rotation of name × developer pairs (and scripts).

A campaign does not send every combination at once: each day it takes the next batch of
pairs of a *cycle*, an order in which every name × developer pair appears exactly once.
This module has two layers, neither importing Dagster:

* a pure layer (:class:`PairOrder`, :class:`StreamOrder`, :class:`FeistelPermutation`)
  that computes the i-th item of a cycle in O(1) time and memory;
* a persistent layer (:class:`RotationStore`) holding cursors in a JSON state file,
  advancing them under an exclusive lock, with an audit trail (JSON lines).

Items are stable string keys (slugs such as ``"john"``, ``"hilton"``). Key sets are sorted
and de-duplicated first (:class:`KeySet`), so the order never depends on input list order.

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

Operations (:class:`RotationStore`)
-----------------------------------
* ``advance(k, run_key_basis=...)`` → :class:`Batch`; ``next_pair()`` is ``advance(1)``
  (the "generate pair" operation materialises what it returns). Scripts are drawn from
  the scripts stream per pair, per batch, or not at all (``script_mode``).
* ``preview(n)`` → lazy iterator of the next ``n`` assignments; never writes anything and
  equals the next ``advance(n)`` if nothing else advanced meanwhile.
* ``next_name()``, ``next_developer()``, ``next_script()`` advance single-dimension
  streams with their own cursors, so a name-only or developer-only task (say, rendering
  the next name stem) does not consume pairs; ``stream(kind, n)`` and
  ``script_stream(n)`` preview them.
* ``reset(reason=...)`` and ``seek(target, reason=...)`` move cursors on purpose, with the
  reason in the audit trail; ``status()``, ``batch_for(run_key)``, ``last_batch()`` and
  ``audit_records()`` read.

Persistent state, crashes and concurrency
-----------------------------------------
Every mutation is a transaction under an exclusive ``fcntl.flock`` on ``<state>.lock``:
read state → compute → write membership sidecars → atomically replace the state file
(fsync'd; *the commit*) → append the audit line → return. So

* two processes advancing at once are serialised and never hand out the same pair;
* a crash before the commit leaves the old state: nothing was handed out (the caller
  never got a result), the next advance hands out the same pairs;
* a crash after the commit but before the caller used the result is recovered by
  retrying with the same ``run_key_basis``: the remembered batch is returned again
  (exactly-once per run key; :meth:`RotationStore.last_batch` without one);
* a crash between the commit and the audit append is repaired by the next transaction,
  which appends the committed-but-missing record (the state keeps its ``last_event``).

flock needs a local filesystem (not NFS). Use one audit file per state file.

Dataset changes mid-cycle
-------------------------
A cycle keeps the order of the membership it started with (the sorted key lists are kept
in content-addressed sidecars ``<state>.members/<sha256>.json``). When the current
datasets differ: a pair whose name or developer was removed is *skipped* when its position
comes up (counted in ``Batch.skipped``, never handed out; if the key is back by then it is
handed out normally); new keys *wait for the next cycle*, which is built from the
datasets current when it starts (lazily, at the first take after the previous cycle
ends). If a whole dimension of the cycle is gone the rest of the cycle is skipped at
once. A new configured seed likewise applies from the next cycle, or at once via
:meth:`RotationStore.reset`. Skipping keeps G1 for the remaining pairs (none repeated,
none reordered) but windows among live items shrink; cost is about
``(N/N_live)·(M/M_live)`` position checks per handed-out pair.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import socket
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from .fsutil import atomic_write_text, file_lock

__all__ = [
    "Assignment",
    "Batch",
    "DatasetError",
    "FeistelPermutation",
    "KeySet",
    "MissingReasonError",
    "PairOrder",
    "ROTATIONS",
    "RotationError",
    "RotationStateError",
    "RotationStatus",
    "RotationStore",
    "RunKeyConflictError",
    "SeekError",
    "StreamOrder",
    "read_audit",
]

STATE_VERSION = 1
_KDF_TAG = "hybrid-audio/rotation/v1"
_M64 = (1 << 64) - 1
# even, so the left/right widths are back in place after the last round; 8 rather than 4
# because tiny domains (a handful of scripts or developers) mix poorly with 4 rounds
# (4 rounds over 7 items reach ~58% of the 5040 orders, 8 rounds all of them)
_FEISTEL_ROUNDS = 8

Rotation = Literal["pairs", "names", "developers", "scripts"]
ScriptMode = Literal["pair", "batch", "none"]
ROTATIONS: tuple[str, ...] = ("pairs", "names", "developers", "scripts")
_DIMS: dict[str, tuple[str, ...]] = {
    "pairs": ("names", "developers"),
    "names": ("names",),
    "developers": ("developers",),
    "scripts": ("scripts",),
}
T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class RotationError(Exception):
    """Base class of every error raised by the rotation engine."""


class DatasetError(RotationError, ValueError):
    """A dataset (names, developers, scripts) is empty or holds an invalid key."""


class RotationStateError(RotationError):
    """The state file or a membership sidecar is unreadable, corrupt or of another version."""


class RunKeyConflictError(RotationError):
    """A run key was reused for an advance with different parameters."""


class MissingReasonError(RotationError, ValueError):
    """reset/seek was called without a reason (the audit trail requires one)."""


class SeekError(RotationError, ValueError):
    """A seek target is outside the current cycle or not a member of it."""


# --------------------------------------------------------------------------- pure layer


def _seed_text(seed: str | int) -> str:
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
        self._rounds = tuple(
            (k & _M64, (1 << (left if j % 2 == 0 else right)) - 1) for j, k in enumerate(round_keys)
        )

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
        "names", "developers", "seed", "cycle", "names_major", "length",
        "_n", "_m", "_g", "_l", "_inv", "_pn", "_pd", "_sn", "_sd",
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
                f"a pair cycle needs at least one name and one developer "
                f"(got {len(self.names)} names, {len(self.developers)} developers)"
            )
        if cycle < 0:
            raise ValueError(f"cycle must be >= 0, got {cycle}")
        self.seed = _seed_text(seed)
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
        self.seed = _seed_text(seed)
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Assignment:
    """One handed-out pair with its position, and its script when scripts are assigned."""

    name: str
    developer: str
    script: str | None
    cycle: int
    position: int
    script_cycle: int | None = None
    script_position: int | None = None

    @property
    def pair(self) -> tuple[str, str]:
        return (self.name, self.developer)

    def to_list(self) -> list[Any]:
        return [self.name, self.developer, self.script, self.cycle, self.position,
                self.script_cycle, self.script_position]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> Assignment:
        return cls(*row)


@dataclass(frozen=True)
class Batch:
    """The result of one :meth:`RotationStore.advance` (committed before it is returned)."""

    seq: int
    run_key: str | None
    script_mode: str
    items: tuple[Assignment, ...]
    cycle_before: int
    cursor_before: int
    cycle_after: int
    cursor_after: int
    cycle_length: int  # length of ``cycle_after``
    skipped: int  # positions skipped because a key was removed from the datasets
    cycles_started: tuple[int, ...]
    replayed: bool = False  # True when a retry with the same run key got the stored batch

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [a.pair for a in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Assignment]:
        return iter(self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (run config, metadata, the audit trail)."""
        return {
            "seq": self.seq, "run_key": self.run_key, "script_mode": self.script_mode,
            "count": len(self.items),
            "cycle_before": self.cycle_before, "cursor_before": self.cursor_before,
            "cycle_after": self.cycle_after, "cursor_after": self.cursor_after,
            "cycle_length": self.cycle_length, "skipped": self.skipped,
            "cycles_started": list(self.cycles_started), "replayed": self.replayed,
            "items": [a.to_list() for a in self.items],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Batch:
        return cls(
            seq=d["seq"], run_key=d["run_key"], script_mode=d["script_mode"],
            items=tuple(Assignment.from_list(r) for r in d["items"]),
            cycle_before=d["cycle_before"], cursor_before=d["cursor_before"],
            cycle_after=d["cycle_after"], cursor_after=d["cursor_after"],
            cycle_length=d["cycle_length"], skipped=d["skipped"],
            cycles_started=tuple(d["cycles_started"]), replayed=d.get("replayed", False),
        )


@dataclass(frozen=True)
class RotationStatus:
    """Where a rotation stands (read-only snapshot)."""

    rotation: str
    seq: int
    cycle: int
    cursor: int
    cycle_length: int
    seed: str  # the seed of the current cycle
    configured_seed: str  # applies from the next cycle when different
    fingerprints: dict[str, str]  # membership of the current cycle, per dimension
    dataset_changed: bool  # the current datasets differ from the cycle's membership
    last: tuple[str, ...] | None  # the last item handed out by this rotation

    @property
    def remaining(self) -> int:
        """Positions left in the current cycle (some may be skipped if keys were removed)."""
        return self.cycle_length - self.cursor


# --------------------------------------------------------------------------- walker


class _Walker:
    """Walks one rotation forward from a state record.

    Shared by advance (its record is then committed) and preview (discarded), which is
    what makes a preview equal to the advances that follow it.
    """

    def __init__(
        self,
        rotation: str,
        rec: dict[str, Any] | None,
        current: dict[str, KeySet],
        seed: str,
        members: Callable[[str], KeySet],
    ) -> None:
        self.rotation = rotation
        self.dims = _DIMS[rotation]
        self.current = current
        self.seed = seed
        self._members = members
        self.skipped = 0
        self.started: list[int] = []
        if rec is None:
            self.rec = self._fresh(0, last=None)
            self.started.append(0)
        else:
            self.rec = copy.deepcopy(rec)
        self._load()

    def _fresh(self, cycle: int, last: list[str] | None) -> dict[str, Any]:
        return {
            "cycle": cycle,
            "cursor": 0,
            "seed": self.seed,
            "fps": {d: self.current[d].fingerprint for d in self.dims},
            "avoid": last,
            "last": last,
        }

    def _load(self) -> None:
        rec = self.rec
        members: list[KeySet] = []
        live: list[KeySet | None] = []
        for d in self.dims:
            fp, cur = rec["fps"][d], self.current[d]
            if fp == cur.fingerprint:
                members.append(cur)
                live.append(None)  # unchanged: every member is live, skip the lookups
            else:
                members.append(self._members(fp))
                live.append(cur)
        self._live = live
        avoid = rec.get("avoid")
        self.order: PairOrder | StreamOrder
        if self.rotation == "pairs":
            self.order = PairOrder(
                members[0], members[1], seed=rec["seed"], cycle=rec["cycle"],
                avoid=(avoid[0], avoid[1]) if avoid else None,
            )
        else:
            self.order = StreamOrder(
                members[0], seed=rec["seed"], cycle=rec["cycle"], label=self.rotation,
                avoid=avoid[0] if avoid else None,
            )
        # no member of some dimension left: nothing more of this cycle can be handed out
        self._dead = any(
            lv is not None and not any(k in lv for k in ks) for ks, lv in zip(members, live)
        )

    @property
    def length(self) -> int:
        return len(self.order)

    def _at(self, i: int) -> tuple[str, ...]:
        if isinstance(self.order, PairOrder):
            return self.order.pair_at(i)
        return (self.order.item_at(i),)

    def take(self) -> tuple[tuple[str, ...], int, int]:
        """Hand out the next live item: (keys, cycle, position)."""
        rec = self.rec
        while True:
            length = len(self.order)
            if self._dead and rec["cursor"] < length:
                self.skipped += length - rec["cursor"]
                rec["cursor"] = length
            if rec["cursor"] >= length:
                self._rollover()
                rec = self.rec
                continue
            i = rec["cursor"]
            rec["cursor"] = i + 1
            item = self._at(i)
            if any(lv is not None and k not in lv for k, lv in zip(item, self._live)):
                self.skipped += 1
                continue
            rec["last"] = list(item)
            return item, rec["cycle"], i

    def _rollover(self) -> None:
        # the new cycle is built from the datasets current now, so it always has live
        # items (the store refuses empty datasets) and the loop in take() terminates
        self.rec = self._fresh(self.rec["cycle"] + 1, last=self.rec.get("last"))
        self.started.append(self.rec["cycle"])
        self._load()


def _take_assignments(
    pairs: _Walker, scripts: _Walker | None, k: int | None, mode: str
) -> Iterator[Assignment]:
    """Yield ``k`` assignments (forever if ``k`` is None), drawing scripts per ``mode``."""
    batch_script: tuple[str | None, int | None, int | None] = (None, None, None)
    if mode == "batch" and scripts is not None:
        (s,), sc, sp = scripts.take()
        batch_script = (s, sc, sp)
    n = 0
    while k is None or n < k:
        (name, dev), cycle, pos = pairs.take()
        script, sc, sp = batch_script
        if mode == "pair" and scripts is not None:
            (script,), sc, sp = scripts.take()
        yield Assignment(name, dev, script, cycle, pos, sc, sp)
        n += 1


# --------------------------------------------------------------------------- store


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# memberships of past cycles by fingerprint: a 50,000-name sidecar costs ~10 ms to parse
_MEMBER_CACHE: OrderedDict[str, KeySet] = OrderedDict()
_MEMBER_CACHE_SIZE = 8
_MEMBER_CACHE_LOCK = threading.Lock()


class RotationStore:
    """Persistent cursors of the pair rotation and of the name/developer/script streams.

    ``names``/``developers``/``scripts`` are the datasets *now*; the state remembers the
    membership each cycle was built from (see "Dataset changes mid-cycle" above).
    ``seed`` is the configured seed; a change applies from the next cycle. The audit trail
    defaults to ``<state dir>/logs/rotation_audit.jsonl``. ``fsync=False`` trades
    durability on power loss (not on process crashes) for speed. ``remember_batches`` is
    how many run keys are remembered for idempotent retries.

    A Dagster schedule tick calls ``store.advance(k, run_key_basis=tick_key)`` and puts
    ``batch.to_dict()`` in the run config: a re-evaluated tick gets the same batch.
    """

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        names: Iterable[str],
        developers: Iterable[str],
        scripts: Iterable[str] = (),
        seed: str | int = 0,
        audit_path: str | os.PathLike[str] | None = None,
        remember_batches: int = 16,
        fsync: bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.state_path = Path(state_path)
        self.lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        self.members_dir = self.state_path.with_name(self.state_path.name + ".members")
        self.audit_path = (
            Path(audit_path) if audit_path is not None else self.state_path.parent / "logs" / "rotation_audit.jsonl"
        )
        self._current: dict[str, KeySet] = {
            "names": KeySet.coerce(names, "names"),
            "developers": KeySet.coerce(developers, "developers"),
            "scripts": KeySet.coerce(scripts, "scripts"),
        }
        for dim in ("names", "developers"):
            if not self._current[dim]:
                raise DatasetError(f"{dim}: the dataset is empty; a rotation needs at least one key")
        if remember_batches < 0:
            raise ValueError(f"remember_batches must be >= 0, got {remember_batches}")
        self.seed = _seed_text(seed)
        self.remember_batches = remember_batches
        self.fsync = fsync
        self._clock = clock
        self._audit_mark: tuple[int, int, int] | None = None  # (inode, size, seq) after our append

    @property
    def datasets(self) -> dict[str, KeySet]:
        return dict(self._current)

    # ------------------------------------------------------------------ public operations

    def advance(
        self,
        k: int = 1,
        *,
        run_key_basis: str | None = None,
        script_mode: ScriptMode | None = None,
        actor: str | None = None,
    ) -> Batch:
        """Hand out the next ``k`` pairs, committed before returning.

        ``script_mode``: ``"pair"`` draws a script per pair, ``"batch"`` one for the whole
        batch, ``"none"`` none; default ``"pair"`` if the store has scripts. With
        ``run_key_basis`` a retry returns the remembered batch instead of advancing
        (``replayed=True``); reusing the key with another ``k``/mode raises
        :class:`RunKeyConflictError`.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        mode = self._script_mode(script_mode)
        if run_key_basis is not None and (not isinstance(run_key_basis, str) or not run_key_basis):
            raise ValueError(f"run_key_basis must be a non-empty str, got {run_key_basis!r}")

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], Batch]:
            # returns (audit event, result); mutates ``state``
            if run_key_basis is not None:
                prior = self._remembered(state, run_key_basis)
                if prior is not None:
                    if len(prior.items) != k or prior.script_mode != mode:
                        raise RunKeyConflictError(
                            f"run key {run_key_basis!r} was used for an advance of {len(prior.items)} "
                            f"(scripts: {prior.script_mode}); now asked for {k} (scripts: {mode})"
                        )
                    replayed = replace(prior, replayed=True)
                    return {"event": "replay", "rotation": "pairs", "run_key": run_key_basis,
                            "detail": {"replay_of": prior.seq, **replayed.to_dict()}}, replayed
            rotations = state["rotations"]
            pairs = self._walker("pairs", rotations.get("pairs"))
            scripts = self._walker("scripts", rotations.get("scripts")) if mode != "none" else None
            before = (pairs.rec["cycle"], pairs.rec["cursor"]) if rotations.get("pairs") else (0, 0)
            items = tuple(_take_assignments(pairs, scripts, k, mode))
            rotations["pairs"] = pairs.rec
            if scripts is not None:
                rotations["scripts"] = scripts.rec
            batch = Batch(
                seq=seq, run_key=run_key_basis, script_mode=mode, items=items,
                cycle_before=before[0], cursor_before=before[1],
                cycle_after=pairs.rec["cycle"], cursor_after=pairs.rec["cursor"],
                cycle_length=pairs.length, skipped=pairs.skipped,
                cycles_started=tuple(pairs.started),
            )
            state["last_batch"] = batch.to_dict()
            if run_key_basis is not None and self.remember_batches:
                remembered = [e for e in state["batches"] if e[0] != run_key_basis]
                remembered.append([run_key_basis, batch.to_dict()])
                state["batches"] = remembered[-self.remember_batches :]
            detail = batch.to_dict()
            if scripts is not None:
                detail["script_skipped"] = scripts.skipped
                detail["script_cycles_started"] = scripts.started
            return {"event": "advance", "rotation": "pairs", "run_key": run_key_basis, "detail": detail}, batch

        return self._transact(op, actor=actor)

    def next_pair(self, *, run_key_basis: str | None = None, actor: str | None = None) -> Assignment:
        """Advance by one pair (the "generate pair" operation hands it to materialisation)."""
        return self.advance(1, run_key_basis=run_key_basis, actor=actor).items[0]

    def take(self, rotation: Literal["names", "developers", "scripts"], count: int = 1, *,
             actor: str | None = None) -> list[str]:
        """Advance a single-dimension stream by ``count`` and return its items."""
        if rotation not in ("names", "developers", "scripts"):
            raise ValueError(f"take() works on the names/developers/scripts streams, not {rotation!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        self._require(rotation)

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], list[str]]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            before = (walker.rec["cycle"], walker.rec["cursor"]) if prior else (0, 0)
            taken = [walker.take() for _ in range(count)]
            state["rotations"][rotation] = walker.rec
            detail = {
                "cycle_before": before[0], "cursor_before": before[1],
                "cycle_after": walker.rec["cycle"], "cursor_after": walker.rec["cursor"],
                "skipped": walker.skipped, "cycles_started": walker.started,
                "items": [[key, c, p] for (key,), c, p in taken],
            }
            return {"event": "take", "rotation": rotation, "detail": detail}, [key for (key,), _, _ in taken]

        return self._transact(op, actor=actor)

    def next_name(self, *, actor: str | None = None) -> str:
        """Advance the names stream (independent of the pair rotation)."""
        return self.take("names", 1, actor=actor)[0]

    def next_developer(self, *, actor: str | None = None) -> str:
        """Advance the developers stream (independent of the pair rotation)."""
        return self.take("developers", 1, actor=actor)[0]

    def next_script(self, *, actor: str | None = None) -> str:
        """Advance the scripts stream (the one :meth:`advance` draws scripts from)."""
        return self.take("scripts", 1, actor=actor)[0]

    def preview(self, n: int | None, *, script_mode: ScriptMode | None = None) -> Iterator[Assignment]:
        """Lazily yield the next ``n`` assignments (endless if None) without advancing.

        The state is read once under a shared lock; the result equals what
        ``advance(n, script_mode=...)`` would return if nothing else advanced meanwhile.
        """
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"n must be a non-negative int or None, got {n!r}")
        mode = self._script_mode(script_mode)
        with self._lock(exclusive=False):
            rotations = self._read_state()["rotations"]
            pairs = self._walker("pairs", rotations.get("pairs"))
            scripts = self._walker("scripts", rotations.get("scripts")) if mode != "none" else None
        return _take_assignments(pairs, scripts, n, mode)

    def stream(self, rotation: Literal["names", "developers", "scripts"], n: int | None) -> Iterator[str]:
        """Lazily yield the next ``n`` items of a single-dimension stream without advancing."""
        if rotation not in ("names", "developers", "scripts"):
            raise ValueError(f"stream() works on the names/developers/scripts streams, not {rotation!r}")
        self._require(rotation)
        with self._lock(exclusive=False):
            walker = self._walker(rotation, self._read_state()["rotations"].get(rotation))

        def gen() -> Iterator[str]:
            i = 0
            while n is None or i < n:
                yield walker.take()[0][0]
                i += 1

        return gen()

    def script_stream(self, n: int | None) -> Iterator[str]:
        """The next ``n`` scripts, without advancing."""
        return self.stream("scripts", n)

    def reset(
        self,
        *,
        reason: str,
        rotation: Rotation = "pairs",
        cycle: int | None = None,
        actor: str | None = None,
    ) -> RotationStatus:
        """Abandon the current cycle and start ``cycle`` (default: the next) at cursor 0.

        The new cycle uses the current datasets and the configured seed. Pairs not yet
        handed out in the abandoned cycle are dropped; the audit trail records ``reason``.
        """
        self._check_reason(reason)
        self._check_rotation(rotation)
        self._require(rotation)
        if cycle is not None and (not isinstance(cycle, int) or cycle < 0):
            raise ValueError(f"cycle must be a non-negative int, got {cycle!r}")

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], None]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            before = {"cycle": walker.rec["cycle"], "cursor": walker.rec["cursor"]} if prior else None
            target = cycle if cycle is not None else (walker.rec["cycle"] + 1 if prior else 0)
            rec = walker._fresh(target, last=walker.rec.get("last"))
            state["rotations"][rotation] = rec
            detail = {"before": before, "after": {"cycle": target, "cursor": 0}, "seed": self.seed,
                      "fingerprints": rec["fps"]}
            return {"event": "reset", "rotation": rotation, "reason": reason, "detail": detail}, None

        self._transact(op, actor=actor)
        return self.status(rotation)

    def seek(
        self,
        target: int | str | tuple[str, str],
        *,
        reason: str,
        rotation: Rotation = "pairs",
        actor: str | None = None,
    ) -> RotationStatus:
        """Move the cursor of the current cycle to a position, or to where an item is.

        ``target`` is a position in ``[0, cycle_length]``, a (name, developer) for the pair
        rotation or a key for a stream. Moving back hands pairs out again and moving
        forward skips them, deliberately: the audit trail records ``reason``.
        """
        self._check_reason(reason)
        self._check_rotation(rotation)
        self._require(rotation)

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], None]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            order = walker.order
            if isinstance(target, bool) or not isinstance(target, (int, str, tuple)):
                raise SeekError(f"seek target must be a position, a key or a pair, got {target!r}")
            try:
                if isinstance(target, int):
                    position = target
                elif isinstance(order, PairOrder) and isinstance(target, tuple) and len(target) == 2:
                    position = order.position_of(target[0], target[1])
                elif isinstance(order, StreamOrder) and isinstance(target, str):
                    position = order.position_of(target)
                else:
                    raise SeekError(f"target {target!r} does not fit the {rotation} rotation")
            except KeyError as exc:
                raise SeekError(f"cannot seek {rotation}: {exc.args[0]}") from None
            if not 0 <= position <= len(order):
                raise SeekError(
                    f"position {position} is outside cycle {walker.rec['cycle']} of {rotation} "
                    f"(valid: 0..{len(order)})"
                )
            before = {"cycle": walker.rec["cycle"], "cursor": walker.rec["cursor"]}
            walker.rec["cursor"] = position
            state["rotations"][rotation] = walker.rec
            detail = {"before": before, "after": {"cycle": walker.rec["cycle"], "cursor": position},
                      "target": list(target) if isinstance(target, tuple) else target}
            return {"event": "seek", "rotation": rotation, "reason": reason, "detail": detail}, None

        self._transact(op, actor=actor)
        return self.status(rotation)

    def status(self, rotation: Rotation = "pairs") -> RotationStatus:
        """A read-only snapshot of one rotation (cycle 0 at cursor 0 before any advance)."""
        self._check_rotation(rotation)
        self._require(rotation)
        with self._lock(exclusive=False):
            state = self._read_state()
            walker = self._walker(rotation, state["rotations"].get(rotation))
        rec = walker.rec
        fps = dict(rec["fps"])
        return RotationStatus(
            rotation=rotation, seq=state["seq"], cycle=rec["cycle"], cursor=rec["cursor"],
            cycle_length=walker.length, seed=rec["seed"], configured_seed=self.seed,
            fingerprints=fps,
            dataset_changed=any(fps[d] != self._current[d].fingerprint for d in fps),
            last=tuple(rec["last"]) if rec.get("last") else None,
        )

    def batch_for(self, run_key: str) -> Batch | None:
        """The remembered batch of ``run_key`` (None if unknown or forgotten)."""
        with self._lock(exclusive=False):
            return self._remembered(self._read_state(), run_key)

    def last_batch(self) -> Batch | None:
        """The last committed advance, to recover a batch lost by a crashed caller."""
        with self._lock(exclusive=False):
            last = self._read_state().get("last_batch")
        return Batch.from_dict(last) if last else None

    def audit_records(self) -> list[dict[str, Any]]:
        """The audit trail, after appending a record a crash may have left out."""
        with self._lock(exclusive=True):
            self._repair_audit(self._read_state())
        return read_audit(self.audit_path)

    # ------------------------------------------------------------------ internals

    def _script_mode(self, script_mode: str | None) -> str:
        if script_mode is None:
            return "pair" if self._current["scripts"] else "none"
        if script_mode not in ("pair", "batch", "none"):
            raise ValueError(f"script_mode must be 'pair', 'batch' or 'none', got {script_mode!r}")
        if script_mode != "none":
            self._require("scripts")
        return script_mode

    def _require(self, rotation: str) -> None:
        for dim in _DIMS[rotation]:
            if not self._current[dim]:
                raise DatasetError(f"{dim}: the dataset is empty; nothing to rotate")

    @staticmethod
    def _check_reason(reason: str) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise MissingReasonError("reset/seek need a non-empty reason for the audit trail")

    @staticmethod
    def _check_rotation(rotation: str) -> None:
        if rotation not in ROTATIONS:
            raise ValueError(f"unknown rotation {rotation!r}; expected one of {', '.join(ROTATIONS)}")

    def _walker(self, rotation: str, rec: dict[str, Any] | None) -> _Walker:
        return _Walker(rotation, rec, self._current, self.seed, self._load_members)

    def _remembered(self, state: dict[str, Any], run_key: str) -> Batch | None:
        for key, record in reversed(state["batches"]):
            if key == run_key:
                return Batch.from_dict(record)
        return None

    def _lock(self, *, exclusive: bool):
        return file_lock(self.lock_path, exclusive=exclusive)

    def _read_state(self) -> dict[str, Any]:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return {"version": STATE_VERSION, "seq": 0, "rotations": {}, "batches": [],
                    "last_batch": None, "last_event": None}
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise RotationStateError(f"{self.state_path}: corrupt rotation state ({exc})") from exc
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise RotationStateError(
                f"{self.state_path}: unsupported rotation state version {version!r} (expected {STATE_VERSION})"
            )
        return state

    def _load_members(self, fp: str) -> KeySet:
        for ks in self._current.values():
            if ks.fingerprint == fp:
                return ks
        with _MEMBER_CACHE_LOCK:
            cached = _MEMBER_CACHE.get(fp)
            if cached is not None:
                _MEMBER_CACHE.move_to_end(fp)
                return cached
        path = self.members_dir / f"{fp}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RotationStateError(
                f"{path}: membership of the current cycle is missing; restore it or reset the rotation"
            ) from None
        ks = KeySet.from_canonical_bytes(data, expected_fingerprint=fp, source=str(path))
        with _MEMBER_CACHE_LOCK:
            _MEMBER_CACHE[fp] = ks
            while len(_MEMBER_CACHE) > _MEMBER_CACHE_SIZE:
                _MEMBER_CACHE.popitem(last=False)
        return ks

    def _referenced(self, state: dict[str, Any]) -> set[str]:
        return {fp for rec in state["rotations"].values() for fp in rec["fps"].values()}

    def _write_sidecars(self, state: dict[str, Any]) -> None:
        # before the commit, so a committed state never points at a missing membership
        for fp in self._referenced(state):
            path = self.members_dir / f"{fp}.json"
            if path.exists():
                continue
            source = next((ks for ks in self._current.values() if ks.fingerprint == fp), None)
            if source is None:  # pragma: no cover - old fingerprints already have sidecars
                raise RotationStateError(f"{path}: membership missing and not in the current datasets")
            atomic_write_text(path, source.canonical_bytes().decode("ascii"), fsync=self.fsync)

    def _prune(self, state: dict[str, Any]) -> None:
        # under the exclusive lock; readers hold the shared lock while loading sidecars
        referenced = self._referenced(state)
        if self.members_dir.is_dir():
            for path in self.members_dir.iterdir():
                if path.suffix == ".json" and path.stem not in referenced:
                    path.unlink(missing_ok=True)
                elif path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)  # left by a crash inside atomic_write
        for path in self.state_path.parent.glob(f".{self.state_path.name}.*.tmp"):
            path.unlink(missing_ok=True)

    def _write_state(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, ensure_ascii=True, separators=(",", ":"))
        atomic_write_text(self.state_path, text, fsync=self.fsync)
        if self.fsync:
            # make the rename itself durable, not just the file's bytes
            dfd = os.open(self.state_path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _transact(self, op: Callable[[dict[str, Any], int], tuple[dict[str, Any], T]], *,
                  actor: str | None) -> T:
        """Run ``op(state, seq) -> (event, result)`` as one locked, committed, audited step."""
        with self._lock(exclusive=True):
            state = self._read_state()
            self._repair_audit(state)
            seq = state["seq"] + 1
            event, result = op(state, seq)  # op mutates ``state``; raising aborts cleanly
            record: dict[str, Any] = {  # "seq" first: the commit order, readable at a glance
                "seq": seq,
                "ts": self._clock().isoformat(),
                "event": event["event"],
                "rotation": event["rotation"],
                "reason": event.get("reason"),
                "run_key": event.get("run_key"),
                "actor": actor,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "configured_seed": self.seed,
                "detail": event["detail"],
            }
            state["seq"] = seq
            state["last_event"] = record
            self._write_sidecars(state)
            self._write_state(state)  # the commit point
            self._append_audit(record)
            self._prune(state)
            return result

    # ------------------------------------------------------------------ audit trail

    def _repair_audit(self, state: dict[str, Any]) -> None:
        last = state.get("last_event")
        if last and self._last_audit_seq() < last["seq"]:
            self._append_audit(last)

    def _last_audit_seq(self) -> int:
        try:
            st = os.stat(self.audit_path)
        except FileNotFoundError:
            return 0
        if self._audit_mark is not None and self._audit_mark[:2] == (st.st_ino, st.st_size):
            return self._audit_mark[2]  # nobody appended since our own last append
        with open(self.audit_path, "rb") as f:
            for line in _lines_backwards(f):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn line from a crash mid-append
                if isinstance(record, dict) and isinstance(record.get("seq"), int):
                    return record["seq"]
        return 0

    def _append_audit(self, record: dict[str, Any]) -> None:
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.audit_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a torn line so ours stays parseable
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
            self._audit_mark = (st.st_ino, st.st_size, record["seq"])
        finally:
            os.close(fd)


def _lines_backwards(f: Any, chunk: int = 65536) -> Iterator[bytes]:
    """Yield the non-empty lines of a binary file, last first, reading from the end."""
    f.seek(0, os.SEEK_END)
    pos = f.tell()
    tail = b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
        parts = tail.split(b"\n")
        tail = parts[0]  # may be the end of a line that starts in an earlier chunk
        for line in reversed(parts[1:]):
            if line.strip():
                yield line
    if tail.strip():
        yield tail


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse an audit trail, skipping torn lines; records are in commit (``seq``) order."""
    records: list[dict[str, Any]] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return records
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
