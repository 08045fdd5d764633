"""The fields a template and its variants share: limits, checks and annotated types (pure)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hybrid_audio_dagster.core.tts.cartesia.config import EMOTIONS as CARTESIA_EMOTIONS

SCHEMA_VERSION = 1
PLACEHOLDERS = ("name", "developer")
MAX_PAUSE_MS = 5000
MAX_CROSSFADE_MS = 200
MAX_SEGMENT_CHARS = 500
# One list of emotions for the schema and the Cartesia client: a template the API would
# refuse is refused at validation, before any TTS money is spent.
EMOTIONS = CARTESIA_EMOTIONS
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# a variant's key is "<template id>--<variant name>"; template ids may not contain "--" and
# variant names never contain it nor start or end with a separator, so keys never collide
VARIANT_SEP = "--"
MAX_VARIANTS = 8
MAX_VARIANT_NAME = 24
VARIANT_NAME_RE = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")


class SegmentKind(StrEnum):
    NAME = "name"
    DEVELOPER = "developer"
    SCRIPT = "script"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_voice_id(v: str | None) -> str | None:
    if v is not None and not _UUID_RE.match(v):
        raise ValueError(f"{v!r} is not a lowercase UUID")
    return v


def check_emotion(v: str | None) -> str | None:
    if v is not None and v not in EMOTIONS:
        raise ValueError(f"unknown emotion {v!r} (known: {', '.join(sorted(EMOTIONS))})")
    return v


def check_text(v: str) -> str:
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


VoiceId = Annotated[str | None, AfterValidator(check_voice_id), Field(description="Cartesia voice UUID; offline engines ignore it")]
Emotion = Annotated[str | None, AfterValidator(check_emotion)]
Speed = Annotated[float, Field(ge=0.6, le=1.5)]
Volume = Annotated[float, Field(ge=0.5, le=2.0)]
PauseMs = Annotated[int, Field(ge=0, le=MAX_PAUSE_MS)]
SegmentText = Annotated[str, Field(min_length=1, max_length=MAX_SEGMENT_CHARS), AfterValidator(check_text)]


def kind_of(text: str) -> SegmentKind:
    if "{name}" in text:
        return SegmentKind.NAME
    if "{developer}" in text:
        return SegmentKind.DEVELOPER
    return SegmentKind.SCRIPT


class TransitionOverride(Strict):
    pause_ms: PauseMs | None = None
    crossfade_ms: Annotated[int, Field(ge=0, le=MAX_CROSSFADE_MS)] = 0

    @model_validator(mode="after")
    def _pause_or_crossfade(self) -> TransitionOverride:
        if self.crossfade_ms and self.pause_ms:
            raise ValueError("a transition is either a pause or a crossfade: set pause_ms to 0 or crossfade_ms to 0")
        return self
