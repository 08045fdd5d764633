"""The results of the rotation: :class:`Assignment`, :class:`Batch`, :class:`RotationStatus`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


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
        return [self.name, self.developer, self.script, self.cycle, self.position, self.script_cycle, self.script_position]

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
            "seq": self.seq,
            "run_key": self.run_key,
            "script_mode": self.script_mode,
            "count": len(self.items),
            "cycle_before": self.cycle_before,
            "cursor_before": self.cursor_before,
            "cycle_after": self.cycle_after,
            "cursor_after": self.cursor_after,
            "cycle_length": self.cycle_length,
            "skipped": self.skipped,
            "cycles_started": list(self.cycles_started),
            "replayed": self.replayed,
            "items": [a.to_list() for a in self.items],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Batch:
        return cls(
            seq=d["seq"],
            run_key=d["run_key"],
            script_mode=d["script_mode"],
            items=tuple(Assignment.from_list(r) for r in d["items"]),
            cycle_before=d["cycle_before"],
            cursor_before=d["cursor_before"],
            cycle_after=d["cycle_after"],
            cursor_after=d["cursor_after"],
            cycle_length=d["cycle_length"],
            skipped=d["skipped"],
            cycles_started=tuple(d["cycles_started"]),
            replayed=d.get("replayed", False),
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
