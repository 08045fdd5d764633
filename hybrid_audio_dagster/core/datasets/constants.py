"""The dataset kinds, the length limits and the character sets the rules use.

The rules themselves are listed in the package docstring (:mod:`hybrid_audio_dagster.core.datasets`).
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["names", "developers"]
KINDS: tuple[str, ...] = ("names", "developers")
# The suppression list (opt-outs): a list of names, uploaded and stored like a dataset but never
# spoken; its values follow the names' rules (``RULES_OF``) and the same folding.
SUPPRESSION = "suppression"
UPLOAD_ROLES: tuple[str, ...] = (*KINDS, SUPPRESSION)
RULES_OF: dict[str, str] = {"names": "names", "developers": "developers", SUPPRESSION: "names"}

MAX_DISPLAY_LEN: dict[str, int] = {"names": 40, "developers": 60}
SLUG_MAX_LEN = 48
# Raw cells longer than this are refused before any Unicode processing (cheap, and the
# message stays short); generous so values padded with whitespace are still cleaned.
RAW_HARD_LIMIT = 10_000
# Rejected values are shown in reports as a repr-escaped preview of at most this many chars.
PREVIEW_LEN = 80

_APOSTROPHES = "'\u2019\u02bc\u2018"  # ' ’ ʼ ‘ (ʻ okina is a letter, Lm)
_HYPHENS = "-\u2010\u2011"  # - ‐ ‑
# For folding/slugs, the okina-like modifier letters count as apostrophes too.
_APOSTROPHE_LIKE = frozenset(_APOSTROPHES + "\u02bb\u02bd")
ALLOWED_PUNCTUATION: dict[str, frozenset[str]] = {
    # "." for initials ("J.R."), "·" for Catalan ("Marcel·la"), "|" see module doc.
    "names": frozenset(" " + _APOSTROPHES + _HYPHENS + ".\u00b7|"),
    "developers": frozenset(" " + _APOSTROPHES + _HYPHENS + ".\u00b7|&,():!\u2013"),
}
FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe62\ufe63")  # incl. full-width/small
MARKUP = frozenset("<>{}[]")
ZW_JOINERS = frozenset("\u200c\u200d")
INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800\u180e" + "".join(chr(c) for c in range(0xFE00, 0xFE10))) | frozenset(
    chr(c) for c in range(0xE0100, 0xE01F0)
)
CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
MAX_MARK_RUN = 3
WS_RE = re.compile(r"[\t\n\r ]+")
# Full-width ASCII (Ｊｏｈｎ, ＝) is folded to ASCII in the display: it is how CJK input
# methods type Latin, and leaving it would let "Ｊｏｈｎ" look different from "John".
FULLWIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)}

# Letters NFKD does not decompose into ASCII but that have an obvious Latin spelling.
_TRANSLIT: dict[str, str] = {
    "ß": "ss", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "œ": "oe",
    "ı": "i", "ħ": "h", "ŧ": "t", "ŋ": "ng", "ĸ": "k", "ſ": "s", "ƒ": "f", "ɖ": "d",
    "ƀ": "b", "ɨ": "i", "ʉ": "u", "ǥ": "g", "ȼ": "c", "ɇ": "e", "ɍ": "r", "ɏ": "y",
    "ƶ": "z", "ȥ": "z", "ɗ": "d", "ɓ": "b", "ƙ": "k", "ƴ": "y", "ɛ": "e", "ɔ": "o",
}  # fmt: skip
FOLD_TABLE = str.maketrans({**{c: "'" for c in _APOSTROPHE_LIKE}, **{c: "-" for c in _HYPHENS}, **dict.fromkeys(ZW_JOINERS), **_TRANSLIT})
NOT_SLUG_RE = re.compile(r"[^a-z0-9]+")
ASCII_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
