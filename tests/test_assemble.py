"""Acceptance tests of trimming, semantic timing, bit-exact assembly, verification and
atomic writing (``core/audio/{trim,timing,assemble}.py``, ``core/fsutil.py``).

The property tests check every claim twice: once with the project's own ``verify()``
and once independently, decoding the output with libsndfile (``soundfile``) and
comparing it with numpy against a layout model computed here from the inputs alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core import fsutil
from hybrid_audio_dagster.core.audio.assemble import (
    AssembledMessage,
    Piece,
    Timeline,
    Transition,
    assemble,
    verify,
)
from hybrid_audio_dagster.core.audio.errors import (
    FormatMismatchError,
    SilentAudioError,
    TimelineError,
    VerificationError,
)
from hybrid_audio_dagster.core.audio.timing import Boundary, TimingRules, classify_boundary, ms_to_frames
from hybrid_audio_dagster.core.audio.trim import TrimRange, find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio, encode_wav, load_wav, parse_wav
from tests.support import pack

REPO_ROOT = Path(__file__).resolve().parents[1]
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
            rng, fmt, channels,
            lead=draw(st.integers(0, 30)), body=draw(st.integers(2, 120)), tail=draw(st.integers(0, 30)),
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


# --------------------------------------------------------------------------------------
# property tests of assemble / verify
# --------------------------------------------------------------------------------------


@PROPERTY
@given(cases())
def test_verify_passes_on_every_assembled_message(case: Case) -> None:
    event(f"format {case.fmt} x{case.channels}")
    event(f"{len(case.pieces)} stems")
    for what, present in [
        ("crossfade", any(t.crossfade_frames for t in case.transitions)),
        ("pause", any(t.pause_frames for t in case.transitions)),
        ("lead", case.lead > 0),
        ("tail", case.tail > 0),
    ]:
        event(f"{what}: {present}")
    msg = build(case)
    blob = msg.to_bytes()
    assert len(blob) == msg.nbytes
    assert msg.sha256() == sha(blob)
    verify(blob, case.stem_map, msg.timeline)
    # stems given as decoded audio, and the timeline after a JSON round trip
    verify(blob, {p.stem_sha256: p.stem for p in case.pieces}, Timeline.from_json(msg.timeline.to_json()))


@PROPERTY
@given(cases(), st.data())
def test_independent_check_of_the_output(case: Case, data) -> None:
    msg = build(case)
    blob = msg.to_bytes()
    lay = layout(case)
    fmt = case.fmt
    out, info = sf_read(blob, fmt)
    # libsndfile reads it back with the same rate/channels/frames
    assert (info.samplerate, info.channels, info.frames) == (case.rate, case.channels, lay.total)
    assert info.format == "WAV"
    assert msg.timeline.total_frames == lay.total
    assert [e.out_start for e in msg.timeline.entries] == lay.starts
    assert msg.timeline.crossfade_regions() == lay.crossfades

    covered = np.zeros(lay.total, dtype=bool)
    stems = [sf_read(w, fmt)[0] for w in case.wavs]
    fades = [t.crossfade_frames for t in case.transitions] + [0]
    for i, (p, s, start) in enumerate(zip(case.pieces, stems, lay.starts)):
        fade_in = fades[i - 1] if i else 0
        lo, hi = fade_in, p.trim.frames - fades[i]
        # every retained sample outside crossfades appears unchanged
        np.testing.assert_array_equal(out[start + lo : start + hi], s[p.trim.start + lo : p.trim.start + hi])
        covered[start + lo : start + hi] = True
    off = data_offset(blob, msg)
    bpf = len(pack(np.zeros((1, case.channels)), fmt))
    silences = [(0, case.lead), (lay.total - case.tail, lay.total), *lay.pauses]
    for a, b in silences:
        # exact digital silence, checked on the raw bytes (a float -0.0 would not be)
        assert blob[off + a * bpf : off + b * bpf] == bytes((b - a) * bpf)
        covered[a:b] = True
    for (a, b), (i, p) in zip(lay.crossfades, [(i, p) for i, p in enumerate(case.pieces) if fades[i]]):
        nxt = case.pieces[i + 1]
        src_a = stems[i][p.trim.end - (b - a) : p.trim.end]
        src_b = stems[i + 1][nxt.trim.start : nxt.trim.start + (b - a)]
        mixed = out[a:b]
        # no clipping, no wrap-around: each mixed sample lies between its two sources
        assert np.all(mixed >= np.minimum(src_a, src_b)) and np.all(mixed <= np.maximum(src_a, src_b))
        covered[a:b] = True
    assert covered.all(), "every output frame is a stem sample, silence or a crossfade"


def _flip(blob: bytes, off: int, bpf: int, frame: int, byte: int, bit: int) -> bytes:
    b = bytearray(blob)
    b[off + frame * bpf + byte] ^= 1 << bit
    return bytes(b)


@PROPERTY
@given(cases(), st.data())
def test_one_flipped_bit_outside_crossfades_fails_verify(case: Case, data) -> None:
    msg = build(case)
    blob = msg.to_bytes()
    lay = layout(case)
    off = data_offset(blob, msg)
    bpf = msg.timeline.channels * len(pack(np.zeros(1), case.fmt))
    in_fade = np.zeros(lay.total, dtype=bool)
    for a, b in lay.crossfades:
        in_fade[a:b] = True
    outside = np.flatnonzero(~in_fade)
    # one frame chosen by hypothesis anywhere outside crossfades, plus one in each
    # region kind that exists: lead, tail, every pause, every stem body
    targets = []
    if len(outside):  # (a message can be one crossfade and nothing else)
        targets.append(int(outside[data.draw(st.integers(0, len(outside) - 1), label="frame index")]))
    regions = [(0, case.lead), (lay.total - case.tail, lay.total), *lay.pauses]
    fades = [t.crossfade_frames for t in case.transitions] + [0]
    for i, (p, start) in enumerate(zip(case.pieces, lay.starts)):
        regions.append((start + (fades[i - 1] if i else 0), start + p.trim.frames - fades[i]))
    for a, b in regions:
        if b > a:
            targets.append(data.draw(st.integers(a, b - 1), label="frame in region"))
    for frame in targets:
        assert not in_fade[frame]
        byte = data.draw(st.integers(0, bpf - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        with pytest.raises(VerificationError):
            verify(_flip(blob, off, bpf, frame, byte, bit), case.stem_map, msg.timeline)


# --------------------------------------------------------------------------------------
# crossfades never clip
# --------------------------------------------------------------------------------------


def _fade_pair(fmt: str, a: np.ndarray, b: np.ndarray, fade: int):
    channels = a.shape[1]
    wav_a = encode_wav(PcmAudio(22050, channels, fmt, pack(a, fmt)))
    wav_b = encode_wav(PcmAudio(22050, channels, fmt, pack(b, fmt)))
    pa, pb = parse_wav(wav_a), parse_wav(wav_b)
    msg = assemble(
        [Piece("a", pa, sha(wav_a), TrimRange(0, pa.frames)), Piece("b", pb, sha(wav_b), TrimRange(0, pb.frames))],
        [Transition(crossfade_frames=fade)],
    )
    blob = msg.to_bytes()
    verify(blob, {sha(wav_a): wav_a, sha(wav_b): wav_b}, msg.timeline)
    out, _ = sf_read(blob, fmt)
    a_, _ = sf_read(wav_a, fmt)
    b_, _ = sf_read(wav_b, fmt)
    n = a_.shape[0]
    np.testing.assert_array_equal(out[: n - fade], a_[: n - fade])
    np.testing.assert_array_equal(out[n:], b_[fade:])
    return out, a_[n - fade :], b_[:fade], n


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fade", [1, 2, 7, 64])
@pytest.mark.parametrize("level", [1.0, 0.97])
def test_crossfade_of_opposite_full_scale_inputs_stays_in_range(fmt: str, channels: int, fade: int, level: float) -> None:
    """Constant +FS-ish into -FS-ish (and the reverse on channel 2): every mixed sample
    lies between its sources, the mix moves monotonically from one to the other, and no
    step is a jump (a wrapped integer would be a full-scale click)."""
    hi, lo = top(fmt) * level, bottom(fmt) * level
    if fmt != "pcm_f32le":
        hi, lo = int(hi), int(lo)
    a = np.full((100, channels), hi)
    b = np.full((100, channels), lo)
    if channels == 2:
        a[:, 1], b[:, 1] = lo, hi
    out, sa, sb, n = _fade_pair(fmt, a, b, fade)
    mixed = out[n - fade : n].astype(np.float64)
    assert np.all(mixed >= np.minimum(sa, sb)) and np.all(mixed <= np.maximum(sa, sb))
    path = out[n - fade - 1 : n + 1].astype(np.float64)  # last pure a, the mix, first pure b
    span = np.abs(path[-1] - path[0])
    tol = 1e-6 if fmt == "pcm_f32le" else 1 * (2 ** SF_READ[fmt][1])  # 1 LSB in soundfile's scale
    assert np.all(np.abs(np.diff(path, axis=0)) <= 2 * span / fade + tol), "a jump inside the crossfade"
    direction = np.sign(path[-1] - path[0])
    assert np.all(np.diff(path, axis=0) * direction >= -tol), "not monotonic"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", range(3))
def test_crossfade_of_random_near_full_scale_opposite_inputs_stays_in_range(fmt: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mag = lambda: rng.uniform(0.85, 1.0, size=(200, 2))  # noqa: E731
    a, b = mag() * top(fmt), -mag() * -bottom(fmt)
    a[::17], b[::13] = top(fmt), bottom(fmt)  # some exact rails too
    if fmt != "pcm_f32le":
        a, b = np.rint(a).astype(np.int64), np.rint(b).astype(np.int64)
    else:
        a, b = a.astype(np.float32), b.astype(np.float32)
    out, sa, sb, n = _fade_pair(fmt, a, b, 150)
    mixed = out[n - 150 : n]
    assert np.all(mixed >= np.minimum(sa, sb)) and np.all(mixed <= np.maximum(sa, sb))


def test_float_crossfade_of_over_range_peaks_still_verifies() -> None:
    """Float WAVs may hold isolated peaks above 1.0 (validate_audio allows runs of <= 2
    full-scale samples). Where both sources are above 1.0 the mix must stay between
    them; clipping it to 1.0 puts it outside its sources' range and verify() rejects a
    message that assemble() itself produced."""
    a = np.full((50, 1), 0.5, dtype=np.float32)
    b = np.full((50, 1), -0.5, dtype=np.float32)
    a[-2:] = 1.25
    b[:2] = 1.5
    wav_a = encode_wav(PcmAudio(22050, 1, "pcm_f32le", pack(a, "pcm_f32le")))
    wav_b = encode_wav(PcmAudio(22050, 1, "pcm_f32le", pack(b, "pcm_f32le")))
    pa, pb = load_wav(wav_a, "a"), load_wav(wav_b, "b")  # both are acceptable stems
    msg = assemble(
        [Piece("a", pa, sha(wav_a), TrimRange(0, 50)), Piece("b", pb, sha(wav_b), TrimRange(0, 50))],
        [Transition(crossfade_frames=2)],
    )
    verify(msg.to_bytes(), {sha(wav_a): wav_a, sha(wav_b): wav_b}, msg.timeline)


# --------------------------------------------------------------------------------------
# format mismatch and impossible timelines
# --------------------------------------------------------------------------------------


def _piece(seg: str, rate=22050, channels=1, fmt="pcm_s16le", frames=200) -> Piece:
    s = make_stem(np.random.default_rng(zlib.crc32(seg.encode())), fmt, channels, 10, frames - 20, 10, "sine")
    wav = encode_wav(PcmAudio(rate, channels, fmt, pack(s, fmt)))
    audio = parse_wav(wav)
    return Piece(seg, audio, sha(wav), TrimRange(0, audio.frames))


@pytest.mark.parametrize(
    "odd, what",
    [
        (dict(rate=24000), "24000"),
        (dict(rate=44100), "44100"),
        (dict(channels=2), "2 ch"),
        (dict(fmt="pcm_s24le"), "pcm_s24le"),
        (dict(fmt="pcm_f32le"), "pcm_f32le"),
        (dict(fmt="pcm_s32le", channels=2, rate=48000), "48000"),
    ],
)
@pytest.mark.parametrize("position", [1, 2])
def test_format_mismatch_names_the_offending_segment(odd: dict, what: str, position: int) -> None:
    pieces = [_piece("greeting"), _piece("intro"), _piece("close")]
    pieces[position] = _piece("brand-hilton", **odd)
    with pytest.raises(FormatMismatchError) as exc:
        assemble(pieces, [Transition(pause_frames=10)] * 2)
    assert "brand-hilton" in exc.value.source and "brand-hilton" in str(exc.value)
    assert what in str(exc.value)


@pytest.mark.parametrize(
    "transitions, lead, trims, problem",
    [
        ([Transition()], 0, None, "transitions"),  # 3 pieces need 2
        ([Transition(pause_frames=5, crossfade_frames=5)] * 2, 0, None, "either a pause or a crossfade"),
        ([Transition(crossfade_frames=500), Transition()], 0, None, "crossfade"),
        ([Transition(crossfade_frames=150), Transition(crossfade_frames=150)], 0, None, "crossfade"),
        ([Transition(pause_frames=-1), Transition()], 0, None, "pause"),
        ([Transition(), Transition()], -1, None, "lead"),
        ([Transition(), Transition()], 0, (5, 5), "trim"),
        ([Transition(), Transition()], 0, (0, 999), "trim"),
    ],
)
def test_impossible_timelines_raise(transitions, lead, trims, problem) -> None:
    pieces = [_piece("a"), _piece("b"), _piece("c")]
    if trims:
        pieces[1] = Piece("b", pieces[1].stem, pieces[1].stem_sha256, TrimRange(*trims))
    with pytest.raises(TimelineError) as exc:
        assemble(pieces, transitions, lead_frames=lead)
    assert problem in str(exc.value)
    with pytest.raises(TimelineError):
        assemble([], [])


def test_verify_rejects_wrong_or_missing_stems_and_tampered_timelines() -> None:
    pieces = [_piece("a"), _piece("b")]
    wavs = {p.stem_sha256: encode_wav(p.stem) for p in pieces}
    msg = assemble(pieces, [Transition(pause_frames=30)], lead_frames=5, tail_frames=5)
    blob = msg.to_bytes()
    verify(blob, wavs, msg.timeline)
    with pytest.raises(VerificationError, match="not provided"):
        verify(blob, {pieces[0].stem_sha256: wavs[pieces[0].stem_sha256]}, msg.timeline)
    swapped = {pieces[0].stem_sha256: wavs[pieces[1].stem_sha256], pieces[1].stem_sha256: wavs[pieces[1].stem_sha256]}
    with pytest.raises(VerificationError, match="hashes to"):
        verify(blob, swapped, msg.timeline)
    d = msg.timeline.to_dict()
    d["entries"][1]["pause_after"] = 1
    for bad in (
        {**d, "total_frames": d["total_frames"] + 1},
        {**d, "lead_frames": 4},
        {**d, "tail_frames": 6},
        {**d, "entries": [{**d["entries"][0], "pause_after": 29}, d["entries"][1]]},
        {**d, "entries": [{**d["entries"][0], "crossfade_after": 3, "pause_after": 0}, d["entries"][1]]},
        {**d, "sample_rate": 44100},
    ):
        with pytest.raises(VerificationError):
            verify(blob, wavs, Timeline.from_dict(bad))


# --------------------------------------------------------------------------------------
# nothing written on failure; atomic writes
# --------------------------------------------------------------------------------------


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_failed_assembly_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "msg.wav"
    with pytest.raises(FormatMismatchError):
        assemble([_piece("a"), _piece("b", rate=44100)], [Transition(pause_frames=10)]).write(out)
    assert not out.exists()
    assert not out.parent.exists() or _listing(out.parent) == []


def test_write_is_atomic_and_returns_the_file_hash(tmp_path: Path) -> None:
    msg = assemble([_piece("a"), _piece("b")], [Transition(pause_frames=10)])
    path = tmp_path / "m" / "msg.wav"
    digest = msg.write(path)
    assert digest == sha(path.read_bytes()) == msg.sha256()
    assert _listing(path.parent) == ["msg.wav"]
    assert sf.info(str(path)).frames == msg.timeline.total_frames


def _old_file(tmp_path: Path) -> Path:
    path = tmp_path / "msg.wav"
    path.write_bytes(b"previous version")
    return path


def _assert_untouched(path: Path) -> None:
    assert path.read_bytes() == b"previous version"
    assert _listing(path.parent) == [path.name], "no temp file left behind"


def test_parts_iterable_raising_midway_leaves_previous_file(tmp_path: Path) -> None:
    path = _old_file(tmp_path)

    def parts():
        yield b"RIFF"
        yield b"\x00" * 1000
        raise RuntimeError("stem store went away")

    with pytest.raises(RuntimeError, match="went away"):
        fsutil.atomic_write_bytes(path, parts(), fsync=False)
    _assert_untouched(path)


@pytest.mark.parametrize("fail", ["os.replace", "os.writev", "os.fsync", "KeyboardInterrupt"])
def test_failure_inside_atomic_write_leaves_previous_file(tmp_path: Path, monkeypatch, fail: str) -> None:
    path = _old_file(tmp_path)
    real_writev = os.writev
    calls = []

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    def writev_then_fail(fd, bufs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_writev(fd, [bytes(bufs[0])[:10]])  # a partial write first

    if fail == "os.replace":
        monkeypatch.setattr(fsutil.os, "replace", boom)
    elif fail == "os.writev":
        monkeypatch.setattr(fsutil.os, "writev", writev_then_fail)
    elif fail == "os.fsync":
        monkeypatch.setattr(fsutil.os, "fsync", boom)
    else:
        def interrupt(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr(fsutil.os, "replace", interrupt)
    with pytest.raises((OSError, KeyboardInterrupt)):
        fsutil.atomic_write_bytes(path, [b"new " * 100, b"content"], fsync=True)
    _assert_untouched(path)


def test_message_write_failure_leaves_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = _old_file(tmp_path)
    msg = assemble([_piece("a"), _piece("b")], [Transition(pause_frames=10)])
    monkeypatch.setattr(fsutil.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("EXDEV")))
    with pytest.raises(OSError):
        msg.write(path)
    _assert_untouched(path)


@pytest.mark.parametrize("max_write", [1, 3, 7, 4096])
def test_short_writes_and_many_parts_are_handled(tmp_path: Path, monkeypatch, max_write: int) -> None:
    """writev may write less than asked and takes at most IOV_MAX buffers: the result must
    still be the exact concatenation."""
    real_writev = os.writev

    def short_writev(fd, bufs):
        joined = b"".join(bytes(b) for b in bufs)
        return real_writev(fd, [joined[:max_write]])

    monkeypatch.setattr(fsutil.os, "writev", short_writev)
    rng = np.random.default_rng(max_write)
    parts = [rng.bytes(int(n)) for n in rng.integers(0, 5, size=2500)]  # includes empty parts
    parts.append(memoryview(b"tail-bytes")[2:])
    path = tmp_path / "x.bin"
    fsutil.atomic_write_bytes(path, parts, fsync=False)
    assert path.read_bytes() == b"".join(bytes(p) for p in parts)
    assert _listing(tmp_path) == ["x.bin"]


# --------------------------------------------------------------------------------------
# trimming
# --------------------------------------------------------------------------------------


@st.composite
def trim_cases(draw):
    fmt = draw(st.sampled_from(FORMATS))
    channels = draw(st.integers(1, 2))
    threshold = draw(st.integers(-60, -20))
    zero = draw(st.integers(-90, threshold - 13))  # room for frames between the two levels
    fs = FULL_SCALE[fmt]
    thr_amp, zero_amp = fs * 10 ** (threshold / 20), fs * 10 ** (zero / 20)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # per-frame classes: q = near-zero (<= zero_amp), m = between zero and threshold, l = loud
    edge = st.lists(st.sampled_from("qqmm"), max_size=40).map("".join)
    body = st.lists(st.sampled_from("qml"), max_size=60).map("".join)
    pattern = draw(edge) + "l" + draw(body) + draw(st.sampled_from(["", "l"])) + draw(edge)
    ranges = {"q": (0.0, 0.5 * zero_amp), "m": (2.0 * zero_amp, 0.5 * thr_amp), "l": (2.0 * thr_amp, 0.9 * fs)}
    lvl = np.array([rng.uniform(*ranges[c]) for c in pattern])
    x = np.zeros((len(pattern), channels))
    loud_ch = rng.integers(0, channels, size=len(pattern))
    x[np.arange(len(pattern)), loud_ch] = lvl * rng.choice([-1, 1], size=len(pattern))
    if channels == 2:  # the other channel at most as loud
        other = 1 - loud_ch
        x[np.arange(len(pattern)), other] = lvl * rng.uniform(-1, 1, size=len(pattern))
    if fmt == "pcm_f32le":
        x = x.astype(np.float32)
    else:
        x = np.trunc(x).astype(np.int64)  # truncation toward zero keeps |x| <= level
    return fmt, channels, threshold, zero, x


@PROPERTY
@given(trim_cases())
def test_trim_properties(case) -> None:
    fmt, channels, threshold, zero, x = case
    audio = parse_wav(encode_wav(PcmAudio(16000, channels, fmt, pack(x, fmt))))
    level = np.abs(x.astype(np.float64)).max(axis=1)
    fs = FULL_SCALE[fmt]
    zero_amp, thr_amp = fs * 10 ** (zero / 20), fs * 10 ** (threshold / 20)
    loud = np.flatnonzero(level > thr_amp)
    assume(loud.size)
    tr = find_trim(audio, "s", threshold_dbfs=threshold, zero_dbfs=zero)
    assert 0 <= tr.start < tr.end <= len(x)
    first, last = loud[0], loud[-1]
    # speech onset/offset inside the kept range
    assert tr.start <= first and last < tr.end
    # cut points at near-zero frames, or at the file edge
    assert tr.start == 0 or level[tr.start] <= zero_amp
    assert tr.end == len(x) or level[tr.end - 1] <= zero_amp
    # ...and the nearest such frames: no quiet frame strictly between cut and speech
    assert np.all(level[tr.start + 1 : first] > zero_amp)
    assert np.all(level[last + 1 : tr.end - 1] > zero_amp)
    if tr.start == 0 and level[0] > zero_amp:
        assert np.all(level[:first] > zero_amp)
    # retained samples untouched
    kept = audio.slice_frames(tr.start, tr.end)
    assert kept.data == pack(x[tr.start : tr.end], fmt)
    np.testing.assert_array_equal(kept.samples, x[tr.start : tr.end].astype(kept.samples.dtype))


def test_trim_threshold_is_configurable() -> None:
    fs = 2**15
    x = np.zeros((1000, 1), dtype=np.int64)
    x[100:300] = int(fs * 10 ** (-40 / 20))  # a soft breath at -40 dBFS
    x[500:700] = int(fs * 10 ** (-10 / 20))  # speech at -10 dBFS
    audio = PcmAudio(8000, 1, "pcm_s16le", pack(x, "pcm_s16le"))
    assert find_trim(audio) == TrimRange(99, 701)  # default -50 dBFS keeps the breath
    assert find_trim(audio, threshold_dbfs=-30) == TrimRange(499, 701)
    assert find_trim(audio, threshold_dbfs=-10.5, zero_dbfs=-60) == TrimRange(499, 701)
    with pytest.raises(SilentAudioError):
        find_trim(audio, "quiet", threshold_dbfs=-5)
    with pytest.raises(ValueError):
        find_trim(audio, threshold_dbfs=-50, zero_dbfs=-40)


def test_trim_never_cuts_mid_waveform() -> None:
    x = (np.sin(np.arange(400) / 3) * 20000).astype(np.int64)[:, None]
    x[x == 0] = 1  # no near-zero frame anywhere
    x = np.where(np.abs(x) < 20, 30, x)
    audio = PcmAudio(8000, 1, "pcm_s16le", pack(x, "pcm_s16le"))
    assert find_trim(audio) == TrimRange(0, 400)


@pytest.mark.parametrize("fmt", FORMATS)
def test_trim_all_silent_raises_naming_source(fmt: str) -> None:
    fs = FULL_SCALE[fmt]
    x = np.zeros((300, 2))
    x[::3, 1] = fs * 10 ** (-65 / 20)  # faint, below the -50 dBFS default threshold
    if fmt != "pcm_f32le":
        x = np.trunc(x).astype(np.int64)
    audio = PcmAudio(8000, 2, fmt, pack(x, fmt))
    with pytest.raises(SilentAudioError) as exc:
        find_trim(audio, "stem 'greeting'")
    assert "stem 'greeting'" in str(exc.value)
    with pytest.raises(SilentAudioError):
        find_trim(PcmAudio(8000, 2, fmt, bytes(len(pack(x, fmt)))), "zeros")


# --------------------------------------------------------------------------------------
# semantic timing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, boundary",
    [
        ("Talk soon.", Boundary.SENTENCE),
        ("Talk soon!", Boundary.SENTENCE),
        ("Can you call me?", Boundary.SENTENCE),
        ("Well…", Boundary.SENTENCE),
        ("Well...", Boundary.SENTENCE),
        ('He said "call me."', Boundary.SENTENCE),
        ("He said “call me.”", Boundary.SENTENCE),
        ("She said 'yes!'", Boundary.SENTENCE),
        ("(Talk soon.)", Boundary.SENTENCE),
        ("«Hasta pronto.»", Boundary.SENTENCE),
        ("Talk soon.  ", Boundary.SENTENCE),
        ("Hey John,", Boundary.CLAUSE),
        ("Hey John, ", Boundary.CLAUSE),
        ("first;", Boundary.CLAUSE),
        ("note:", Boundary.CLAUSE),
        ("and then—", Boundary.CLAUSE),
        ("and then –", Boundary.CLAUSE),
        ('he said "wait,"', Boundary.CLAUSE),
        ("about your", Boundary.PHRASE),
        ("Hilton", Boundary.PHRASE),
        ("", Boundary.PHRASE),
        ("   ", Boundary.PHRASE),
        ("¡Hola!", Boundary.SENTENCE),
        ("¿qué?", Boundary.SENTENCE),
        ("¿Cómo está usted?", Boundary.SENTENCE),
        ("¡Hasta pronto!", Boundary.SENTENCE),
        ("Hola María,", Boundary.CLAUSE),
        ("su tiempo compartido de", Boundary.PHRASE),
        ("¡Hola", Boundary.PHRASE),
        ("¿", Boundary.PHRASE),
    ],
)
def test_classify_boundary(text: str, boundary: Boundary) -> None:
    assert classify_boundary(text) is boundary


@given(st.integers(0, 10**7), st.sampled_from([8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000, 384000]))
@settings(max_examples=300, deadline=None)
def test_ms_to_frames_rounds_half_up_exactly(ms: int, rate: int) -> None:
    exact = Fraction(ms * rate, 1000)
    got = ms_to_frames(ms, rate)
    assert isinstance(got, int)
    assert got == int(exact + Fraction(1, 2))  # floor(x + 1/2): half up
    assert abs(Fraction(got) - exact) <= Fraction(1, 2)


@pytest.mark.parametrize(
    "ms, rate, frames",
    [(0, 22050, 0), (1, 22050, 22), (10, 22050, 221), (450, 22050, 9923), (200, 22050, 4410),
     (60, 44100, 2646), (1, 44100, 44), (3, 11025, 33), (5000, 48000, 240000)],
)
def test_ms_to_frames_examples(ms: int, rate: int, frames: int) -> None:
    assert ms_to_frames(ms, rate) == frames


def test_ms_to_frames_refuses_negative() -> None:
    with pytest.raises(ValueError):
        ms_to_frames(-1, 22050)


def test_timing_rules_defaults() -> None:
    r = TimingRules()
    assert [r.pause_ms(b) for b in (Boundary.SENTENCE, Boundary.CLAUSE, Boundary.PHRASE)] == [450, 200, 60]
    assert r.pause_ms(Boundary.SENTENCE) > r.pause_ms(Boundary.CLAUSE) > r.pause_ms(Boundary.PHRASE)


# --------------------------------------------------------------------------------------
# pauses match the semantic rules to the sample, measured on real offline-TTS output
# --------------------------------------------------------------------------------------

# what the rules say for the shipped templates, written out by hand
EXPECTED_PAUSES_MS = {
    # greeting "Hey X," (override 150) | intro "it's Luis." sentence | lead-in (override 40)
    # | brand "X timeshare." sentence | offer "...fees." sentence
    "followup-en": [150, 450, 40, 450, 450],
    "seguimiento-es": [160, 480, 40, 480, 480],
}


def _nonzero_frames(samples: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.any(samples != 0, axis=1))


@pytest.mark.parametrize(
    "template_id, name, developer",
    [
        ("followup-en", "Ana", "Hilton"),
        ("followup-en", "Dr. Mary-Kate O'Brien", "Marriott Vacation Club"),
        ("seguimiento-es", "José", "Club Med"),
    ],
)
def test_pauses_match_semantic_rules_on_offline_tts(template_id: str, name: str, developer: str) -> None:
    espeak = pytest.importorskip("hybrid_audio_dagster.core.tts.espeak")
    from hybrid_audio_dagster.core.templates import load_template

    template = load_template(REPO_ROOT / "templates" / f"{template_id}.json")
    engine = espeak.EspeakEngine()
    voice = template.voice_settings()
    texts = [s.render(name=name, developer=developer) for s in template.segments]
    pieces, retained = [], []
    for seg, text in zip(template.segments, texts):
        wav = engine.synthesize(text, voice)
        audio = load_wav(wav, f"stem '{seg.id}'")
        tr = find_trim(audio, f"stem '{seg.id}'")
        pieces.append(Piece(seg.id, audio, sha(wav), tr))
        retained.append(audio.slice_frames(tr.start, tr.end))
    rate = pieces[0].stem.sample_rate
    transitions, expected_pause = [], []
    for i in range(len(pieces) - 1):
        boundary, pause_ms, crossfade_ms = template.transition_after(i, texts[i])
        assert crossfade_ms == 0
        transitions.append(Transition(pause_frames=ms_to_frames(pause_ms, rate), boundary=str(boundary)))
        expected_pause.append(pause_ms)
    assert expected_pause == EXPECTED_PAUSES_MS[template_id]
    timing = template.timing
    lead, tail = ms_to_frames(timing.lead_ms, rate), ms_to_frames(timing.tail_ms, rate)
    msg = assemble(pieces, transitions, lead_frames=lead, tail_frames=tail)
    blob = msg.to_bytes()
    verify(blob, {p.stem_sha256: p.stem for p in pieces}, msg.timeline)

    # --- measure in the output, independently of the timeline ---
    out, info = sf_read(blob, "pcm_s16le")
    assert info.samplerate == rate and info.channels == 1
    raw = np.frombuffer(blob[data_offset(blob, msg) :], dtype="<i2")[: len(out)].reshape(-1, 1)
    found, cursor = [], 0
    for r in retained:  # locate each stem's retained samples in the output by content
        pos = blob.find(r.data, data_offset(blob, msg) + cursor * 2)
        assert pos >= 0 and (pos - data_offset(blob, msg)) % 2 == 0
        frame = (pos - data_offset(blob, msg)) // 2
        found.append(frame)
        cursor = frame + r.frames
    for i in range(len(retained) - 1):
        a, b = retained[i].samples, retained[i + 1].samples
        last_nz = found[i] + int(_nonzero_frames(a)[-1])
        first_nz = found[i + 1] + int(_nonzero_frames(b)[0])
        # the run of exact digital silence between the two stems' sounds
        gap = raw[last_nz + 1 : first_nz]
        assert raw[last_nz].any() and raw[first_nz].any() and not gap.any()
        own_zeros = (a.shape[0] - 1 - int(_nonzero_frames(a)[-1])) + int(_nonzero_frames(b)[0])
        pause_frames = len(gap) - own_zeros
        assert pause_frames == ms_to_frames(EXPECTED_PAUSES_MS[template_id][i], rate), (
            f"junction {template.segments[i].id} → {template.segments[i + 1].id}: "
            f"{pause_frames} frames of pause, rule says {EXPECTED_PAUSES_MS[template_id][i]} ms"
        )
    # lead and tail measured the same way
    first_sound = int(_nonzero_frames(raw)[0])
    assert first_sound - int(_nonzero_frames(retained[0].samples)[0]) == ms_to_frames(timing.lead_ms, rate)
    last_sound = int(_nonzero_frames(raw)[-1])
    r = retained[-1].samples
    assert len(raw) - 1 - last_sound - (r.shape[0] - 1 - int(_nonzero_frames(r)[-1])) == ms_to_frames(timing.tail_ms, rate)
    assert len(raw) == info.frames
