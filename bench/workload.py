"""The messages scenario 1 builds (:mod:`bench.core_bench`): ~12 s messages of the followup-en
shape at 44.1 kHz from speech-like synthetic stems, already in memory and trimmed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from bench.common import PROJECT_ROOT
from hybrid_audio_dagster.core.audio.timing import ms_to_frames
from hybrid_audio_dagster.core.audio.trim import find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_template

RATE = 44_100
TEMPLATE = PROJECT_ROOT / "templates" / "followup-en.json"
# seconds of speech per segment of followup-en, chosen so a message lasts ~12 s
SPEECH_S = {"greeting": 0.55, "intro": 0.7, "lead-in": 1.55, "brand": 1.1, "offer": 3.5, "close": 2.75}
EDGE_SILENCE_S = 0.04  # the TTS engine's own leading/trailing silence, trimmed off


# --------------------------------------------------------------------------- workload


def _tone(seconds: float, seed: int) -> np.ndarray:
    """Speech-like int16 audio: two partials and noise, faded, with digital silence at the edges."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 110 + seed % 180
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2.03 * f0 * t) + 0.03 * rng.standard_normal(n)
    fade = int(0.01 * RATE)
    ramp = np.linspace(0, 1, fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    edge = np.zeros(int(EDGE_SILENCE_S * RATE))
    return np.round(np.concatenate([edge, x, edge]) * 32767).astype("<i2")


@dataclass(frozen=True)
class Stem:
    sha256: str
    audio: PcmAudio
    array: np.ndarray  # int16, for the numpy baselines
    trim_start: int
    trim_end: int


@dataclass(frozen=True)
class MessageSpec:
    """One message: which stems, in order, and the silences around them (all in frames)."""

    stems: tuple[Stem, ...]
    segment_ids: tuple[str, ...]
    pauses: tuple[int, ...]  # after each stem but the last
    lead: int
    tail: int
    rate: int = RATE

    @property
    def frames(self) -> int:
        return self.lead + self.tail + sum(self.pauses) + sum(s.trim_end - s.trim_start for s in self.stems)

    @property
    def nbytes(self) -> int:
        return 44 + 2 * self.frames


def _stem(seconds: float, seed: int) -> Stem:
    arr = _tone(seconds, seed)
    audio = PcmAudio(RATE, 1, "pcm_s16le", arr.tobytes())
    tr = find_trim(audio)
    return Stem(hashlib.sha256(audio.data).hexdigest(), audio, arr, tr.start, tr.end)


def make_workload(n_messages: int, *, n_names: int = 64, n_developers: int = 20) -> list[MessageSpec]:
    """``n_messages`` distinct-ish ~12 s messages of the followup-en shape at 44.1 kHz."""
    tpl = load_template(TEMPLATE)
    names = [_stem(SPEECH_S["greeting"] * (0.8 + 0.4 * i / n_names), 1000 + i) for i in range(n_names)]
    devs = [_stem(SPEECH_S["brand"] * (0.8 + 0.4 * i / n_developers), 2000 + i) for i in range(n_developers)]
    script = {s.id: _stem(SPEECH_S[s.id], 3000 + k) for k, s in enumerate(tpl.segments) if s.kind is SegmentKind.SCRIPT}
    texts = [s.render(name="Name", developer="Developer") for s in tpl.segments]
    pauses = []
    for i, text in enumerate(texts[:-1]):
        _, pause_ms, crossfade_ms = tpl.transition_after(i, text)
        assert crossfade_ms == 0
        pauses.append(ms_to_frames(pause_ms, RATE))
    lead, tail = ms_to_frames(tpl.timing.lead_ms, RATE), ms_to_frames(tpl.timing.tail_ms, RATE)
    specs = []
    for m in range(n_messages):
        name, dev = names[m % n_names], devs[(m // n_names) % n_developers]
        stems = tuple(
            name if s.kind is SegmentKind.NAME else dev if s.kind is SegmentKind.DEVELOPER else script[s.id] for s in tpl.segments
        )
        specs.append(MessageSpec(stems, tuple(s.id for s in tpl.segments), tuple(pauses), lead, tail))
    return specs
