"""The TTS interface every engine implements, and the stem contract.

A *contract* is everything that changes the audio a TTS engine returns for a text: the
engine, its voice/model/language, generation settings and the output format. A stem is
reused until its contract or its text changes; its signature
(:func:`hybrid_audio_dagster.core.stems.identity.stem_signature`) is the cache key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class VoiceSettings:
    """Voice settings as a template declares them (engine-neutral).

    ``voice_id`` is the Cartesia voice UUID; engines without such voices ignore it but it
    stays part of the request so a template change is visible everywhere.
    """

    language: str
    voice_id: str | None = None
    speed: float = 1.0
    volume: float = 1.0
    emotion: str | None = None


@dataclass(frozen=True)
class StemContract:
    """What an engine promises to produce for a text. Hashable, JSON-serialisable."""

    engine: str  # "espeak-ng" | "cartesia" | ...
    engine_version: str  # library version or API version the audio depends on
    voice: str  # engine-specific voice identity actually used
    model: str
    language: str
    speed: float
    volume: float
    emotion: str | None
    sample_rate: int
    encoding: str  # "pcm_s16le" | "pcm_s24le" | "pcm_f32le"
    channels: int = 1
    # where the audio comes from, for network engines (scheme://host[:port][/path]): stems
    # from a test or staging endpoint must never count as production hits
    endpoint: str = ""
    # how the engine applies pronunciations ("espeak-phonemes-1", "cartesia-dict:<id>"); set
    # only on the contract of a stem that has some, and left out of ``to_dict`` when empty so
    # the signatures of every other stem stay what they were
    pronunciation: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["pronunciation"]:
            del d["pronunciation"]
        return d


class TTSError(Exception):
    """Base class of TTS engine errors. Messages never contain credentials."""


@runtime_checkable
class TTSEngine(Protocol):
    """A text-to-speech engine that returns complete WAV files.

    Implementations must be thread-safe: the stems assets may call ``synthesize`` from
    several threads at once.
    """

    def contract(self, voice: VoiceSettings) -> StemContract:
        """The contract this engine would use for ``voice`` (no network, no synthesis)."""
        ...

    def synthesize(self, text: str, voice: VoiceSettings) -> bytes:
        """Speak ``text`` and return the bytes of a WAV file matching ``contract(voice)``.

        Raises :class:`TTSError` (or a subclass) on failure; never returns partial audio.
        Engines that apply pronunciations also take ``say=`` (a tuple of
        :class:`~..pronounce.spec.Say`) and have ``pronunciation_contract(contract)``, the
        contract of a stem spoken with them; callers pass ``say`` only when it is not empty.
        """
        ...


class PronunciationUnsupportedError(TTSError):
    """The engine cannot apply a pronunciation the data asks for."""


def pronounced_contract(engine: object, contract: StemContract) -> StemContract:
    """The contract of a stem with pronunciations spoken by ``engine`` (see :class:`TTSEngine`)."""
    method = getattr(engine, "pronunciation_contract", None)
    if method is None:
        raise PronunciationUnsupportedError(f"the {contract.engine} engine cannot apply pronunciations")
    return method(contract)
