"""Template variants: named overrides of a template's voice, timing, transitions and
segment texts (pure). :meth:`~.templates.Template.variant` applies one; a variant's key is
``<template id>--<variant name>`` (:func:`variant_key`)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from hybrid_audio_dagster.core.template_fields import (
    VARIANT_SEP,
    Emotion,
    PauseMs,
    SegmentText,
    Speed,
    Strict,
    TransitionOverride,
    VoiceId,
    Volume,
)


class VoiceOverride(Strict):
    """A variant's voice: the fields it sets replace the template's, the others are kept."""

    id: VoiceId = None
    speed: Speed | None = None
    volume: Volume | None = None
    emotion: Emotion = None


class TimingOverride(Strict):
    """A variant's timing: the fields it sets replace the template's."""

    sentence_ms: PauseMs | None = None
    clause_ms: PauseMs | None = None
    phrase_ms: PauseMs | None = None
    lead_ms: PauseMs | None = None
    tail_ms: PauseMs | None = None


class Variant(Strict):
    """A named variant of a template: only what it declares differs from the template."""

    description: str = ""
    voice: VoiceOverride = VoiceOverride()
    timing: TimingOverride = TimingOverride()
    segments: dict[str, SegmentText] = Field(default_factory=dict, description="segment id → the variant's text")
    transitions: dict[str, TransitionOverride] = Field(default_factory=dict, description="replace the template's, by segment id")

    def overrides_something(self) -> bool:
        return bool(self.voice.model_fields_set or self.timing.model_fields_set or self.segments or self.transitions)


def variant_key(template_id: str, variant: str) -> str:
    """The key (partition, output folder) of ``variant`` of ``template_id``."""
    return f"{template_id}{VARIANT_SEP}{variant}"


def split_variant_key(key: str) -> tuple[str, str | None]:
    """(template id, variant name or None) of a template key."""
    base, sep, variant = key.rpartition(VARIANT_SEP)
    return (base, variant) if sep else (key, None)


def select_keys(keys: Iterable[str], selection: Iterable[str]) -> tuple[list[str], list[str]]:
    """The template keys ``selection`` picks, in ``keys`` order, and the entries it names that
    match nothing. An entry is a key (``followup-en``: the template as its file declares it;
    ``followup-en--soft_warm``: that variant) or ``<id>*`` (``followup-en*``: the template and
    every variant of it, an A/B/… test of all its variants)."""
    keys = list(keys)
    picked: set[str] = set()
    unmatched: list[str] = []
    for entry in (s.strip() for s in selection):
        if not entry:
            continue
        family = entry.endswith("*")
        base = entry[:-1]
        hits = [k for k in keys if (split_variant_key(k)[0] == base if family else k == entry)]
        picked.update(hits)
        if not hits:
            unmatched.append(entry)
    return [k for k in keys if k in picked], unmatched
