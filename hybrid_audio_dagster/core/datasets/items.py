"""The dataset value types: an accepted :class:`DatasetItem`, a refused :class:`Reject`, and
the :class:`DatasetResult` of a normalisation with its row-order-independent fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetItem:
    """An accepted value: ``key`` is the slug, ``display`` the text that will be spoken.

    ``pronunciation`` is the row's own (validated, canonical: a respelling or ``/IPA/``);
    ``say`` the substitutions its stems apply (its own pronunciation, else the lexicon's
    words it holds) as ``(text, pronunciation)`` pairs. Slugs, paths and metadata use
    ``display`` only. Both are left out of :meth:`to_dict` when empty.
    """

    key: str
    display: str
    row: int  # 1-based row/line/item number in the source
    pronunciation: str | None = None
    say: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "display": self.display, "row": self.row}
        if self.pronunciation:
            d["pronunciation"] = self.pronunciation
        if self.say:
            d["say"] = [list(s) for s in self.say]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetItem:
        say = tuple((str(t), str(p)) for t, p in d.get("say") or ())
        return cls(d["key"], d["display"], d["row"], d.get("pronunciation"), say)


@dataclass(frozen=True)
class Reject:
    """A refused value. ``value`` is an escaped, truncated preview (safe to print/log)."""

    row: int
    value: str
    reason: str  # machine code, e.g. "duplicate", "formula_injection"
    message: str  # human explanation naming the problem
    duplicate_of: int | None = None  # row of the first occurrence, for reason "duplicate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetResult:
    """Outcome of :func:`normalize_items`. Items are in source order; rejects by row."""

    kind: str
    source: str
    items: tuple[DatasetItem, ...]
    rejects: tuple[Reject, ...] = ()
    fingerprint: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", dataset_fingerprint(self.kind, self.items))

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    def by_key(self) -> dict[str, DatasetItem]:
        return {item.key: item for item in self.items}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "items": [i.to_dict() for i in self.items],
            "rejects": [r.to_dict() for r in self.rejects],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetResult:
        return cls(
            kind=data["kind"],
            source=data["source"],
            items=tuple(DatasetItem.from_dict(i) for i in data["items"]),
            rejects=tuple(Reject(**r) for r in data.get("rejects", ())),
        )


def dataset_fingerprint(kind: str, items: Iterable[DatasetItem]) -> str:
    """sha256 of the kind and the sorted (key, display) pairs: independent of row order.
    An item's pronunciations join its pair only when it has some (plain lists keep theirs)."""
    payload = json.dumps(
        {"kind": kind, "items": sorted([i.key, i.display] + ([[list(s) for s in i.say]] if i.say else []) for i in items)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
