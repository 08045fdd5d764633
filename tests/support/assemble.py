"""What the assembly tests share: the formats and rates, independent decoding with
libsndfile, synthetic stems, hypothesis cases and the layout model computed from the
inputs alone."""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.audio.assemble import AssembledMessage, Piece, Transition, assemble
from hybrid_audio_dagster.core.audio.trim import TrimRange, find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio, encode_wav, parse_wav
from tests.support.campaign import pack

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMATS = ["pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"]
RATES = [8000, 16000, 22050, 44100, 48000]
FULL_SCALE = {"pcm_s16le": 2**15, "pcm_s24le": 2**23, "pcm_s32le": 2**31, "pcm_f32le": 1.0}
SF_READ = {"pcm_s16le": ("int32", 16), "pcm_s24le": ("int32", 8), "pcm_s32le": ("int32", 0), "pcm_f32le": ("float32", 0)}

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------
# independent helpers
# --------------------------------------------------------------------------------------


def sf_read(blob: bytes, fmt: str) -> tuple[np.ndarray, object]:
    """Decode with libsndfile; ints come back scaled to int32 (same scale for all inputs)."""
    dtype, _ = SF_READ[fmt]
    info = sf.info(io.BytesIO(blob))
    data, _ = sf.read(io.BytesIO(blob), dtype=dtype, always_2d=True)
    return data, info


def top(fmt: str):
    return 1.0 if fmt == "pcm_f32le" else FULL_SCALE[fmt] - 1


def bottom(fmt: str):
    return -FULL_SCALE[fmt]


def make_stem(rng: np.random.Generator, fmt: str, channels: int, lead: int, body: int, tail: int, style: str) -> np.ndarray:
    """Leading silence (exact zeros or faint noise), a "speech" body, trailing silence."""
    fs = FULL_SCALE[fmt]
    frames = lead + body + tail
    x = np.zeros((frames, channels), dtype=np.float64)
    faint = rng.uniform(-1, 1, size=(frames, channels)) * fs * 10 ** (-85 / 20)
    if style != "exact-silence":
        x += faint
    if style == "full-scale":  # near-rail square-ish wave, some samples exactly on the rails
        sig = np.where(rng.random((body, channels)) < 0.5, -1.0, 1.0) * rng.uniform(0.9, 1.0, size=(body, channels))
        sig[rng.random((body, channels)) < 0.1] = 1.0
        sig[rng.random((body, channels)) < 0.1] = -1.0
    elif style == "sine":
        sig = 0.8 * np.sin(np.arange(body)[:, None] * rng.uniform(0.05, 0.5) + np.arange(channels))
    else:
        sig = rng.uniform(-0.95, 0.95, size=(body, channels))
    sig[0] = sig[-1] = 0.5  # onset/offset clearly above any trim threshold
    x[lead : lead + body] = sig * fs
    if fmt == "pcm_f32le":
        return np.clip(x, -1.0, 1.0).astype(np.float32)
    return np.clip(np.rint(x), -fs, fs - 1).astype(np.int64)


@dataclass
class Case:
    fmt: str
    rate: int
    channels: int
    stems: list[np.ndarray]  # full stem samples
    wavs: list[bytes]  # their WAV files
    pieces: list[Piece]
    transitions: list[Transition]
    lead: int
    tail: int

    @property
    def stem_map(self) -> dict[str, bytes]:
        return {p.stem_sha256: w for p, w in zip(self.pieces, self.wavs)}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@st.composite
def cases(draw, max_stems: int = 5) -> Case:
    fmt = draw(st.sampled_from(FORMATS))
    rate = draw(st.sampled_from(RATES))
    channels = draw(st.integers(1, 2))
    n = draw(st.integers(1, max_stems))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    stems, wavs, pieces = [], [], []
    for i in range(n):
        s = make_stem(
            rng,
            fmt,
            channels,
            lead=draw(st.integers(0, 30)),
            body=draw(st.integers(2, 120)),
            tail=draw(st.integers(0, 30)),
            style=draw(st.sampled_from(["noise", "sine", "full-scale", "exact-silence"])),
        )
        audio = PcmAudio(rate, channels, fmt, pack(s, fmt))
        wav = encode_wav(audio)
        audio = parse_wav(wav, f"stem {i}")
        trim = find_trim(audio, f"stem {i}") if draw(st.booleans()) else None
        if trim is None:  # any non-empty range, not only the one find_trim picks
            a = draw(st.integers(0, audio.frames - 1))
            b = draw(st.integers(a + 1, audio.frames))
            trim = TrimRange(a, b)
        stems.append(s)
        wavs.append(wav)
        pieces.append(Piece(f"seg-{i}", audio, sha(wav), trim))
    transitions = []
    fade_in = 0
    for i in range(n - 1):
        room = min(pieces[i].trim.frames - fade_in, pieces[i + 1].trim.frames)
        kind = draw(st.sampled_from(["pause", "pause", "crossfade", "butt"]))
        if kind == "crossfade" and room >= 1:
            t = Transition(crossfade_frames=draw(st.integers(1, room)), boundary="phrase")
        elif kind == "butt":
            t = Transition(boundary="phrase")
        else:
            t = Transition(pause_frames=draw(st.integers(1, 300)), boundary="sentence")
        transitions.append(t)
        fade_in = t.crossfade_frames
    lead = draw(st.sampled_from([0, draw(st.integers(1, 120))]))
    tail = draw(st.sampled_from([0, draw(st.integers(1, 120))]))
    return Case(fmt, rate, channels, stems, wavs, pieces, transitions, lead, tail)


@dataclass
class Layout:
    starts: list[int]  # where each stem's retained part starts in the output (frames)
    crossfades: list[tuple[int, int]]  # [start, end) of each mixed region
    pauses: list[tuple[int, int]]
    total: int


def layout(case: Case) -> Layout:
    """Where everything must land, computed from the inputs only (not from the timeline)."""
    pos, fade_in = case.lead, 0
    starts, crossfades, pauses = [], [], []
    for i, p in enumerate(case.pieces):
        start = pos - fade_in
        end = start + p.trim.frames
        starts.append(start)
        t = case.transitions[i] if i < len(case.transitions) else Transition()
        if t.crossfade_frames:
            crossfades.append((end - t.crossfade_frames, end))
            pos = end
        else:
            if t.pause_frames:
                pauses.append((end, end + t.pause_frames))
            pos = end + t.pause_frames
        fade_in = t.crossfade_frames
    return Layout(starts, crossfades, pauses, pos + case.tail)


def build(case: Case) -> AssembledMessage:
    return assemble(case.pieces, case.transitions, lead_frames=case.lead, tail_frames=case.tail)


def data_offset(blob: bytes, msg: AssembledMessage) -> int:
    off = len(msg.parts[0])
    assert blob[off - 8 : off - 4] == b"data"
    return off


def small_piece(seg: str, rate=22050, channels=1, fmt="pcm_s16le", frames=200) -> Piece:
    """A 200-frame sine stem for ``seg``, untrimmed, in the given format."""
    s = make_stem(np.random.default_rng(zlib.crc32(seg.encode())), fmt, channels, 10, frames - 20, 10, "sine")
    wav = encode_wav(PcmAudio(rate, channels, fmt, pack(s, fmt)))
    audio = parse_wav(wav)
    return Piece(seg, audio, sha(wav), TrimRange(0, audio.frames))
