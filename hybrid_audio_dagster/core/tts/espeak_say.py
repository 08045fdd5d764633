"""Pronunciations for the espeak-ng engine: phoneme input built inside its session.

The text of a stem with pronunciations is sent with ``espeakPHONEMES``: each written word
with a pronunciation becomes ``[[...]]`` in espeak's phoneme mnemonics (see
:mod:`..pronounce.realize`). Respellings are run through espeak's own letter-to-sound rules
(``espeak_TextToPhonemes``) in the same, freshly loaded library session, so the result is as
deterministic as the synthesis itself. Plain stems never take this path.
"""

from __future__ import annotations

import ctypes

from hybrid_audio_dagster.core.pronounce.realize import espeak_phonemes, substitute
from hybrid_audio_dagster.core.pronounce.spec import Say

#: Bumped when the way pronunciations become phonemes changes (it is in the stem contract).
SAY_VERSION = 1
PRONUNCIATION_METHOD = f"espeak-phonemes-{SAY_VERSION}"
ESPEAK_PHONEMES_FLAG = 0x100  # espeakPHONEMES: [[...]] in the text is phoneme input
_PHONEME_MNEMONICS = 0  # espeak_TextToPhonemes phonememode: ASCII mnemonics, no ties


def _g2p(lib: ctypes.CDLL):
    fn = lib.espeak_TextToPhonemes
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_char_p

    def g2p(syllable: str) -> str:
        buf = ctypes.create_string_buffer(syllable.encode("utf-8") + b"\x00")
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:
            got = fn(ctypes.byref(ptr), 1, _PHONEME_MNEMONICS)  # 1 = espeakCHARS_UTF8
            out.append(got.decode("utf-8") if got else "")
        return "".join(out)

    return g2p


def phoneme_text(lib: ctypes.CDLL, text: str, say: tuple[Say, ...]) -> str:
    """``text`` with every word of ``say`` replaced by ``[[phonemes]]`` (voice already set)."""
    g2p = _g2p(lib)
    return substitute(text, say, lambda s: f"[[{espeak_phonemes(s.parsed, g2p)}]]")
