"""Semantic timing: the pause after a segment follows the boundary its text ends on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Boundary(StrEnum):
    SENTENCE = "sentence"  # . ! ? …  — a full stop: the longest pause
    CLAUSE = "clause"  # , ; : — –  — a breath
    PHRASE = "phrase"  # no punctuation: the sentence carries on ("about your" → "Hilton")


_SENTENCE_END = set(".!?…。！？")
_CLAUSE_END = set(",;:—–、，；：")
# Closing quotes/brackets don't end anything themselves: look past them.
_TRANSPARENT = set("\"'”’»)]") | {" ", "\t", "\n"}


def classify_boundary(text: str) -> Boundary:
    """Classify the boundary at the end of ``text``."""
    for ch in reversed(text):
        if ch in _TRANSPARENT:
            continue
        if ch in _SENTENCE_END:
            return Boundary.SENTENCE
        if ch in _CLAUSE_END:
            return Boundary.CLAUSE
        return Boundary.PHRASE
    return Boundary.PHRASE


@dataclass(frozen=True)
class TimingRules:
    """Default pause per boundary, plus silence before the first and after the last segment."""

    sentence_ms: int = 450
    clause_ms: int = 200
    phrase_ms: int = 60
    lead_ms: int = 0
    tail_ms: int = 0

    def pause_ms(self, boundary: Boundary) -> int:
        return {Boundary.SENTENCE: self.sentence_ms, Boundary.CLAUSE: self.clause_ms, Boundary.PHRASE: self.phrase_ms}[boundary]


def ms_to_frames(ms: int, sample_rate: int) -> int:
    """Milliseconds to whole frames, rounding half up, in integer arithmetic (no float drift)."""
    if ms < 0:
        raise ValueError(f"negative duration {ms} ms")
    return (ms * sample_rate + 500) // 1000
