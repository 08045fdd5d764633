"""Trimming and semantic timing (``core/audio/{trim,timing}.py``), and the pauses of real
offline-TTS messages measured to the sample against the rules."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.audio.assemble import Piece, Transition, assemble, verify
from hybrid_audio_dagster.core.audio.errors import SilentAudioError
from hybrid_audio_dagster.core.audio.timing import Boundary, TimingRules, classify_boundary, ms_to_frames
from hybrid_audio_dagster.core.audio.trim import TrimRange, find_trim
from hybrid_audio_dagster.core.audio.wav import PcmAudio, encode_wav, load_wav, parse_wav
from tests.support.assemble import FORMATS, FULL_SCALE, PROPERTY, REPO_ROOT, data_offset, sf_read, sha
from tests.support.campaign import pack

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
    [
        (0, 22050, 0),
        (1, 22050, 22),
        (10, 22050, 221),
        (450, 22050, 9923),
        (200, 22050, 4410),
        (60, 44100, 2646),
        (1, 44100, 44),
        (3, 11025, 33),
        (5000, 48000, 240000),
    ],
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
