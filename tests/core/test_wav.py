"""Acceptance tests of WAV decoding, validation and encoding (``core/audio/wav.py``).

Reference files are written by libsndfile (``soundfile``), Python's ``wave`` module or by
hand with ``struct`` — never with the encoder under test — and decoded samples are
compared against libsndfile's reading of the same bytes.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_audio_dagster.core.audio.errors import (
    AudioError,
    ClippedAudioError,
    EmptyAudioError,
    InvalidWavError,
    SilentAudioError,
    TruncatedWavError,
    UnsupportedFormatError,
)
from hybrid_audio_dagster.core.audio.wav import (
    PcmAudio,
    encode_wav,
    load_wav,
    parse_wav,
    validate_audio,
)
from tests.support.campaign import pack

SOURCE = "stems/intro-3f2a.wav"  # every error must name it

# our format name -> (libsndfile subtype, dtype soundfile decodes to, left shift of our ints)
SF_SUBTYPES = {
    "pcm_s16le": ("PCM_16", "int32", 16),
    "pcm_s24le": ("PCM_24", "int32", 8),
    "pcm_s32le": ("PCM_32", "int32", 0),
    "pcm_f32le": ("FLOAT", "float32", 0),
}
FORMATS = list(SF_SUBTYPES)
FULL_SCALE = {"pcm_s16le": 2**15, "pcm_s24le": 2**23, "pcm_s32le": 2**31, "pcm_f32le": 1.0}
BITS = {"pcm_s16le": 16, "pcm_s24le": 24, "pcm_s32le": 32, "pcm_f32le": 32}
TAG = {"pcm_s16le": 1, "pcm_s24le": 1, "pcm_s32le": 1, "pcm_f32le": 3}

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------
# independent helpers (no code under test)
# --------------------------------------------------------------------------------------


def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
    return cid + struct.pack("<I", len(body) if size is None else size) + body + (b"\x00" if len(body) & 1 else b"")


def fmt_body(tag: int, channels: int, rate: int, bits: int, align: int | None = None) -> bytes:
    align = channels * bits // 8 if align is None else align
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def hand_wav(fmt: str, channels: int, rate: int, data: bytes, *, before=(), after=()) -> bytes:
    return riff(
        chunk(b"fmt ", fmt_body(TAG[fmt], channels, rate, BITS[fmt])),
        *before,
        chunk(b"data", data),
        *after,
    )


def random_samples(rng: np.random.Generator, fmt: str, frames: int, channels: int, peak: float = 0.7) -> np.ndarray:
    fs = FULL_SCALE[fmt]
    x = rng.uniform(-peak, peak, size=(frames, channels))
    if fmt == "pcm_f32le":
        return x.astype(np.float32)
    return np.rint(x * fs).astype(np.int64)


def sf_wav(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """A WAV written by libsndfile holding exactly ``samples`` (ints in our scale)."""
    subtype, _, shift = SF_SUBTYPES[fmt]
    buf = io.BytesIO()
    if fmt == "pcm_f32le":
        sf.write(buf, samples.astype(np.float32), rate, subtype=subtype, format="WAV")
    else:
        sf.write(buf, (samples.astype(np.int64) << shift).astype(np.int32), rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def sf_decode(wav_bytes: bytes, fmt: str) -> tuple[np.ndarray, int]:
    _, dtype, _ = SF_SUBTYPES[fmt]
    data, rate = sf.read(io.BytesIO(wav_bytes), dtype=dtype, always_2d=True)
    return data, rate


def as_sf_scale(samples: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "pcm_f32le":
        return np.asarray(samples, dtype=np.float32)
    return (np.asarray(samples, dtype=np.int64) << SF_SUBTYPES[fmt][2]).astype(np.int32)


# --------------------------------------------------------------------------------------
# decoding well-formed files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_parse_matches_libsndfile(fmt: str, channels: int, rate: int) -> None:
    rng = np.random.default_rng(hash((fmt, channels, rate)) & 0xFFFF)
    samples = random_samples(rng, fmt, 333, channels, peak=0.99)
    blob = sf_wav(samples, rate, fmt)
    audio = parse_wav(blob, SOURCE)
    assert audio.format_key == (rate, channels, fmt)
    assert audio.frames == 333
    ref, ref_rate = sf_decode(blob, fmt)
    assert ref_rate == rate
    np.testing.assert_array_equal(as_sf_scale(audio.samples, fmt), ref)
    # the kept bytes are the file's data bytes, not a re-encoding
    assert audio.data == pack(samples, fmt)
    assert audio.data in blob


@FAST
@given(
    fmt=st.sampled_from(FORMATS),
    channels=st.integers(1, 2),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    frames=st.integers(1, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_encode_wav_roundtrip_and_libsndfile_reads_it(fmt, channels, rate, frames, seed) -> None:
    samples = random_samples(np.random.default_rng(seed), fmt, frames, channels, peak=1.0)
    audio = PcmAudio(rate, channels, fmt, pack(samples, fmt))
    blob = encode_wav(audio)
    back = parse_wav(blob)
    assert back.format_key == audio.format_key and back.data == audio.data
    info = sf.info(io.BytesIO(blob))
    assert (info.samplerate, info.channels, info.frames) == (rate, channels, frames)
    ref, _ = sf_decode(blob, fmt)
    np.testing.assert_array_equal(ref, as_sf_scale(samples, fmt))


def test_parse_skips_unknown_and_odd_sized_chunks() -> None:
    samples = np.array([[100, -100], [200, -200], [3000, -3000]])
    data = pack(samples, "pcm_s16le")
    blob = hand_wav(
        "pcm_s16le",
        2,
        16000,
        data,
        before=(chunk(b"LIST", b"INFOINAM\x05\x00\x00\x00odd!!"), chunk(b"junk", b"abc")),  # odd sizes: padded
        after=(chunk(b"id3 ", b"ID3\x04\x00\x00\x00\x00\x00\x00"),),
    )
    audio = parse_wav(blob, SOURCE)
    assert audio.format_key == (16000, 2, "pcm_s16le") and audio.data == data


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_wave_format_extensible(fmt: str) -> None:
    rng = np.random.default_rng(7)
    samples = random_samples(rng, fmt, 50, 2)
    data = pack(samples, fmt)
    base = fmt_body(0xFFFE, 2, 44100, BITS[fmt])
    guid = struct.pack("<H", TAG[fmt]) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = base + struct.pack("<HHI", 22, BITS[fmt], 0x3) + guid
    audio = parse_wav(riff(chunk(b"fmt ", ext), chunk(b"data", data)), SOURCE)
    assert audio.format_key == (44100, 2, fmt) and audio.data == data


def test_odd_length_data_is_padded_and_still_exact() -> None:
    data = pack(np.array([[1000], [-1000], [77]]), "pcm_s24le")  # 9 bytes: odd
    audio = PcmAudio(8000, 1, "pcm_s24le", data)
    blob = encode_wav(audio)
    assert len(blob) % 2 == 0
    assert parse_wav(blob).data == data
    assert sf.info(io.BytesIO(blob)).frames == 3


# --------------------------------------------------------------------------------------
# refused inputs: each error class, each message naming the source
# --------------------------------------------------------------------------------------


def assert_names_source(exc: pytest.ExceptionInfo, source: str = SOURCE) -> None:
    assert exc.value.source == source
    assert source in str(exc.value)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("missing", [1, 2, 3, 100, 399])
def test_truncated_wav(fmt: str, missing: int) -> None:
    rng = np.random.default_rng(1)
    blob = sf_wav(random_samples(rng, fmt, 100, 2), 22050, fmt)  # 400..800 data bytes
    with pytest.raises(TruncatedWavError) as exc:
        parse_wav(blob[:-missing], SOURCE)
    assert_names_source(exc)
    with pytest.raises(TruncatedWavError):
        load_wav(blob[:-missing], SOURCE)


@FAST
@given(cut=st.integers(min_value=1, max_value=400), fmt=st.sampled_from(FORMATS))
def test_truncated_anywhere_in_the_data_chunk(cut: int, fmt: str) -> None:
    data = pack(random_samples(np.random.default_rng(cut), fmt, 100, 1), fmt)
    blob = hand_wav(fmt, 1, 16000, data)
    cut = min(cut, len(data))  # cut == len(data): the header survives, no data at all
    with pytest.raises(TruncatedWavError) as exc:
        parse_wav(blob[: len(blob) - cut], SOURCE)
    assert_names_source(exc)


@FAST
@given(cut=st.integers(min_value=0, max_value=43))
def test_truncated_inside_the_header_is_refused(cut: int) -> None:
    blob = hand_wav("pcm_s16le", 1, 16000, pack(np.arange(1, 50)[:, None] * 300, "pcm_s16le"))
    with pytest.raises((InvalidWavError, TruncatedWavError)) as exc:
        parse_wav(blob[:cut], SOURCE)
    assert_names_source(exc)


def test_data_not_a_whole_number_of_frames() -> None:
    blob = hand_wav("pcm_s16le", 2, 16000, b"\x01\x02\x03\x04\x05\x06")  # 1.5 frames
    with pytest.raises(TruncatedWavError) as exc:
        parse_wav(blob, SOURCE)
    assert_names_source(exc)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_wav(fmt: str) -> None:
    blob = sf_wav(np.zeros((0, 1)), 22050, fmt)
    with pytest.raises(EmptyAudioError) as exc:
        parse_wav(blob, SOURCE)
    assert_names_source(exc)
    with pytest.raises(EmptyAudioError):
        load_wav(blob, SOURCE)
    # libsndfile with metadata puts a LIST chunk before the empty data chunk
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 8000, 1, SF_SUBTYPES[fmt][0], format="WAV") as f:
        f.title = "empty"
        f.write(np.zeros((0, 1)))
    with pytest.raises(EmptyAudioError):
        parse_wav(buf.getvalue(), SOURCE)
    with pytest.raises(EmptyAudioError):
        validate_audio(PcmAudio(8000, 1, fmt, b""), SOURCE)


def test_empty_data_chunk_followed_by_another_chunk_is_empty() -> None:
    """A 0-byte data chunk followed by metadata (libsndfile writes LIST after data when
    the title is set after the samples) holds no audio; the metadata must not be
    mistaken for samples of a streamed file of unknown length."""
    blob = riff(
        chunk(b"fmt ", fmt_body(1, 1, 8000, 16)),
        chunk(b"data", b""),
        chunk(b"LIST", b"INFOINAM\x08\x00\x00\x00hello!\x00\x00"),
    )
    with pytest.raises(EmptyAudioError) as exc:
        parse_wav(blob, SOURCE)
    assert_names_source(exc)


def test_streamed_wav_with_unknown_data_size_is_accepted() -> None:
    data = pack(np.arange(-50, 50)[:, None] * 200, "pcm_s16le")
    for size in (0xFFFFFFFF, 0):
        blob = riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16))) + b"data" + struct.pack("<I", size) + data
        assert parse_wav(blob).data == data


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("level", ["zero", "-80dBFS"])
def test_silent_wav(fmt: str, level: str) -> None:
    if level == "zero":
        samples = np.zeros((500, 2))
    else:
        samples = random_samples(np.random.default_rng(3), fmt, 500, 2, peak=10 ** (-80 / 20))
        if fmt == "pcm_s16le":
            samples[::7] = 1  # keep some non-zero content
    blob = hand_wav(fmt, 2, 22050, pack(samples, fmt))
    assert parse_wav(blob, SOURCE).frames == 500  # well-formed...
    with pytest.raises(SilentAudioError) as exc:
        load_wav(blob, SOURCE)  # ...but refused as a stem
    assert_names_source(exc)


def test_silence_threshold_is_configurable() -> None:
    samples = np.full((100, 1), int(2**15 * 10 ** (-55 / 20)))  # -55 dBFS
    audio = parse_wav(hand_wav("pcm_s16le", 1, 8000, pack(samples, "pcm_s16le")))
    validate_audio(audio, SOURCE)  # default -60: passes
    with pytest.raises(SilentAudioError):
        validate_audio(audio, SOURCE, silence_dbfs=-50)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("channel", [0, 1])
def test_clipped_wav(fmt: str, sign: int, channel: int) -> None:
    fs = FULL_SCALE[fmt]
    samples = random_samples(np.random.default_rng(4), fmt, 400, 2, peak=0.5)
    rail = (fs if fmt == "pcm_f32le" else fs - 1) if sign > 0 else -fs
    samples[200:206, channel] = rail  # a flattened run of 6 samples
    blob = hand_wav(fmt, 2, 44100, pack(samples, fmt))
    with pytest.raises(ClippedAudioError) as exc:
        load_wav(blob, SOURCE)
    assert_names_source(exc)


@pytest.mark.parametrize("fmt", FORMATS)
def test_isolated_full_scale_peaks_are_not_clipping(fmt: str) -> None:
    fs = FULL_SCALE[fmt]
    top = fs if fmt == "pcm_f32le" else fs - 1
    samples = random_samples(np.random.default_rng(5), fmt, 400, 1, peak=0.5)
    samples[10] = top
    samples[100:102] = -fs  # 2 consecutive: still a peak
    audio = load_wav(hand_wav(fmt, 1, 44100, pack(samples, fmt)), SOURCE)
    assert audio.frames == 400
    samples[300:303] = top
    with pytest.raises(ClippedAudioError):
        load_wav(hand_wav(fmt, 1, 44100, pack(samples, fmt)), SOURCE)


def test_non_finite_float_samples_are_refused() -> None:
    """NaN/inf in a float WAV is not audio: it must not pass as a valid stem (it would
    survive validation, poison crossfades and pass verify's range check, since every
    comparison with NaN is false)."""
    for bad in (np.nan, np.inf, -np.inf):
        samples = random_samples(np.random.default_rng(6), "pcm_f32le", 300, 1, peak=0.5)
        samples[150, 0] = bad
        with pytest.raises(AudioError) as exc:
            load_wav(hand_wav("pcm_f32le", 1, 22050, pack(samples, "pcm_f32le")), SOURCE)
        assert_names_source(exc)


NOT_WAV = {
    "mp3-id3": b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE\x00\x00\x00\x0f\x00\x00\x03Lavf60.3.100" + b"\xff\xfb\x90\x64" + bytes(400),
    "mp3-frame": b"\xff\xfb\x90\x64\x00\x0f\xf0\x00\x00\x69\x00\x00\x00\x08" + bytes(400),
    "html": b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    "json-error": b'{"error": "quota exceeded", "status_code": 402}',
    "empty": b"",
    "riff-avi": b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(40),
    "rifx-big-endian": b"RIFX\x00\x00\x00\x24WAVEfmt " + bytes(40),
    "ogg": b"OggS\x00\x02" + bytes(100),
    "flac": b"fLaC\x00\x00\x00\x22" + bytes(100),
    "wave-without-chunks": b"RIFF\x04\x00\x00\x00WAVE",
    "no-fmt": riff(chunk(b"data", bytes(100))),
    "no-data": riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16))),
    "data-before-fmt": riff(chunk(b"data", bytes(100)), chunk(b"fmt ", fmt_body(1, 1, 8000, 16))),
    "short-fmt": riff(chunk(b"fmt ", b"\x01\x00\x01\x00"), chunk(b"data", bytes(100))),
    "bad-block-align": riff(chunk(b"fmt ", fmt_body(1, 2, 8000, 16, align=3)), chunk(b"data", bytes(120))),
}


@pytest.mark.parametrize("blob", NOT_WAV.values(), ids=NOT_WAV.keys())
def test_non_wav_bytes(blob: bytes) -> None:
    with pytest.raises(InvalidWavError) as exc:
        parse_wav(blob, SOURCE)
    assert_names_source(exc)
    with pytest.raises(InvalidWavError):
        load_wav(blob, SOURCE)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_are_invalid_wav(blob: bytes) -> None:
    with pytest.raises(InvalidWavError) as exc:
        parse_wav(blob, SOURCE)
    assert_names_source(exc)


def _sf_blob(subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(800) / 5)[:, None] * 0.5, 8000, subtype=subtype, format="WAV")
    return buf.getvalue()


def _stdlib_8bit() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 4)
    return buf.getvalue()


UNSUPPORTED = {
    "pcm-u8-libsndfile": lambda: _sf_blob("PCM_U8"),
    "pcm-u8-stdlib": _stdlib_8bit,
    "mu-law": lambda: _sf_blob("ULAW"),
    "a-law": lambda: _sf_blob("ALAW"),
    "ima-adpcm": lambda: _sf_blob("IMA_ADPCM"),
    "float64": lambda: _sf_blob("DOUBLE"),
    "mu-law-by-hand": lambda: riff(chunk(b"fmt ", fmt_body(7, 1, 8000, 8)), chunk(b"data", bytes(range(200)))),
    "extensible-mu-law": lambda: riff(
        chunk(
            b"fmt ",
            fmt_body(0xFFFE, 1, 8000, 8)
            + struct.pack("<HHI", 22, 8, 4)
            + b"\x07\x00"
            + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71",
        ),
        chunk(b"data", bytes(range(200))),
    ),
    "extensible-unknown-guid": lambda: riff(
        chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 16) + struct.pack("<HHI", 22, 16, 4) + bytes(range(16))),
        chunk(b"data", bytes(200)),
    ),
    "zero-channels": lambda: riff(chunk(b"fmt ", fmt_body(1, 0, 8000, 16, align=0)), chunk(b"data", bytes(200))),
    "rate-too-low": lambda: riff(chunk(b"fmt ", fmt_body(1, 1, 10, 16)), chunk(b"data", bytes(200))),
}


@pytest.mark.parametrize("make", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_formats(make) -> None:
    with pytest.raises(UnsupportedFormatError) as exc:
        parse_wav(make(), SOURCE)
    assert_names_source(exc)


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_corrupted_wav_never_crashes_the_parser(fmt: str, edits, cut) -> None:
    """Any byte damage yields a PcmAudio or an AudioError naming the source, never an
    IndexError/struct.error/numpy error from deep inside the parser."""
    blob = bytearray(sf_wav(random_samples(np.random.default_rng(0), fmt, 40, 2), 16000, fmt))
    for pos, value in edits:
        blob[pos % len(blob)] = value
    if cut is not None:
        del blob[cut % (len(blob) + 1) :]
    try:
        audio = parse_wav(bytes(blob), SOURCE)
    except AudioError as exc:
        assert exc.source == SOURCE
        return
    assert audio.frames > 0
    assert audio.samples.shape == (audio.frames, audio.channels)
    try:
        validate_audio(audio, SOURCE)
    except AudioError as exc:
        assert exc.source == SOURCE
