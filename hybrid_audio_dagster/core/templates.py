"""Message templates: versioned JSON validated by a pydantic schema.

A template is an ordered list of segments. A segment's text holds at most one
placeholder kind, which decides which stem family it belongs to:

* ``{name}``      → a *name stem*, spoken once per name (and template);
* ``{developer}`` → a *developer stem*, spoken once per developer;
* neither         → a *script stem*, spoken once per template.

A segment with both placeholders would cost one TTS call per name × developer pair, the
very thing stems exist to avoid, so it is refused: split it into two segments.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .audio.timing import Boundary, TimingRules, classify_boundary
from .tts.base import VoiceSettings
from .tts.cartesia import EMOTIONS as CARTESIA_EMOTIONS

SCHEMA_VERSION = 1
PLACEHOLDERS = ("name", "developer")
MAX_PAUSE_MS = 5000
MAX_CROSSFADE_MS = 200
MAX_SEGMENT_CHARS = 500
# One list of emotions for the schema and the Cartesia client: a template the API would
# refuse is refused at validation, before any TTS money is spent.
EMOTIONS = CARTESIA_EMOTIONS
_ID = r"^[a-z0-9][a-z0-9_-]{0,47}$"
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class TemplateError(ValueError):
    """A template file is invalid; the message names the file and every offending field."""


class SegmentKind(StrEnum):
    NAME = "name"
    DEVELOPER = "developer"
    SCRIPT = "script"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Voice(_Strict):
    id: str | None = Field(default=None, description="Cartesia voice UUID; offline engines ignore it")
    speed: Annotated[float, Field(ge=0.6, le=1.5)] = 1.0
    volume: Annotated[float, Field(ge=0.5, le=2.0)] = 1.0
    emotion: str | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not _UUID_RE.match(v):
            raise ValueError(f"{v!r} is not a lowercase UUID")
        return v

    @field_validator("emotion")
    @classmethod
    def _emotion(cls, v: str | None) -> str | None:
        if v is not None and v not in EMOTIONS:
            raise ValueError(f"unknown emotion {v!r} (known: {', '.join(sorted(EMOTIONS))})")
        return v


class Timing(_Strict):
    sentence_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = 450
    clause_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = 200
    phrase_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = 60
    lead_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = 0
    tail_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] = 0

    def rules(self) -> TimingRules:
        # called for every transition of every message: a pydantic dump each time cost ~4%
        return _timing_rules(self.sentence_ms, self.clause_ms, self.phrase_ms, self.lead_ms, self.tail_ms)


@lru_cache(maxsize=256)
def _timing_rules(sentence_ms: int, clause_ms: int, phrase_ms: int, lead_ms: int, tail_ms: int) -> TimingRules:
    return TimingRules(sentence_ms, clause_ms, phrase_ms, lead_ms, tail_ms)


class TransitionOverride(_Strict):
    pause_ms: Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)] | None = None
    crossfade_ms: Annotated[int, Field(ge=0, le=MAX_CROSSFADE_MS)] = 0

    @model_validator(mode="after")
    def _pause_or_crossfade(self) -> TransitionOverride:
        if self.crossfade_ms and self.pause_ms:
            raise ValueError("a transition is either a pause or a crossfade: set pause_ms to 0 or crossfade_ms to 0")
        return self


class Segment(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    text: Annotated[str, Field(min_length=1, max_length=MAX_SEGMENT_CHARS)]

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        if v != v.strip():
            raise ValueError("text has leading or trailing whitespace")
        found = _PLACEHOLDER_RE.findall(v)
        unknown = [p for p in found if p not in PLACEHOLDERS]
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join('{' + p + '}' for p in unknown)}; allowed: {{name}}, {{developer}}")
        stray = _PLACEHOLDER_RE.sub("", v)
        if "{" in stray or "}" in stray:
            raise ValueError("unbalanced '{' or '}'")
        if len(set(found)) > 1:
            raise ValueError("uses both {name} and {developer}: that costs one TTS call per pair; split it into two segments")
        if len(found) > 1:
            raise ValueError(f"repeats the placeholder {{{found[0]}}}")
        return v

    @property
    def kind(self) -> SegmentKind:
        if "{name}" in self.text:
            return SegmentKind.NAME
        if "{developer}" in self.text:
            return SegmentKind.DEVELOPER
        return SegmentKind.SCRIPT

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


class Template(_Strict):
    schema_version: Literal[1]
    id: Annotated[str, Field(pattern=_ID)]
    version: Annotated[int, Field(ge=1)]
    language: Annotated[str, Field(pattern=r"^[a-z]{2}$")]
    description: str = ""
    voice: Voice = Voice()
    timing: Timing = Timing()
    segments: Annotated[list[Segment], Field(min_length=1, max_length=50)]
    transitions: dict[str, TransitionOverride] = Field(
        default_factory=dict, description="keyed by the id of the segment the transition follows"
    )

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
        return self

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
        """sha256 of the canonical JSON: changes whenever anything that shapes audio changes."""
        canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
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
    """Load every ``*.json`` template of ``directory``, sorted by id. Any invalid file fails all."""
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
        out[t.id] = t
    if errors:
        raise TemplateError("\n".join(errors))
    return out
