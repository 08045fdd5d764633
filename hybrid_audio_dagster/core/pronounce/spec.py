"""What a pronunciation is, and which ones are accepted (pure Python, no Dagster, no engine).

A dataset row may say how its text is spoken, in one of two notations:

* **respelling** ("sounds-like"), e.g. ``shi-VAWN``, ``WIND-um``, ``MARE-ee-ut``: ASCII
  letters in syllables joined by ``-``, words separated by one space, an apostrophe inside a
  word allowed. The syllable in CAPITALS carries the stress; lower-case syllables are
  unstressed. At most :data:`MAX_RESPELLING_LEN` characters.
* **IPA**, marked by slashes, e.g. ``/ʃɪˈvɔːn/``: symbols of :data:`IPA_PHONEMES` (the
  English phoneme set every engine here can realise), stress marks ``ˈ ˌ``, an optional
  syllable dot ``.`` and single spaces between words. At most :data:`MAX_IPA_LEN`
  characters between the slashes. Without the slashes the value is read as a respelling.

Anything else is refused with :class:`PronunciationError` (``code`` names the problem,
``message`` says what to write instead), when the dataset is built: before any TTS call.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "IPA_PHONEMES",
    "MAX_IPA_LEN",
    "MAX_RESPELLING_LEN",
    "Pronunciation",
    "PronunciationError",
    "Say",
    "ipa_tokens",
    "parse_pronunciation",
]

MAX_RESPELLING_LEN = 60
MAX_IPA_LEN = 60
_RAW_LIMIT = 1000

#: IPA phonemes accepted, longest first when tokenising (diphthongs and affricates are one
#: phoneme). Length marks ``ː`` attach to the vowel before them.
IPA_PHONEMES: tuple[str, ...] = (
    # diphthongs, affricates, r-coloured vowels
    "eɪ", "aɪ", "ɔɪ", "aʊ", "oʊ", "əʊ", "ɪə", "eə", "ʊə", "tʃ", "dʒ", "t͡ʃ", "d͡ʒ",
    # vowels
    "i", "ɪ", "e", "ɛ", "æ", "a", "ɑ", "ɒ", "ɔ", "o", "ʊ", "u", "ʌ", "ə", "ɜ", "ɚ", "ɝ", "ɐ",
    # consonants
    "p", "b", "t", "d", "k", "g", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "m", "n",
    "ŋ", "l", "ɫ", "r", "ɹ", "ɾ", "j", "w", "ʔ", "x",
)  # fmt: skip
_STRESS = frozenset("ˈˌ")
_LENGTH = "ː"
_BY_LENGTH = sorted(IPA_PHONEMES, key=len, reverse=True)
_RESPELLING_RE = re.compile(r"^[A-Za-z]+(?:['-][A-Za-z]+)*(?: [A-Za-z]+(?:['-][A-Za-z]+)*)*$")


class PronunciationError(ValueError):
    """A pronunciation is refused. ``code`` is a reason code, ``message`` explains."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class Pronunciation:
    """A validated pronunciation: ``value`` is the canonical text (IPA keeps its slashes)."""

    value: str

    @property
    def is_ipa(self) -> bool:
        return self.value.startswith("/")

    @property
    def ipa(self) -> str:
        """The IPA between the slashes (``ValueError`` for a respelling)."""
        if not self.is_ipa:
            raise ValueError(f"{self.value!r} is a respelling, not IPA")
        return self.value[1:-1]

    def words(self) -> list[str]:
        return self.value.strip("/").split(" ")


@dataclass(frozen=True, order=True)
class Say:
    """One substitution: ``text`` as written in a stem's text is spoken as ``pronunciation``.

    Part of the stem identity (``"say"``), so changing it changes exactly the signatures of
    the stems whose text holds ``text``.
    """

    text: str
    pronunciation: str

    @property
    def parsed(self) -> Pronunciation:
        return Pronunciation(self.pronunciation)

    def to_list(self) -> list[str]:
        return [self.text, self.pronunciation]


def ipa_tokens(ipa: str) -> list[str]:
    """Split IPA into phonemes, stress marks (``ˈ ˌ``) and word breaks (``" "``).

    Syllable dots are dropped. Raises :class:`PronunciationError` naming the first symbol
    that is not in :data:`IPA_PHONEMES`.
    """
    tokens: list[str] = []
    i = 0
    while i < len(ipa):
        ch = ipa[i]
        if ch in _STRESS or ch == " ":
            tokens.append(ch)
            i += 1
            continue
        if ch == ".":
            i += 1
            continue
        if ch == _LENGTH:
            if not tokens or tokens[-1] in _STRESS or tokens[-1] == " " or tokens[-1].endswith(_LENGTH):
                raise PronunciationError("bad_ipa", f"length mark ː at position {i + 1} follows no vowel")
            tokens[-1] += _LENGTH
            i += 1
            continue
        for ph in _BY_LENGTH:
            if ipa.startswith(ph, i):
                tokens.append(ph)
                i += len(ph)
                break
        else:
            name = unicodedata.name(ch, "")
            raise PronunciationError(
                "bad_ipa",
                f"IPA symbol {ch!r} (U+{ord(ch):04X} {name}) at position {i + 1} is not supported; "
                f"use the English phonemes {' '.join(IPA_PHONEMES)}, stress ˈ ˌ and length ː",
            )
    if not any(t not in _STRESS and t != " " for t in tokens):
        raise PronunciationError("bad_ipa", "IPA holds no phoneme")
    return tokens


def parse_pronunciation(raw: object) -> Pronunciation | None:
    """Validate a raw cell; ``None`` for an empty one. Raises :class:`PronunciationError`."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise PronunciationError("bad_pronunciation", f"expected text, got {type(raw).__name__}")
    if len(raw) > _RAW_LIMIT:
        raise PronunciationError("pronunciation_too_long", f"{len(raw)} characters")
    s = " ".join(unicodedata.normalize("NFC", raw).split())
    if not s:
        return None
    if s.startswith("/") or s.endswith("/"):
        if len(s) < 3 or not (s.startswith("/") and s.endswith("/")) or "/" in s[1:-1]:
            raise PronunciationError("bad_ipa", "IPA must be wrapped in one pair of slashes, e.g. /ʃɪˈvɔːn/")
        inner = s[1:-1].strip()
        if len(inner) > MAX_IPA_LEN:
            raise PronunciationError("pronunciation_too_long", f"IPA of {len(inner)} symbols; the limit is {MAX_IPA_LEN}")
        ipa_tokens(inner)
        return Pronunciation(f"/{inner}/")
    if len(s) > MAX_RESPELLING_LEN:
        raise PronunciationError("pronunciation_too_long", f"respelling of {len(s)} characters; the limit is {MAX_RESPELLING_LEN}")
    if not _RESPELLING_RE.match(s):
        bad = next((c for c in s if not (c.isascii() and (c.isalpha() or c in " -'"))), None)
        what = f"character {bad!r} is not allowed" if bad else "a hyphen or apostrophe must sit between letters"
        raise PronunciationError(
            "bad_respelling",
            f"{what}; a respelling is ASCII letters in syllables joined by '-' with the stressed one in "
            "CAPITALS (shi-VAWN), or IPA between slashes (/ʃɪˈvɔːn/)",
        )
    return Pronunciation(s)
