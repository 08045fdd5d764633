"""Message templates: versioned JSON validated by a pydantic schema.

A template is an ordered list of segments. A segment's text holds at most one
placeholder kind, which decides which stem family it belongs to:

* ``{name}``      → a *name stem*, spoken once per name (and template);
* ``{developer}`` → a *developer stem*, spoken once per developer;
* neither         → a *script stem*, spoken once per template.

A segment with both placeholders would cost one TTS call per name × developer pair, the
very thing stems exist to avoid, so it is refused: split it into two segments.

A template may declare named **variants** (``"variants": {"soft_warm": {...}}``) that
override its voice, its timing, its transitions and, by segment id, segment texts (each
keeping the segment's placeholder kind). A variant is a template of its own everywhere
downstream: :func:`load_templates` returns it under the key ``<template id>--<variant>``
(:data:`VARIANT_SEP`; a template id may not contain ``--``, so no key can be both), with its
own stems, outputs and partitions; stems whose text and voice are unchanged keep the base's
signatures, so they are shared, not synthesized again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from hybrid_audio_dagster.core.audio.timing import Boundary, TimingRules, classify_boundary
from hybrid_audio_dagster.core.template_fields import (
    EMOTIONS,
    ID_PATTERN,
    MAX_CROSSFADE_MS,
    MAX_PAUSE_MS,
    MAX_SEGMENT_CHARS,
    MAX_VARIANT_NAME,
    MAX_VARIANTS,
    PLACEHOLDERS,
    SCHEMA_VERSION,
    VARIANT_NAME_RE,
    VARIANT_SEP,
    Emotion,
    PauseMs,
    SegmentKind,
    SegmentText,
    Speed,
    Strict,
    TransitionOverride,
    VoiceId,
    Volume,
    kind_of,
)
from hybrid_audio_dagster.core.template_variants import TimingOverride, Variant, VoiceOverride, split_variant_key, variant_key
from hybrid_audio_dagster.core.tts.base import VoiceSettings

__all__ = [
    "EMOTIONS",
    "MAX_CROSSFADE_MS",
    "MAX_PAUSE_MS",
    "MAX_SEGMENT_CHARS",
    "MAX_VARIANTS",
    "PLACEHOLDERS",
    "SCHEMA_VERSION",
    "VARIANT_SEP",
    "LoadedTemplate",
    "Segment",
    "SegmentKind",
    "Template",
    "TemplateError",
    "Timing",
    "TimingOverride",
    "TransitionOverride",
    "Variant",
    "Voice",
    "VoiceOverride",
    "load_template",
    "load_templates",
    "parse_template",
    "split_variant_key",
    "variant_key",
]


class TemplateError(ValueError):
    """A template file is invalid; the message names the file and every offending field."""


class Voice(Strict):
    id: VoiceId = None
    speed: Speed = 1.0
    volume: Volume = 1.0
    emotion: Emotion = None


class Timing(Strict):
    sentence_ms: PauseMs = 450
    clause_ms: PauseMs = 200
    phrase_ms: PauseMs = 60
    lead_ms: PauseMs = 0
    tail_ms: PauseMs = 0

    def rules(self) -> TimingRules:
        # called for every transition of every message: a pydantic dump each time cost ~4%
        return _timing_rules(self.sentence_ms, self.clause_ms, self.phrase_ms, self.lead_ms, self.tail_ms)


@lru_cache(maxsize=256)
def _timing_rules(sentence_ms: int, clause_ms: int, phrase_ms: int, lead_ms: int, tail_ms: int) -> TimingRules:
    return TimingRules(sentence_ms, clause_ms, phrase_ms, lead_ms, tail_ms)


class Segment(Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    text: SegmentText

    @property
    def kind(self) -> SegmentKind:
        return kind_of(self.text)

    def render(self, *, name: str | None = None, developer: str | None = None) -> str:
        """Fill the placeholder by plain replacement (never ``str.format``: data is not code)."""
        if self.kind is SegmentKind.NAME:
            if name is None:
                raise ValueError(f"segment '{self.id}' needs a name")
            return self.text.replace("{name}", name)
        if self.kind is SegmentKind.DEVELOPER:
            if developer is None:
                raise ValueError(f"segment '{self.id}' needs a developer")
            return self.text.replace("{developer}", developer)
        return self.text


class Template(Strict):
    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    version: Annotated[int, Field(ge=1)]
    language: Annotated[str, Field(pattern=r"^[a-z]{2}$")]
    description: str = ""
    voice: Voice = Voice()
    timing: Timing = Timing()
    segments: Annotated[list[Segment], Field(min_length=1, max_length=50)]
    transitions: dict[str, TransitionOverride] = Field(
        default_factory=dict, description="keyed by the id of the segment the transition follows"
    )
    variants: dict[str, Variant] = Field(default_factory=dict, description="named variants, see the module docstring")

    @field_validator("id")
    @classmethod
    def _no_variant_separator(cls, v: str) -> str:
        if VARIANT_SEP in v:
            raise ValueError(f"{v!r} contains {VARIANT_SEP!r}, which separates a template id from a variant name")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Template:
        seen: set[str] = set()
        for i, seg in enumerate(self.segments):
            if seg.id in seen:
                raise ValueError(f"segments[{i}].id: duplicate segment id {seg.id!r}")
            seen.add(seg.id)
        last = self.segments[-1].id
        for key in self.transitions:
            if key not in seen:
                raise ValueError(f"transitions.{key}: no segment with that id")
            if key == last:
                raise ValueError(f"transitions.{key}: the last segment has no transition after it (use timing.tail_ms)")
        if not any(s.kind is SegmentKind.NAME for s in self.segments):
            raise ValueError("segments: no segment uses {name}; the message would not be personal")
        self._check_variants()
        return self

    def _check_variants(self) -> None:
        if len(self.variants) > MAX_VARIANTS:
            raise ValueError(f"variants: {len(self.variants)} declared, at most {MAX_VARIANTS}")
        by_id = {s.id: s for s in self.segments}
        for name, variant in self.variants.items():
            where = f"variants.{name}"
            if len(name) > MAX_VARIANT_NAME or not VARIANT_NAME_RE.match(name):
                raise ValueError(
                    f"{where}: a variant name is lowercase letters and digits, words joined by one '_' or '-', "
                    f"at most {MAX_VARIANT_NAME} characters (e.g. soft_warm)"
                )
            if not variant.overrides_something():
                raise ValueError(f"{where}: overrides nothing (set voice, timing, transitions or segments)")
            for sid, text in variant.segments.items():
                if sid not in by_id:
                    raise ValueError(f"{where}.segments.{sid}: no segment with that id (known: {', '.join(by_id)})")
                base, new = by_id[sid].kind, kind_of(text)
                if new is not base:
                    raise ValueError(
                        f"{where}.segments.{sid}: the text is a {new.value} segment but {sid!r} is a {base.value} segment; "
                        "a variant keeps each segment's placeholder ({name}, {developer} or none)"
                    )
            for key in variant.transitions:
                if key not in by_id:
                    raise ValueError(f"{where}.transitions.{key}: no segment with that id")
                if key == self.segments[-1].id:
                    raise ValueError(f"{where}.transitions.{key}: the last segment has no transition after it (use timing.tail_ms)")
            try:
                self.variant(name)
            except ValidationError as exc:  # e.g. a null speed: the merged template is invalid
                raise ValueError("; ".join(f"{where}.{part}" for part in _format_errors(exc).split("; "))) from None

    # -- variants ----------------------------------------------------------------------
    @property
    def base_id(self) -> str:
        """The id of the template file this template comes from (itself unless a variant)."""
        return split_variant_key(self.id)[0]

    @property
    def variant_name(self) -> str | None:
        """The variant's name, or None for a template as its file declares it."""
        return split_variant_key(self.id)[1]

    def variant(self, name: str) -> Template:
        """The template ``name`` makes of this one, keyed ``<id>--<name>``, without variants."""
        v = self.variants[name]
        data = self.model_dump(exclude={"variants"})
        data["voice"].update(v.voice.model_dump(exclude_unset=True))
        data["timing"].update(v.timing.model_dump(exclude_unset=True))
        data["segments"] = [{"id": s["id"], "text": v.segments.get(s["id"], s["text"])} for s in data["segments"]]
        data["transitions"].update({k: t.model_dump() for k, t in v.transitions.items()})
        if v.description:
            data["description"] = v.description
        return Template.model_validate(data).model_copy(update={"id": variant_key(self.id, name)})

    def expand(self) -> dict[str, Template]:
        """This template (without its variants) and each variant, keyed by template key."""
        out = {self.id: self.model_copy(update={"variants": {}}) if self.variants else self}
        for name in sorted(self.variants):
            out[variant_key(self.id, name)] = self.variant(name)
        return out

    # -- derived -----------------------------------------------------------------------
    def voice_settings(self) -> VoiceSettings:
        return VoiceSettings(
            language=self.language,
            voice_id=self.voice.id,
            speed=self.voice.speed,
            volume=self.voice.volume,
            emotion=self.voice.emotion,
        )

    def segments_of(self, kind: SegmentKind) -> list[Segment]:
        return [s for s in self.segments if s.kind is kind]

    def transition_after(self, index: int, rendered_text: str) -> tuple[Boundary, int, int]:
        """(boundary, pause_ms, crossfade_ms) after segment ``index`` given its rendered text."""
        seg = self.segments[index]
        boundary = classify_boundary(rendered_text)
        override = self.transitions.get(seg.id)
        rules = self.timing.rules()
        if override is None:
            return boundary, rules.pause_ms(boundary), 0
        if override.crossfade_ms:
            return boundary, 0, override.crossfade_ms
        pause = rules.pause_ms(boundary) if override.pause_ms is None else override.pause_ms
        return boundary, pause, 0

    def signature(self) -> str:
        """sha256 of the canonical JSON: changes whenever anything that shapes audio changes.

        Variants are left out: declaring one changes neither the template's nor its
        messages' signatures (a variant's own signature covers its key and its values)."""
        canon = json.dumps(self.model_dump(mode="json", exclude={"variants"}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LoadedTemplate:
    path: Path
    template: Template


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def parse_template(text: str | bytes, source: str = "<template>") -> Template:
    """Parse and validate template JSON. Raises TemplateError naming the file and fields."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: the top level must be a JSON object")
    if data.get("schema_version") not in (None, SCHEMA_VERSION) and isinstance(data.get("schema_version"), int):
        raise TemplateError(f"{source}: schema_version: {data['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(f"{source}: {_format_errors(exc)}") from None


def load_template(path: str | Path) -> Template:
    path = Path(path)
    template = parse_template(path.read_bytes(), str(path))
    if path.stem != template.id:
        raise TemplateError(f"{path}: id: {template.id!r} must equal the file name {path.stem!r}")
    return template


def load_templates(directory: str | Path) -> dict[str, Template]:
    """Every template of ``directory``'s ``*.json`` files and each of their variants, keyed
    by template key (``<id>`` and ``<id>--<variant>``), sorted. Any invalid file fails all."""
    directory = Path(directory)
    files = sorted(directory.glob("*.json"))
    if not files:
        raise TemplateError(f"{directory}: no *.json templates found")
    errors = []
    out: dict[str, Template] = {}
    for f in files:
        try:
            t = load_template(f)
        except TemplateError as exc:
            errors.append(str(exc))
            continue
        out.update(t.expand())
    if errors:
        raise TemplateError("\n".join(errors))
    return out
