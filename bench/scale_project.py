"""What the ``scale`` scenario (:mod:`bench.scale_bench`) runs on: an instant fake TTS engine
(a short deterministic tone per text) and a project of N names × D developers × tiny
templates, so that a campaign of 100k+ messages fits on the disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

from bench.common import synthetic_developers, synthetic_names
from testkit.project import write_csv

SAMPLE_RATE = 22050

# --------------------------------------------------------------------------- the instant engine


def tone_wav(text: str, ms: int, rate: int = SAMPLE_RATE) -> bytes:
    """A deterministic, valid stem for ``text``: a sine at -10 dBFS (not silent, never full
    scale, so never 'clipped') whose pitch depends on the text, ``ms`` long, 16-bit mono."""
    import numpy as np

    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")
    freq = 200.0 + (h % 600)
    n = max(1, rate * ms // 1000)
    t = np.arange(n, dtype=np.float64) / rate
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fade in/out
    pcm = np.rint(np.sin(2 * math.pi * freq * t + 0.5) * env * 0.316 * 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", len(pcm))
    return header + pcm


def instant_resource_class():
    """Defined lazily: importing the project (and Dagster) only in the child process."""
    from pydantic import Field

    from hybrid_audio_dagster.core.tts.base import StemContract
    from hybrid_audio_dagster.defs.resources.tts import TTSResource

    class InstantTTSResource(TTSResource):
        """A fake engine that answers at once: a short tone per text (see :func:`tone_wav`)."""

        stem_ms: int = Field(default=100, ge=10, le=2000)

        @property
        def engine_name(self) -> str:
            return "bench-instant"

        def contract(self, voice):
            return StemContract(
                engine="bench-instant",
                engine_version="1",
                voice=voice.voice_id or voice.language,
                model=f"tone-{self.stem_ms}ms",
                language=voice.language,
                speed=voice.speed,
                volume=voice.volume,
                emotion=voice.emotion,
                sample_rate=SAMPLE_RATE,
                encoding="pcm_s16le",
            )

        def synthesize(self, text, voice):
            CALLS.append((text, voice))
            return tone_wav(text, self.stem_ms)

    return InstantTTSResource


CALLS: list = []  # (text, voice) of every synthesize call (module level: Dagster copies resources)


# --------------------------------------------------------------------------- the project


def bench_templates(n: int) -> list[dict]:
    """``n`` tiny templates: a name, a brand and one script segment, short pauses."""
    out = []
    for i in range(n):
        tid = f"scale-{chr(ord('a') + i)}"
        out.append(
            {
                "schema_version": 1,
                "id": tid,
                "version": 1,
                "language": "en",
                "description": "bench: tiny messages so that 100k of them fit on the disk",
                "voice": {"id": "a0e99841-438c-4a64-b679-ae501e7d6091", "speed": 1.0, "volume": 1.0, "emotion": "content"},
                "timing": {"sentence_ms": 20, "clause_ms": 10, "phrase_ms": 5, "lead_ms": 10, "tail_ms": 10},
                "segments": [
                    {"id": "greeting", "text": "Hi {name},"},
                    {"id": "brand", "text": "{developer} here."},
                    {"id": "close", "text": f"Call back {i + 1}."},
                ],
            }
        )
    return out


def make_synthetic_project(root: Path, names: int, developers: int, templates: int) -> None:
    write_csv(root / "data" / "names.csv", "name", synthetic_names(names))
    write_csv(root / "data" / "developers.csv", "developer", synthetic_developers(developers))
    (root / "templates").mkdir(parents=True, exist_ok=True)
    for t in bench_templates(templates):
        (root / "templates" / f"{t['id']}.json").write_text(json.dumps(t, indent=1))
