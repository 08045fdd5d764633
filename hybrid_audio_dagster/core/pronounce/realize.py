"""How each engine says a pronunciation (pure functions; the engines pass their own G2P).

* **espeak-ng**: the written word is replaced by espeak phoneme input ``[[...]]`` (its
  ASCII phoneme mnemonics, synthesized with ``espeakPHONEMES``). IPA maps symbol by symbol
  (:data:`ESPEAK_OF_IPA`). A respelling is turned into phonemes syllable by syllable with
  espeak's own letter-to-sound rules, its stress marks removed and one primary stress put on
  the CAPITALISED syllable, and the weak vowel of unstressed syllables made a schwa ("um"
  in "WIND-um" is /əm/), because reading "WIND-um" as text stresses every syllable.
* **piper**: the same, in IPA, inside piper's raw-phoneme block ``[[ ... ]]``; piper's
  voices take espeak-ng IPA.
* **Cartesia**: a pronunciation-dictionary item; a respelling goes as is (Cartesia's
  "sounds-like" form), IPA as ``<<p|h|o|n|e|m|e|s>>`` per word.

Everything here is deterministic: same pronunciation, same text for the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from hybrid_audio_dagster.core.pronounce.spec import Pronunciation, Say, ipa_tokens

__all__ = [
    "ESPEAK_OF_IPA",
    "cartesia_item",
    "espeak_phonemes",
    "piper_phonemes",
    "substitute",
]

#: IPA phoneme → espeak-ng (en) phoneme mnemonic.
ESPEAK_OF_IPA: dict[str, str] = {
    "eɪ": "eI", "aɪ": "aI", "ɔɪ": "OI", "aʊ": "aU", "oʊ": "oU", "əʊ": "oU", "ɪə": "i@", "eə": "e@",
    "ʊə": "U@", "tʃ": "tS", "dʒ": "dZ", "t͡ʃ": "tS", "d͡ʒ": "dZ",
    "i": "i", "ɪ": "I", "e": "e", "ɛ": "E", "æ": "a", "a": "a", "ɑ": "A", "ɒ": "0", "ɔ": "O", "o": "o",
    "ʊ": "U", "u": "u", "ʌ": "V", "ə": "@", "ɜ": "3", "ɚ": "3", "ɝ": "3:", "ɐ": "a#",
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "ɡ": "g", "f": "f", "v": "v", "θ": "T",
    "ð": "D", "s": "s", "z": "z", "ʃ": "S", "ʒ": "Z", "h": "h", "m": "m", "n": "n", "ŋ": "N", "l": "l",
    "ɫ": "l", "r": "r", "ɹ": "r", "ɾ": "t", "j": "j", "w": "w", "ʔ": "?", "x": "x",
}  # fmt: skip
_ESPEAK_STRESS = {"ˈ": "'", "ˌ": ","}
# piper's voices know espeak-ng's IPA; these two spellings are mapped to the ones it uses
_PIPER_OF_IPA = {"t͡ʃ": "tʃ", "d͡ʒ": "dʒ", "ɡ": "ɡ", "g": "ɡ", "r": "ɹ"}

G2P = Callable[[str], str]  # a lower-case syllable → phonemes (the engine's notation)


def _espeak_of_ipa(ipa: str) -> str:
    out = []
    for tok in ipa_tokens(ipa):
        if tok in _ESPEAK_STRESS:
            out.append(_ESPEAK_STRESS[tok])
        elif tok == " ":
            out.append(" ")
        else:
            long = tok.endswith("ː")
            base = ESPEAK_OF_IPA[tok.rstrip("ː")]
            out.append(base + (":" if long and not base.endswith(":") else ""))
    return "".join(out)


def _piper_of_ipa(ipa: str) -> str:
    return "".join(_PIPER_OF_IPA.get(t.rstrip("ː"), t.rstrip("ː")) + ("ː" if t.endswith("ː") else "") for t in ipa_tokens(ipa))


def _respelled(respelling: str, g2p: G2P, stress: str, strip: str, weak: tuple[str, str]) -> str:
    words = []
    for word in respelling.split(" "):
        syllables = word.replace("'", "").split("-")
        stressed = [s.isupper() and len(s) > 0 for s in syllables]
        if not any(stressed):
            stressed = [len(syllables) == 1] + [False] * (len(syllables) - 1)
        parts = []
        for syl, st in zip(syllables, stressed):
            ph = "".join(c for c in g2p(syl.lower()) if c not in strip).strip()
            if st:
                parts.append(stress + ph)
            else:
                parts.append(ph.replace(weak[0], weak[1]))
        words.append("".join(parts))
    return " ".join(words)


def espeak_phonemes(pron: Pronunciation, g2p: G2P) -> str:
    """espeak-ng phoneme mnemonics for ``pron`` (``g2p``: espeak's, in mnemonics)."""
    if pron.is_ipa:
        return _espeak_of_ipa(pron.ipa)
    return _respelled(pron.value, g2p, "'", "',", ("V", "@"))


def piper_phonemes(pron: Pronunciation, g2p: G2P) -> str:
    """IPA for piper's raw-phoneme block (``g2p``: piper's espeak phonemizer)."""
    if pron.is_ipa:
        return _piper_of_ipa(pron.ipa)
    return _respelled(pron.value, g2p, "ˈ", "ˈˌ", ("ʌ", "ə"))


def substitute(text: str, say: Iterable[Say], spoken: Callable[[Say], str]) -> str:
    """``text`` with each whole-word occurrence of a ``say`` text replaced by ``spoken(say)``
    (longest written form first, so "Club Wyndham" wins over "Wyndham")."""
    says = sorted(set(say), key=lambda s: (-len(s.text), s.text))
    if not says:
        return text
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(s.text)}(?!\w)" for s in says))
    by_text = {s.text: spoken(s) for s in says}
    return pattern.sub(lambda m: by_text[m.group(0)], text)


def cartesia_item(say: Say) -> dict[str, str]:
    """A Cartesia pronunciation-dictionary item for ``say``."""
    pron = say.parsed
    if not pron.is_ipa:
        return {"text": say.text, "pronunciation": pron.value}
    words = []
    current: list[str] = []
    for tok in ipa_tokens(pron.ipa) + [" "]:
        if tok == " ":
            if current:
                words.append("<<" + "|".join(current) + ">>")
            current = []
        else:
            current.append(tok)
    return {"text": say.text, "pronunciation": " ".join(words)}
