"""Planning, assembling and recording messages (pure; the Dagster asset drives it).

A message = one template rendered for one name and one developer, assembled from the
stems of its segments. Its *input signature* covers exactly what shapes its bytes (stem
identities, trims, pauses, crossfades, lead/tail, assembler version), so a message is
rebuilt only when one of those changes, not when a description or an unrelated template
does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hybrid_audio_dagster.core.audio.assemble import AssembledMessage, Piece, Transition, assemble
from hybrid_audio_dagster.core.audio.timing import ms_to_frames
from hybrid_audio_dagster.core.audio.wav import PcmAudio
from hybrid_audio_dagster.core.fsutil import safe_join
from hybrid_audio_dagster.core.stems.store import StemRecord
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import Template

ASSEMBLER_VERSION = 1


@dataclass(frozen=True)
class PlannedSegment:
    segment_id: str
    kind: SegmentKind
    text: str
    stem: StemRecord


@dataclass(frozen=True)
class MessagePlan:
    template_id: str
    name_key: str
    developer_key: str
    segments: tuple[PlannedSegment, ...]
    transitions: tuple[Transition, ...]
    lead_frames: int
    tail_frames: int
    input_signature: str


StemLookup = Callable[[SegmentKind, str, str], StemRecord]


def stem_fragment(segment_id: str, stem: StemRecord) -> str:
    """A segment's part of a message's input signature: which stem, trimmed how."""
    return json.dumps([segment_id, stem.sha256, stem.trim_start, stem.trim_end], separators=(",", ":"))


def _fragment(p: PlannedSegment) -> str:
    return stem_fragment(p.segment_id, p.stem)


class MessagePlanner:
    """Plans every message of one template × developer.

    What does not depend on the name (developer and script segments, their stems and the
    pauses after them) is resolved once; per message only the name segments are rendered
    and looked up, which keeps a no-op re-run of thousands of messages cheap. Raises at
    construction if a developer or script stem is missing (``stem_for`` says which).
    """

    def __init__(self, template: Template, *, developer_key: str, developer: str, stem_for: StemLookup) -> None:
        self.template = template
        self.developer_key = developer_key
        self.segments = template.segments
        self._fixed: dict[int, tuple[PlannedSegment, str]] = {}
        for i, seg in enumerate(self.segments):
            if seg.kind is not SegmentKind.NAME:
                text = seg.render(developer=developer)
                planned = PlannedSegment(seg.id, seg.kind, text, stem_for(seg.kind, seg.id, text))
                self._fixed[i] = (planned, _fragment(planned))
        self._transitions: dict[tuple[int, str, int], tuple[Transition, str]] = {}

    @property
    def fixed_fragments(self) -> tuple[str, ...]:
        """What the developer and script segments put into every message's input signature."""
        return tuple(self._fixed[i][1] for i in sorted(self._fixed))

    def _transition(self, i: int, text: str, rate: int) -> tuple[Transition, str]:
        # the pause after a segment depends only on its position, its text's boundary and
        # the rate: memoised, since names mostly share the same boundary
        boundary, pause_ms, crossfade_ms = self.template.transition_after(i, text)
        key = (i, boundary.value, rate)
        hit = self._transitions.get(key)
        if hit is None:
            t = Transition(ms_to_frames(pause_ms, rate), ms_to_frames(crossfade_ms, rate), boundary.value)
            hit = self._transitions[key] = (t, f"[{t.pause_frames},{t.crossfade_frames}]")
        return hit

    def plan(self, *, name_key: str, name: str, stem_for: StemLookup) -> MessagePlan:
        planned: list[PlannedSegment] = []
        fragments: list[str] = []
        for i, seg in enumerate(self.segments):
            fixed = self._fixed.get(i)
            if fixed is None:
                text = seg.render(name=name)
                p = PlannedSegment(seg.id, seg.kind, text, stem_for(seg.kind, seg.id, text))
                fixed = (p, _fragment(p))
            planned.append(fixed[0])
            fragments.append(fixed[1])
        rate = planned[0].stem.sample_rate
        transitions = [self._transition(i, p.text, rate) for i, p in enumerate(planned[:-1])]
        timing = self.template.timing
        lead = ms_to_frames(timing.lead_ms, rate)
        tail = ms_to_frames(timing.tail_ms, rate)
        # the same text json.dumps({"assembler", "lead", "tail", "segments", "transitions"})
        # would give, assembled from cached fragments
        payload = (
            f'{{"assembler":{ASSEMBLER_VERSION},"lead":{lead},"tail":{tail},'
            f'"segments":[{",".join(fragments)}],"transitions":[{",".join(t[1] for t in transitions)}]}}'
        )
        return MessagePlan(
            template_id=self.template.id,
            name_key=name_key,
            developer_key=self.developer_key,
            segments=tuple(planned),
            transitions=tuple(t[0] for t in transitions),
            lead_frames=lead,
            tail_frames=tail,
            input_signature=hashlib.sha256(payload.encode()).hexdigest(),
        )


def plan_message(
    template: Template,
    *,
    name_key: str,
    name: str,
    developer_key: str,
    developer: str,
    stem_for: StemLookup,
) -> MessagePlan:
    """Render every segment and pick its stem; compute the pauses from semantic timing.

    ``stem_for(kind, segment_id, rendered_text)`` returns the stem record; it raises if
    the stem was never made (the caller knows where to look and what to tell the user).
    One-off form of :class:`MessagePlanner`.
    """
    planner = MessagePlanner(template, developer_key=developer_key, developer=developer, stem_for=stem_for)
    return planner.plan(name_key=name_key, name=name, stem_for=stem_for)


def build_message(plan: MessagePlan, load: Callable[[StemRecord], PcmAudio]) -> AssembledMessage:
    pieces = [Piece(p.segment_id, load(p.stem), p.stem.sha256, p.stem.trim) for p in plan.segments]
    return assemble(pieces, plan.transitions, lead_frames=plan.lead_frames, tail_frames=plan.tail_frames)


def message_relpath(template_id: str, developer_key: str, name_key: str) -> str:
    return f"{template_id}/{developer_key}/{name_key}.wav"


def message_path(output_root: str | Path, template_id: str, developer_key: str, name_key: str) -> Path:
    # keys are slugs already; safe_join is the belt to their braces
    return safe_join(output_root, template_id, developer_key, f"{name_key}.wav")
