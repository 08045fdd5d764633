"""The stems a set of slots needs, found or synthesized: one TTS call per distinct signature.

:func:`plan_synthesis` groups slots by signature and looks each one up (records, then the
store); what is not found is what a run would send, and :attr:`SynthesisPlan.chars` is the
estimate the spend guard sees before anything is billed. :func:`synthesize` then obtains the
missing stems concurrently; a failure of one stem never loses the others (each is stored as
soon as it is made), and is reported per stem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.stems.index import Slot
from hybrid_audio_dagster.core.stems.store import StemOutcome, StemRecord
from hybrid_audio_dagster.core.tts.base import TTSError


@dataclass
class SynthesisPlan:
    """Slots by signature, the stems already stored, and those a run must synthesize."""

    by_signature: dict[str, list[Slot]]
    known: dict[str, StemRecord]
    to_make: list[str]

    @property
    def chars(self) -> int:
        """Characters the missing stems would send to the engine (the TTS cost)."""
        return sum(len(self.by_signature[sig][0].text) for sig in self.to_make)

    @property
    def pronunciations(self) -> tuple[Say, ...]:
        """Every pronunciation the missing stems use (Cartesia prepares them before the first request)."""
        return tuple(sorted({x for sig in self.to_make for x in self.by_signature[sig][0].say}))


@dataclass
class SynthesisResult:
    """Every signature's outcome (found or made), and the stems that failed, with why."""

    outcomes: dict[str, StemOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def tts_calls(self) -> int:
        return sum(1 for o in self.outcomes.values() if not o.cache_hit)

    @property
    def chars_sent(self) -> int:
        return sum(o.chars_sent for o in self.outcomes.values())


def plan_synthesis(slots: list[Slot], lookup: Callable[[str, str], StemRecord | None], *, force: bool = False) -> SynthesisPlan:
    """Group ``slots`` by signature and look each up (``lookup(signature, engine)``);
    ``force`` treats every stem as missing."""
    by_signature: dict[str, list[Slot]] = {}
    for s in slots:
        by_signature.setdefault(s.signature, []).append(s)
    found = {sig: None if force else lookup(sig, group[0].engine) for sig, group in by_signature.items()}
    return SynthesisPlan(
        by_signature, {sig: rec for sig, rec in found.items() if rec is not None}, [sig for sig, rec in found.items() if rec is None]
    )


def synthesize(plan: SynthesisPlan, obtain: Callable[[Slot], StemOutcome], *, max_workers: int) -> SynthesisResult:
    """Obtain every missing stem of ``plan`` (``obtain`` stores it as soon as it is made) on
    ``max_workers`` threads; the known stems count as cache hits."""
    result = SynthesisResult(outcomes={sig: StemOutcome(rec, True, 0) for sig, rec in plan.known.items()})

    def work(sig: str) -> tuple[str, StemOutcome | str]:
        first = plan.by_signature[sig][0]
        try:
            return sig, obtain(first)
        except (TTSError, AudioError, OSError, ValueError) as exc:
            return sig, f"{first.partition} {first.slot} {first.text[:40]!r}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        for sig, outcome in pool.map(work, plan.to_make):
            if isinstance(outcome, str):
                result.errors[sig] = outcome
            else:
                result.outcomes[sig] = outcome
    return result


def charged_slots(slots: list[Slot], outcomes: Mapping[str, StemOutcome]) -> list[tuple[Slot, bool]]:
    """Each slot with whether it paid for its stem: the first slot of a signature synthesized
    in this run pays, every other one is a cache hit."""
    charged: set[str] = set()
    out = []
    for s in slots:
        first = not outcomes[s.signature].cache_hit and s.signature not in charged
        charged.add(s.signature)
        out.append((s, first))
    return out
