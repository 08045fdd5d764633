"""One engine for the languages it speaks, another for the rest.

Used for piper, whose voices speak one language each: English goes to the piper voice,
Spanish (and anything else it cannot speak) to espeak-ng. Each request is answered wholly by
one engine, and :meth:`LanguageFallbackEngine.contract` returns *that* engine's contract, so
a stem's signature always names the engine that really made it.
"""

from __future__ import annotations

from typing import Protocol

from .base import StemContract, TTSEngine, VoiceSettings

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

    def synthesize(self, text: str, voice: VoiceSettings) -> bytes:
        return self.engine_for(voice.language).synthesize(text, voice)
