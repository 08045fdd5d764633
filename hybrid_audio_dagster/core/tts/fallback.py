"""One engine for the languages it speaks, another for the rest.

Used for piper, whose voices speak one language each: English goes to the piper voice,
Spanish (and anything else it cannot speak) to espeak-ng. Each request is answered wholly by
one engine, and :meth:`LanguageFallbackEngine.contract` returns *that* engine's contract, so
a stem's signature always names the engine that really made it.
"""

from __future__ import annotations

from typing import Protocol

from hybrid_audio_dagster.core.tts.base import StemContract, TTSEngine, VoiceSettings, pronounced_contract

__all__ = ["LanguageEngine", "LanguageFallbackEngine"]


class LanguageEngine(TTSEngine, Protocol):
    """A :class:`~.base.TTSEngine` that can say which languages it speaks."""

    def speaks(self, language: str) -> bool: ...


class LanguageFallbackEngine:
    """Route each request to ``primary`` if it speaks the language, else to ``fallback``.

    Thread-safe if both engines are.
    """

    def __init__(self, primary: LanguageEngine, fallback: TTSEngine) -> None:
        self.primary = primary
        self.fallback = fallback

    def engine_for(self, language: str) -> TTSEngine:
        """The engine that answers requests in ``language``."""
        return self.primary if self.primary.speaks(language) else self.fallback

    def contract(self, voice: VoiceSettings) -> StemContract:
        return self.engine_for(voice.language).contract(voice)

    def pronunciation_contract(self, contract: StemContract) -> StemContract:
        return pronounced_contract(self.engine_for(contract.language), contract)

    def synthesize(self, text: str, voice: VoiceSettings, *, say: tuple = ()) -> bytes:
        engine = self.engine_for(voice.language)
        return engine.synthesize(text, voice, say=say) if say else engine.synthesize(text, voice)
