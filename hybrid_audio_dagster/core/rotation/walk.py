"""Walking one rotation forward from its state record (:class:`Walker`), shared by
:meth:`~.store.RotationStore.advance` and :meth:`~.store.RotationStore.preview`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, Literal

from hybrid_audio_dagster.core.rotation.batch import Assignment
from hybrid_audio_dagster.core.rotation.order import KeySet, PairOrder, StreamOrder

Rotation = Literal["pairs", "names", "developers", "scripts"]
ScriptMode = Literal["pair", "batch", "none"]
ROTATIONS: tuple[str, ...] = ("pairs", "names", "developers", "scripts")
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "pairs": ("names", "developers"),
    "names": ("names",),
    "developers": ("developers",),
    "scripts": ("scripts",),
}


# --------------------------------------------------------------------------- walker


class Walker:
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
        self.dims = DIMENSIONS[rotation]
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
                members[0],
                members[1],
                seed=rec["seed"],
                cycle=rec["cycle"],
                avoid=(avoid[0], avoid[1]) if avoid else None,
            )
        else:
            self.order = StreamOrder(
                members[0],
                seed=rec["seed"],
                cycle=rec["cycle"],
                label=self.rotation,
                avoid=avoid[0] if avoid else None,
            )
        # no member of some dimension left: nothing more of this cycle can be handed out
        self._dead = any(lv is not None and not any(k in lv for k in ks) for ks, lv in zip(members, live))

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


def take_assignments(pairs: Walker, scripts: Walker | None, k: int | None, mode: str) -> Iterator[Assignment]:
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
