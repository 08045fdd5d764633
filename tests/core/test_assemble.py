"""Acceptance tests of bit-exact assembly and verification (``core/audio/assemble.py``):
properties, crossfades that never clip, format mismatches and impossible timelines.
Atomic writing is in ``test_assemble_writes.py``, trimming and timing in ``test_trim_timing.py``.

The property tests check every claim twice: once with the project's own ``verify()``
and once independently, decoding the output with libsndfile (``soundfile``) and
comparing it with numpy against a layout model computed here from the inputs alone
(``tests/support/assemble.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from hybrid_audio_dagster.core.audio.assemble import Piece, Timeline, Transition, assemble, verify
from hybrid_audio_dagster.core.audio.errors import FormatMismatchError, TimelineError, VerificationError
from hybrid_audio_dagster.core.audio.trim import TrimRange
from hybrid_audio_dagster.core.audio.wav import PcmAudio, encode_wav, load_wav, parse_wav
from tests.support.assemble import (
    FORMATS,
    PROPERTY,
    SF_READ,
    Case,
    bottom,
    build,
    cases,
    data_offset,
    layout,
    sf_read,
    sha,
    small_piece,
    top,
)
from tests.support.campaign import pack

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
    pieces = [small_piece("greeting"), small_piece("intro"), small_piece("close")]
    pieces[position] = small_piece("brand-hilton", **odd)
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
    pieces = [small_piece("a"), small_piece("b"), small_piece("c")]
    if trims:
        pieces[1] = Piece("b", pieces[1].stem, pieces[1].stem_sha256, TrimRange(*trims))
    with pytest.raises(TimelineError) as exc:
        assemble(pieces, transitions, lead_frames=lead)
    assert problem in str(exc.value)
    with pytest.raises(TimelineError):
        assemble([], [])


def test_verify_rejects_wrong_or_missing_stems_and_tampered_timelines() -> None:
    pieces = [small_piece("a"), small_piece("b")]
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
