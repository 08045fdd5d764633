"""Tests of the embedded espeak-ng engine: WAV format, levels, determinism, thread safety."""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import struct
import subprocess
import sys
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest

from hybrid_audio_dagster.core.tts.base import TTSEngine, TTSError, VoiceSettings
from hybrid_audio_dagster.core.tts.espeak import (
    COPY_PREFIX,
    EspeakEngine,
    OfflineEngineError,
    UnsupportedLanguageError,
    remove_stale_copies,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EN = VoiceSettings(language="en")
ES = VoiceSettings(language="es")
FULL_SCALE = 32767
MINUS_3_DBFS = int(32768 * 10 ** (-3 / 20))  # 23197

PHRASES = [
    ("Hey John,", EN),
    ("Your appointment is on Tuesday at three pm.", EN),
    ("Hola María,", ES),
    ("Su cita es el martes a las tres de la tarde.", ES),
]


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    return EspeakEngine()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """Check the canonical 44-byte PCM16 mono header; return (sample_rate, samples)."""
    (riff, riff_size, wave_id, fmt_id, fmt_size, tag, channels, rate, byte_rate, align, bits, data_id, data_size) = struct.unpack(
        "<4sI4s4sIHHIIHH4sI", data[:44]
    )
    assert (riff, wave_id, fmt_id, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == len(data) - 8
    assert (fmt_size, tag, channels, bits, align) == (16, 1, 1, 16, 2)
    assert byte_rate == rate * 2
    assert data_size == len(data) - 44 and data_size % 2 == 0
    with wave.open(io.BytesIO(data)) as reader:  # the stdlib agrees
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        assert reader.getframerate() == rate and reader.getnframes() == data_size // 2
    return rate, np.frombuffer(data, "<i2", offset=44).astype(np.int32)


def peak_of(wav: bytes) -> int:
    return int(np.abs(parse_wav(wav)[1]).max())


def test_implements_protocol_and_contract(engine: EspeakEngine) -> None:
    assert isinstance(engine, TTSEngine)
    contract = engine.contract(VoiceSettings("en", voice_id="abc", speed=1.2, emotion="happy"))
    assert contract.engine == "espeak-ng" and contract.model == "espeak-ng"
    assert contract.voice == "en-us" and contract.language == "en"
    assert contract.engine_version.startswith("1.") and "wrapper-" in contract.engine_version
    assert (contract.sample_rate, contract.encoding, contract.channels) == (22050, "pcm_s16le", 1)
    assert (contract.speed, contract.volume, contract.emotion) == (1.2, 1.0, None)
    assert engine.contract(ES).voice == "es"
    assert engine.contract(VoiceSettings("en-GB")).voice == "en-us"  # primary-subtag fallback


@pytest.mark.parametrize(("text", "voice"), PHRASES)
def test_valid_audible_unclipped_wav(engine: EspeakEngine, text: str, voice: VoiceSettings) -> None:
    rate, samples = parse_wav(engine.synthesize(text, voice))
    assert rate == engine.contract(voice).sample_rate == 22050
    peak = int(np.abs(samples).max())
    assert 3000 < peak < MINUS_3_DBFS  # clearly audible, with headroom at volume 1.0
    duration = len(samples) / rate
    assert 0.3 < duration < 2.0 if text.endswith(",") else 1.0 < duration < 5.0


def test_short_greeting_duration(engine: EspeakEngine) -> None:
    rate, samples = parse_wav(engine.synthesize("Hey John,", EN))
    assert 0.5 <= len(samples) / rate <= 1.5


def test_volume_scales_without_clipping(engine: EspeakEngine) -> None:
    text = "WOW! AMAZING! Call us back at five five five, one two three four."
    peaks = {volume: peak_of(engine.synthesize(text, VoiceSettings("en", volume=volume))) for volume in (0.5, 1.0, 2.0)}
    assert peaks[0.5] < peaks[1.0] < peaks[2.0] < FULL_SCALE


def test_speed_changes_rate(engine: EspeakEngine) -> None:
    text = "Your appointment is on Tuesday at three pm."
    slow = parse_wav(engine.synthesize(text, VoiceSettings("en", speed=0.7)))[1]
    fast = parse_wav(engine.synthesize(text, VoiceSettings("en", speed=1.5)))[1]
    assert len(fast) < 0.75 * len(slow)


def test_deterministic_in_process_interleaved(engine: EspeakEngine) -> None:
    first = [engine.synthesize(text, voice) for text, voice in PHRASES]
    # Same phrases again in another order, interleaved with other texts: espeak's static
    # state would make the audio drift if it leaked from one call to the next.
    again: dict[int, bytes] = {}
    for index in (2, 0, 3, 1, 0):
        engine.synthesize("Something else entirely, to disturb any leftover state.", EN)
        again[index] = engine.synthesize(*PHRASES[index])
        assert again[index] == first[index]
    assert len({sha(b) for b in first}) == len(first)


def test_deterministic_with_other_handle_on_library(engine: EspeakEngine) -> None:
    """Another component holding espeakng_loader's library must not break determinism."""
    other = ctypes.CDLL(espeakng_loader.get_library_path())  # stays loaded from here on
    assert other._handle
    runs = [[sha(engine.synthesize(text, voice)) for text, voice in PHRASES] for _ in range(2)]
    assert runs[0] == runs[1]


def test_deterministic_across_processes(engine: EspeakEngine) -> None:
    script = (
        "import hashlib\n"
        "from hybrid_audio_dagster.core.tts.base import VoiceSettings\n"
        "from hybrid_audio_dagster.core.tts.espeak import EspeakEngine\n"
        "e = EspeakEngine()\n"
        "e.synthesize('A different first call.', VoiceSettings('es'))\n"
        f"for text, lang in [({PHRASES[0][0]!r}, 'en'), ({PHRASES[3][0]!r}, 'es')]:\n"
        "    print(hashlib.sha256(e.synthesize(text, VoiceSettings(lang))).hexdigest())\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = [sha(engine.synthesize(*PHRASES[0])), sha(engine.synthesize(*PHRASES[3]))]
    assert result.stdout.split() == expected


def test_thread_safe(engine: EspeakEngine) -> None:
    jobs = [PHRASES[i % len(PHRASES)] for i in range(16)]
    sequential = [engine.synthesize(text, voice) for text, voice in jobs]
    barrier = threading.Barrier(8)

    def run(job: tuple[str, VoiceSettings]) -> bytes:
        barrier.wait(timeout=30)  # 8 threads enter synthesize together (twice: 16 jobs)
        return engine.synthesize(*job)

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(run, jobs))
    assert concurrent == sequential


@pytest.mark.parametrize("language", ["fr", "de-DE", ""])
def test_unknown_language_raises(engine: EspeakEngine, language: str) -> None:
    with pytest.raises(UnsupportedLanguageError, match=repr(language)):
        engine.contract(VoiceSettings(language))
    with pytest.raises(TTSError, match=repr(language)):
        engine.synthesize("Bonjour", VoiceSettings(language))


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_raises(engine: EspeakEngine, text: str) -> None:
    with pytest.raises(TTSError):
        engine.synthesize(text, EN)


@pytest.mark.parametrize(
    "voice",
    [
        VoiceSettings("en", speed=0.2),
        VoiceSettings("en", speed=3.0),
        VoiceSettings("en", speed=float("nan")),
        VoiceSettings("en", volume=0),
        VoiceSettings("en", volume=2.5),
    ],
)
def test_out_of_range_settings_raise(engine: EspeakEngine, voice: VoiceSettings) -> None:
    with pytest.raises(OfflineEngineError):
        engine.contract(voice)
    with pytest.raises(OfflineEngineError):
        engine.synthesize("Hello", voice)


def test_voice_map_is_configurable() -> None:
    engine = EspeakEngine({"fr": "fr", "EN": "en-gb"})
    assert engine.contract(VoiceSettings("fr")).voice == "fr"
    assert engine.contract(VoiceSettings("en")).voice == "en-gb"
    with pytest.raises(UnsupportedLanguageError):
        engine.contract(ES)
    parse_wav(engine.synthesize("Bonjour Marie,", VoiceSettings("fr")))
    with pytest.raises(OfflineEngineError, match="no-such-voice"):
        EspeakEngine({"en": "no-such-voice"}).synthesize("Hello", EN)


KILLED_AFTER_ONE_STEM = """
import os, signal
from hybrid_audio_dagster.core.tts.base import VoiceSettings
from hybrid_audio_dagster.core.tts.espeak import EspeakEngine
EspeakEngine().synthesize("Hey John,", VoiceSettings(language="en"))
os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 or the OOM killer would: no atexit runs
"""


def test_a_killed_process_library_copy_is_removed_by_the_next_one(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED_AFTER_ONE_STEM], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    [left] = [p for p in tmp_path.iterdir() if p.name.startswith(COPY_PREFIX)]
    assert any(left.iterdir())  # the ~0.7 MB copy the killed process could not remove
    live = tmp_path / f"{COPY_PREFIX}{os.getpid()}-abc"  # a running process's copy
    unknown = tmp_path / f"{COPY_PREFIX}x1y2z3"  # no owner pid in the name: not ours to judge
    live.mkdir()
    unknown.mkdir()
    assert remove_stale_copies(str(tmp_path)) == [str(left)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unknown.name])
