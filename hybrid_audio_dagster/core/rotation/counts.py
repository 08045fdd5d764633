"""How many pairs each script (template or template variant) was handed out with: the
per-variant counts of an A/B stream, read back from the audit trail (pure).

Each committed ``advance`` record carries its batch's assignments (name, developer, script,
cycle, position, …), so the counts need no state of their own and survive restarts exactly
as the trail does. Replays hand nothing out and are not counted; a record seen twice (by
``seq``) counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScriptCounts:
    """Pairs handed out per script: in total and per pair cycle."""

    total: Counter = field(default_factory=Counter)
    by_cycle: dict[int, Counter] = field(default_factory=dict)

    def in_cycle(self, cycle: int) -> dict[str, int]:
        return dict(sorted(self.by_cycle.get(cycle, Counter()).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": dict(sorted(self.total.items())),
            "by_cycle": {str(c): dict(sorted(n.items())) for c, n in sorted(self.by_cycle.items())},
        }


def script_counts(records: Iterable[dict[str, Any]]) -> ScriptCounts:
    """Count the scripts of every pair the ``advance`` records of an audit trail handed out."""
    out = ScriptCounts()
    seen: set[int] = set()
    for rec in records:
        if rec.get("event") != "advance" or rec.get("rotation") != "pairs":
            continue
        seq = rec.get("seq")
        if isinstance(seq, int):
            if seq in seen:
                continue
            seen.add(seq)
        for item in (rec.get("detail") or {}).get("items") or []:
            script, cycle = item[2], item[3]
            if script is None:
                continue
            out.total[script] += 1
            out.by_cycle.setdefault(int(cycle), Counter())[script] += 1
    return out
