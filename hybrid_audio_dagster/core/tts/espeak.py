"""Embedded offline TTS: espeak-ng driven through ctypes (no network, no system packages).

The shared library and its voice data come from the ``espeakng-loader`` wheel. espeak-ng
is a C library with process-global state, so every call goes through one module-level
lock, and every call runs in a freshly loaded copy of the library (see :func:`_session`)
because that is what makes the output byte-identical from call to call.

espeak-ng is GPL-3; it is loaded at run time as a separate shared object.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import dataclasses
import importlib.metadata
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import espeakng_loader

from hybrid_audio_dagster.core.tts import espeak_say
from hybrid_audio_dagster.core.tts.base import StemContract, TTSError, VoiceSettings

__all__ = [
    "DEFAULT_VOICE_MAP",
    "ENGINE_NAME",
    "WRAPPER_VERSION",
    "EspeakEngine",
    "OfflineEngineError",
    "UnsupportedLanguageError",
]

log = logging.getLogger(__name__)

ENGINE_NAME = "espeak-ng"
#: Version of *how we call* espeak-ng. Bump it whenever a change here alters the audio
#: (parameters, flags, amplitude mapping, WAV layout): it is part of the stem contract, so
#: bumping it re-synthesizes every cached espeak stem.
WRAPPER_VERSION = 1

#: Language (lower-case; primary subtag used as fallback) -> espeak-ng voice name.
DEFAULT_VOICE_MAP: dict[str, str] = {"en": "en-us", "es": "es"}

_NORMAL_RATE_WPM = 175  # espeakRATE_NORMAL: speed 1.0
_MIN_RATE_WPM, _MAX_RATE_WPM = 80, 450  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM
# espeak amplitude for volume 1.0. Measured peaks over 11 en/es sentences (incl. shouted
# text): amplitude 50 -> max -7.2 dBFS, 80 -> -3.0 dBFS, 100 -> -1.1 dBFS, and >= 120
# saturates at full scale (espeak compresses/clips internally). 50 leaves headroom at
# volume 1.0 and keeps the whole accepted volume range (<= 2.0, amplitude <= 100) out of
# the saturating region.
_AMPLITUDE_AT_VOLUME_1 = 50
_MAX_VOLUME = 2.0

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # retrieval mode; espeak_Synth returns when synthesis is done
_INITIALIZE_DONT_EXIT = 0x8000  # report missing data as an error instead of exit()ing
_ESPEAK_RATE, _ESPEAK_VOLUME = 1, 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # plain text: no espeakSSML / espeakPHONEMES, so "<" and "[[" are literal
_EE_OK = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class OfflineEngineError(TTSError):
    """espeak-ng failed: library or data missing, unknown voice, bad settings, no audio."""


class UnsupportedLanguageError(OfflineEngineError):
    """No espeak-ng voice is configured for the requested language."""


# --------------------------------------------------------------------------------------
# Library handling (module level: the C library is process-global)
# --------------------------------------------------------------------------------------

_LOCK = threading.Lock()  # guards the library and everything below
_private_lib: tuple[int, str] | None = None  # (pid that made the copy, path of the copy)
_lib_info: tuple[str, int] | None = None  # (espeak-ng version, sample rate)
# Filled by the synth callback during one locked call.
_chunks: list[bytes] = []
_callback_error: list[BaseException] = []


def _on_samples(wav: ctypes._Pointer, count: int, _events: int) -> int:  # type: ignore[type-arg]
    # Exceptions cannot propagate through C; record them and ask espeak to abort (1).
    try:
        if wav and count > 0:
            _chunks.append(ctypes.string_at(wav, count * 2))
        return 0
    except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
        _callback_error.append(exc)
        return 1


COPY_PREFIX = "hybrid-audio-espeak-"  # + owner pid + '-' + random: see remove_stale_copies

# Module-level so the C function pointer outlives every library instance that holds it.
_CALLBACK = _SynthCallback(_on_samples)


def _library_path() -> str:
    """Path of this process's private copy of libespeak-ng (created on first use).

    Why a copy: determinism needs the library really unloaded after each call (see
    :func:`_session`), and dlclose only unloads when the last handle goes. If anything
    else in the process (a phonemizer, another TTS package) has ``espeakng_loader``'s
    file open, our dlclose would be a no-op. Measured: with a second handle on the shared
    file, "Hey John," gave 28684, 28680, 28704 bytes on three calls; via the private copy
    it was identical every time. The loader identifies libraries by file (inode), so a
    copy is a separate instance.
    """
    global _private_lib
    pid = os.getpid()
    # A forked child makes its own copy: the parent deletes its copy when it exits.
    if _private_lib is None or _private_lib[0] != pid:
        source = espeakng_loader.get_library_path()
        if not os.path.isfile(source):
            raise OfflineEngineError(f"espeak-ng library not found at {source}")
        remove_stale_copies()
        directory = tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{pid}-")
        atexit.register(_remove_copy, pid, directory)
        target = os.path.join(directory, os.path.basename(source))
        shutil.copyfile(source, target)
        _private_lib = (pid, target)
    return _private_lib[1]


def _remove_copy(owner_pid: int, directory: str) -> None:
    if os.getpid() == owner_pid:  # atexit handlers are inherited by forked children
        shutil.rmtree(directory, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_copies(temp_dir: str | None = None) -> list[str]:
    """Delete the private copies left by processes that died without exiting (kill -9, OOM,
    SIGTERM: no atexit ran), ~0.7 MB each; the folder name carries its owner's pid. A live
    owner's copy is kept. Returns the folders removed."""
    removed = []
    base = temp_dir or tempfile.gettempdir()
    for entry in os.scandir(base):
        owner, sep, _ = entry.name.removeprefix(COPY_PREFIX).partition("-")
        if entry.name.startswith(COPY_PREFIX) and sep and owner.isdigit() and entry.is_dir(follow_symlinks=False):
            if not _pid_alive(int(owner)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


def _data_path() -> bytes:
    try:
        return os.fsencode(espeakng_loader.get_data_path())
    except RuntimeError as exc:
        raise OfflineEngineError(f"espeak-ng data not found: {exc}") from exc


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int


def _unload(handle: int) -> None:
    if hasattr(_ctypes, "dlclose"):
        _ctypes.dlclose(handle)
    else:  # Windows
        _ctypes.FreeLibrary(handle)  # type: ignore[attr-defined]


@contextmanager
def _session() -> Iterator[tuple[ctypes.CDLL, int]]:
    """Load a fresh library instance, initialise it, yield ``(lib, sample_rate)``, unload.

    Caller must hold ``_LOCK``. Why reload every call: espeak-ng keeps static synthesis
    state (pitch/phase/wave generator) across utterances, so in one loaded instance the
    same text drifts: "Hey John," gave 28684, 28694, 28678 bytes on its 1st/2nd/3rd call.
    ``espeak_Terminate`` + ``espeak_Initialize`` does not reset it (same drift); unloading
    the library (static data re-initialised on the next load) does: identical bytes every
    call, in and across processes, for ~0.2 ms per load + initialise + unload.

    Not needed, so not done: seeding. libc ``srand`` has no effect on the output, and
    ``espeak_ng_SetRandSeed`` only matters for breathy variants (``+whisper``, ``+f3``);
    its generator lives in the library's static data, so the reload resets it too.
    """
    try:
        lib = ctypes.CDLL(_library_path())
    except OSError as exc:
        raise OfflineEngineError(f"cannot load espeak-ng library: {exc}") from exc
    try:
        _declare(lib)
        sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, _data_path(), _INITIALIZE_DONT_EXIT)
        if sample_rate <= 0:
            raise OfflineEngineError(f"espeak-ng failed to initialise (data path {espeakng_loader.get_data_path()})")
        lib.espeak_SetSynthCallback(_CALLBACK)
        yield lib, sample_rate
    finally:
        try:
            lib.espeak_Terminate()
        finally:
            _unload(lib._handle)


