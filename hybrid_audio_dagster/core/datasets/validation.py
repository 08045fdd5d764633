"""Validation and cleaning of one value (:func:`clean_value`) and the safe :func:`preview` of a value.

The rules and their reason codes are listed in the package docstring (:mod:`hybrid_audio_dagster.core.datasets`).
"""

from __future__ import annotations

import re
import unicodedata

from hybrid_audio_dagster.core.datasets.constants import (
    ALLOWED_PUNCTUATION,
    ASCII_CTRL_RE,
    CONFUSABLE_SCRIPTS,
    FORMULA_START,
    FULLWIDTH,
    INVISIBLE,
    KINDS,
    MARKUP,
    MAX_DISPLAY_LEN,
    MAX_MARK_RUN,
    PREVIEW_LEN,
    RAW_HARD_LIMIT,
    ZW_JOINERS,
)


class InvalidValueError(ValueError):
    """A single value failed validation; ``code`` is the reason code, ``message`` explains."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


# ------------------------------------------------------------------------------ validation


def _cp(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


def _is_nonlatin_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LM" and not ch.isascii() and _script(ch) != "LATIN"


def _invisible_problem(s: str) -> tuple[str, str] | None:
    """First control/format/invalid code point in ``s`` (tab/CR/LF are whitespace here)."""
    if s.isascii():
        m = ASCII_CTRL_RE.search(s)
        if m is None:
            return None
        return "control_char", f"contains control character {_cp(m[0])} at position {m.start() + 1}"
    for pos, ch in enumerate(s, start=1):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if ch in ZW_JOINERS:
            prev, nxt = s[pos - 2 : pos - 1], s[pos : pos + 1]
            if prev and nxt and _is_nonlatin_letter(prev) and _is_nonlatin_letter(nxt):
                continue
            return "control_char", f"contains zero-width character {_cp(ch)} at position {pos}"
        if cat == "Cc":
            return "control_char", f"contains control character {_cp(ch)} at position {pos}"
        if cat == "Cf":
            return "control_char", f"contains invisible format character {_cp(ch)} at position {pos}"
        if cat in ("Zl", "Zp"):
            return "control_char", f"contains line/paragraph separator {_cp(ch)} at position {pos}"
        if ch in INVISIBLE:
            return "control_char", f"contains invisible character {_cp(ch)} at position {pos}"
        if cat == "Cs":
            return "invalid_char", f"contains a lone surrogate U+{ord(ch):04X} at position {pos} (broken encoding)"
        if cat == "Co":
            return "invalid_char", f"contains private-use character U+{ord(ch):04X} at position {pos}"
        if cat == "Cn":
            return "invalid_char", f"contains unassigned code point U+{ord(ch):04X} at position {pos}"
    return None


# ASCII letters in single-space-separated words: every rule below passes such a value
# unchanged, so it skips the per-character checks (most rows of a big list are like this).
_PLAIN_ASCII = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")


def check_value(kind: str, raw: object) -> tuple[str, tuple[str, str] | None]:
    """Return ``(display, None)`` or ``("", (code, message))`` for one raw value."""
    if isinstance(raw, str) and len(raw) <= MAX_DISPLAY_LEN.get(kind, 0) and _PLAIN_ASCII.fullmatch(raw):
        return raw, None
    if raw is None:
        return "", ("empty", "no value")
    if not isinstance(raw, str):
        return "", ("not_text", f"expected text, got {type(raw).__name__}")
    max_len = MAX_DISPLAY_LEN[kind]
    if len(raw) > RAW_HARD_LIMIT:
        return "", ("too_long", f"{len(raw)} characters; the limit is {max_len}")
    if raw[:1] in ("\t", "\r"):
        return "", ("formula_injection", "starts with a tab or carriage return (spreadsheet formula injection)")
    s = unicodedata.normalize("NFC", raw).translate(FULLWIDTH)
    problem = _invisible_problem(s)
    if problem:
        return "", problem
    # Any Unicode space (NBSP, ideographic space, ...) becomes a plain space; \s also matches
    # \x1c-\x1f/\x85/U+2028, but those were refused above.
    s = re.sub(r"\s+", " ", s).strip()
    if not s:
        return "", ("empty", "empty after trimming whitespace")
    if s[0] in FORMULA_START:
        return "", ("formula_injection", f"starts with {s[0]!r} (spreadsheet formula injection)")
    if len(s) > max_len:
        return "", ("too_long", f"{len(s)} characters; the limit for {kind} is {max_len}")
    nfkc = unicodedata.normalize("NFKC", s)
    if "/" in nfkc or "\\" in nfkc or ".." in nfkc:
        return "", ("path_like", "looks like a file path (contains '/', '\\' or '..')")
    bad_markup = sorted({c for c in nfkc if c in MARKUP})
    if bad_markup:
        return "", ("markup", f"contains markup character(s) {' '.join(bad_markup)} (break templates/SSML)")
    cats = [unicodedata.category(c) for c in s]
    if all(cat == "Nd" or c == " " for c, cat in zip(s, cats)):
        return "", ("digits_only", "only digits; nothing to speak")
    if not any(cat[0] == "L" for cat in cats):
        return "", ("no_letters", "contains no letters")
    allowed = ALLOWED_PUNCTUATION[kind]
    mark_run = 0
    for pos, (ch, cat) in enumerate(zip(s, cats), start=1):
        if cat in ("Mn", "Mc"):
            mark_run += 1
            if mark_run > MAX_MARK_RUN:
                return "", ("invalid_char", f"more than {MAX_MARK_RUN} stacked combining marks at position {pos}")
            continue
        mark_run = 0
        if cat[0] == "L" or cat == "Nd" or ch in allowed or ch in ZW_JOINERS:
            continue
        return "", ("invalid_char", f"character {_cp(ch)} at position {pos} is not allowed in {kind}")
    if kind == "names" and "Nd" in cats:
        return "", ("digits_in_name", "first names may not contain digits")
    if not (cats[0][0] == "L" or cats[0] == "Nd"):
        return "", ("bad_start", f"must start with a letter, not {s[0]!r}")
    scripts = set() if s.isascii() else {_script(c) for c, cat in zip(s, cats) if cat[0] == "L"}
    scripts &= CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        mixed = " and ".join(sorted(x.title() for x in scripts))
        return "", ("mixed_script", f"mixes {mixed} letters (look-alike spoofing)")
    return s, None


def clean_value(kind: str, raw: object) -> str:
    """Validate and clean one value; return the display text or raise InvalidValueError."""
    require_kind(kind)
    display, problem = check_value(kind, raw)
    if problem:
        raise InvalidValueError(*problem)
    return display


def preview(value: object, limit: int = PREVIEW_LEN) -> str:
    """Escaped, truncated rendering of a value for reports: control and invisible characters
    appear as ``\\x..``/``\\u....`` escapes, so a report can never smuggle them."""
    if isinstance(value, str):
        text = repr(value[:limit])[1:-1]
        if len(value) > limit:
            text += f"... ({len(value)} chars)"
    else:
        text = repr(value)
        if len(text) > limit:
            text = text[:limit] + "..."
    return text[: limit * 4]  # escapes can expand; keep reports bounded


def require_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
