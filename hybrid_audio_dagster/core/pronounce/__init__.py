"""Names said right: pronunciations of dataset rows, the shared lexicon, and how each engine
says them (respelling or IPA; see :mod:`.spec`, :mod:`.lexicon`, :mod:`.realize`)."""

from hybrid_audio_dagster.core.pronounce.lexicon import LexiconError, load_lexicon, parse_lexicon, says_for, says_in_text
from hybrid_audio_dagster.core.pronounce.spec import Pronunciation, PronunciationError, Say, ipa_tokens, parse_pronunciation

__all__ = [
    "LexiconError",
    "Pronunciation",
    "PronunciationError",
    "Say",
    "ipa_tokens",
    "load_lexicon",
    "parse_lexicon",
    "parse_pronunciation",
    "says_for",
    "says_in_text",
]