def _library_info() -> tuple[str, int]:
    """(espeak-ng version, output sample rate), probed once per process."""
    global _lib_info
    with _LOCK:
        if _lib_info is None:
            with _session() as (lib, sample_rate):
                version = lib.espeak_Info(None)
                name = version.decode("ascii", "replace") if version else "unknown"
                _lib_info = (name, sample_rate)
        return _lib_info


def _loader_version() -> str:
    try:
        return importlib.metadata.version("espeakng-loader")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A canonical 44-byte-header RIFF/WAVE file for mono PCM16 ``pcm``.

    espeak hands over native-endian shorts; every platform espeakng-loader ships wheels
    for is little-endian, as WAV requires.
    """
    block_align = 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,  # WAVE_FORMAT_PCM
        1,  # mono
        sample_rate,
        sample_rate * block_align,
        block_align,
        16,
        b"data",
        len(pcm),
    )
    return header + pcm


# --------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    voice: str
    rate_wpm: int
    amplitude: int


class EspeakEngine:
    """Offline, byte-deterministic, thread-safe :class:`~.base.TTSEngine` on espeak-ng.

    Contract: ``engine="espeak-ng"``, ``engine_version="<lib>/loader-<pkg>/wrapper-<N>"``,
    ``voice`` = the espeak voice chosen from the language through ``voice_map`` (default
    ``{"en": "en-us", "es": "es"}``; keys are matched lower-case, then by primary subtag,
    so ``"en-GB"`` uses ``"en"`` unless mapped itself), ``model="espeak-ng"``, 22050 Hz
    mono ``pcm_s16le``. ``speed``/``volume`` are copied from the settings. ``emotion`` is
    always ``None``: espeak cannot express it, so a template changing only its emotion
    keeps its espeak stems (the contract lists what changes the audio). ``voice_id`` is
    likewise ignored.

    Synthesis: ``speed`` -> rate ``round(175 * speed)`` wpm (accepted 0.46-2.57, espeak's
    80-450 wpm); ``volume`` -> amplitude ``round(50 * volume)`` (accepted 0 < v <= 2), so
    peaks sit around -7 dBFS at volume 1 and never reach full scale. Text is plain text
    (no SSML, no phoneme input) and no end-of-text pause is added.
    """

    def __init__(self, voice_map: dict[str, str] | None = None) -> None:
        source = DEFAULT_VOICE_MAP if voice_map is None else voice_map
        self._voice_map = {lang.strip().lower(): name for lang, name in source.items()}

    @property
    def voice_map(self) -> dict[str, str]:
        return dict(self._voice_map)

    def espeak_voice(self, language: str) -> str:
        """The espeak voice name for ``language``; :class:`UnsupportedLanguageError` if none."""
        key = language.strip().lower().replace("_", "-")
        name = self._voice_map.get(key) or self._voice_map.get(key.split("-", 1)[0])
        if not name:
            known = ", ".join(sorted(self._voice_map)) or "none"
            raise UnsupportedLanguageError(f"espeak-ng engine has no voice for language {language!r} (configured: {known})")
        return name

    def contract(self, voice: VoiceSettings) -> StemContract:
        name = self.espeak_voice(voice.language)
        self._params(voice, name)  # invalid speed/volume fail here, before any caching
        version, sample_rate = _library_info()
        return StemContract(
            engine=ENGINE_NAME,
            engine_version=f"{version}/loader-{_loader_version()}/wrapper-{WRAPPER_VERSION}",
            voice=name,
            model=ENGINE_NAME,
            language=voice.language,
            speed=voice.speed,
            volume=voice.volume,
            emotion=None,
            sample_rate=sample_rate,
            encoding="pcm_s16le",
            channels=1,
        )

    def pronunciation_contract(self, contract: StemContract) -> StemContract:
        """The contract of a stem with pronunciations (phoneme input; see ``espeak_say``)."""
        return dataclasses.replace(contract, pronunciation=espeak_say.PRONUNCIATION_METHOD)

    def synthesize(self, text: str, voice: VoiceSettings, *, say: tuple = ()) -> bytes:
        if not text or not text.strip():
            raise OfflineEngineError("cannot synthesize empty or whitespace-only text")
        if "\x00" in text:
            raise OfflineEngineError("text contains a NUL character")
        params = self._params(voice, self.espeak_voice(voice.language))
        encoded = text.encode("utf-8") + b"\x00"
        with _LOCK:
            _chunks.clear()
            _callback_error.clear()
            try:
                with _session() as (lib, sample_rate):
                    if lib.espeak_SetVoiceByName(params.voice.encode("utf-8")) != _EE_OK:
                        raise OfflineEngineError(f"espeak-ng has no voice {params.voice!r}")
                    for parameter, value in (
                        (_ESPEAK_RATE, params.rate_wpm),
                        (_ESPEAK_VOLUME, params.amplitude),
                    ):
                        if lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                            raise OfflineEngineError(f"espeak-ng rejected parameter {parameter}={value}")
                    flags = _CHARS_UTF8
                    if say:
                        encoded = espeak_say.phoneme_text(lib, text, say).encode("utf-8") + b"\x00"
                        flags |= espeak_say.ESPEAK_PHONEMES_FLAG
                    status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, flags, None, None)
                    if status == _EE_OK:
                        status = lib.espeak_Synchronize()
                    if _callback_error:
                        raise OfflineEngineError("collecting espeak-ng audio failed") from _callback_error[0]
                    if status != _EE_OK:
                        raise OfflineEngineError(f"espeak-ng synthesis failed (status {status})")
                pcm = b"".join(_chunks)
            finally:
                _chunks.clear()
                _callback_error.clear()
        if not pcm.strip(b"\x00"):
            raise OfflineEngineError(f"espeak-ng produced no audible audio for {len(text)} characters")
        log.debug("espeak-ng: %d chars -> %d samples (%s)", len(text), len(pcm) // 2, params)
        return _wav_bytes(pcm, sample_rate)

    @staticmethod
    def _params(voice: VoiceSettings, name: str) -> _Params:
        speed, volume = voice.speed, voice.volume
        if not (math.isfinite(speed) and _MIN_RATE_WPM <= round(_NORMAL_RATE_WPM * speed) <= _MAX_RATE_WPM):
            low, high = _MIN_RATE_WPM / _NORMAL_RATE_WPM, _MAX_RATE_WPM / _NORMAL_RATE_WPM
            raise OfflineEngineError(f"speed {speed} outside espeak-ng's range {low:.2f}-{high:.2f}")
        if not (math.isfinite(volume) and 0 < volume <= _MAX_VOLUME):
            raise OfflineEngineError(f"volume {volume} outside (0, {_MAX_VOLUME}]")
        return _Params(
            voice=name,
            rate_wpm=round(_NORMAL_RATE_WPM * speed),
            amplitude=max(1, round(_AMPLITUDE_AT_VOLUME_1 * volume)),
        )
