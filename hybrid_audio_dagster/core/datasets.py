"""Normalisation, validation and slugs for the two input datasets (pure Python, no Dagster).

A dataset is a list of *names* (first names of people) or *developers* (hotel/timeshare
brands). :func:`normalize_items` turns raw strings into :class:`DatasetItem` (stable slug
``key``, cleaned ``display`` text that will be spoken, source ``row``) and :class:`Reject`
(row, safe preview of the value, reason code and message).

Rules (one reason is reported per value: the first failing check, roughly in this order):

* ``not_text`` / ``empty``: the value is not a string, or nothing is left after trimming.
* ``formula_injection``: the raw cell starts with a tab or CR, or the trimmed text starts
  with ``= + - @`` (or their full-width forms). Such cells execute in spreadsheets when the
  data is exported again (CSV injection).
* ``control_char``: C0/C1 controls other than tab/CR/LF (those count as whitespace inside
  a value), format characters (zero-width space, bidi overrides/isolates, soft hyphen,
  BOM, ...), line/paragraph separators, invisible fillers (Hangul filler, combining
  grapheme joiner, variation selectors). Exception: ZERO WIDTH (NON-)JOINER between two
  non-Latin letters, which Persian and Indic names need; it is ignored for de-duplication.
* ``invalid_char``: lone surrogates, private-use and unassigned code points, and any
  character outside the allowed set (letters, combining marks, ASCII space, decimal digits
  and a short punctuation list per kind -- see :data:`ALLOWED_PUNCTUATION`). Emoji, symbols
  such as ``®`` (TTS reads them aloud) and stacks of more than 3 combining marks (zalgo
  text) are rejected.
* ``too_long``: more than 40 (names) / 60 (developers) code points after cleaning.
* ``path_like``: contains ``/``, ``\\`` or ``..`` (also after NFKC, so ``／`` and ``…`` count).
* ``markup``: contains ``< > { } [ ]`` (after NFKC): they break the template renderer,
  SSML, and bracket tags some TTS engines interpret.
* ``digits_only`` / ``no_letters``: nothing to speak.
* ``digits_in_name``: names may not contain digits (developers may: "1 Hotels").
* ``bad_start``: must start with a letter or digit (catches stray quotes, hyphens, marks).
* ``mixed_script``: Latin, Cyrillic and Greek letters mixed in one value (homoglyph
  spoofing such as Cyrillic "а" in "Mаria").
* ``duplicate``: equal to an earlier row ignoring case, accents, apostrophe/hyphen style
  and compatibility forms ("ZOE" = "Zoë" = "Zoe", "O'Brien" = "O’Brien"). The first
  occurrence wins.

Cleaning: Unicode NFC; full-width ASCII (Ｊｏｈｎ) to ASCII; whitespace (any Unicode
space, tab, CR, LF) collapsed to one ASCII space and trimmed. Case is kept as typed
("McDonald", "DeShawn").

``|`` decision: it is harmless for TTS (read as a pause or skipped) and means nothing in
SSML, so it is *accepted and kept in the display text* (mid-value only: a leading ``|`` is
``bad_start``); renderers must treat the display as literal text. Slugs never contain it:
like every other non-alphanumeric character it becomes ``-`` ("John|Doe" -> "john-doe").

Slugs (``DatasetItem.key``) match ``^[a-z0-9][a-z0-9-]*$``, are at most 48 characters, and
depend only on the de-duplication class of the value (so "Zoë" and "ZOE" get the same slug
whichever of them came first), except for collisions, which are resolved independently of
row order: see :func:`assign_keys`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["names", "developers"]
KINDS: tuple[str, ...] = ("names", "developers")

MAX_DISPLAY_LEN: dict[str, int] = {"names": 40, "developers": 60}
SLUG_MAX_LEN = 48
# Raw cells longer than this are refused before any Unicode processing (cheap, and the
# message stays short); generous so values padded with whitespace are still cleaned.
_RAW_HARD_LIMIT = 10_000
# Rejected values are shown in reports as a repr-escaped preview of at most this many chars.
_PREVIEW_LEN = 80

_APOSTROPHES = "'\u2019\u02bc\u2018"  # ' ’ ʼ ‘ (ʻ okina is a letter, Lm)
_HYPHENS = "-\u2010\u2011"  # - ‐ ‑
# For folding/slugs, the okina-like modifier letters count as apostrophes too.
_APOSTROPHE_LIKE = frozenset(_APOSTROPHES + "\u02bb\u02bd")
ALLOWED_PUNCTUATION: dict[str, frozenset[str]] = {
    # "." for initials ("J.R."), "·" for Catalan ("Marcel·la"), "|" see module doc.
    "names": frozenset(" " + _APOSTROPHES + _HYPHENS + ".\u00b7|"),
    "developers": frozenset(" " + _APOSTROPHES + _HYPHENS + ".\u00b7|&,():!\u2013"),
}
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe62\ufe63")  # incl. full-width/small
_MARKUP = frozenset("<>{}[]")
_ZW_JOINERS = frozenset("\u200c\u200d")
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u3164\uffa0\u2800\u180e" + "".join(chr(c) for c in range(0xFE00, 0xFE10))
) | frozenset(chr(c) for c in range(0xE0100, 0xE01F0))
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
_MAX_MARK_RUN = 3
_WS_RE = re.compile(r"[\t\n\r ]+")
# Full-width ASCII (Ｊｏｈｎ, ＝) is folded to ASCII in the display: it is how CJK input
# methods type Latin, and leaving it would let "Ｊｏｈｎ" look different from "John".
_FULLWIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)}

# Letters NFKD does not decompose into ASCII but that have an obvious Latin spelling.
_TRANSLIT: dict[str, str] = {
    "ß": "ss", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "œ": "oe",
    "ı": "i", "ħ": "h", "ŧ": "t", "ŋ": "ng", "ĸ": "k", "ſ": "s", "ƒ": "f", "ɖ": "d",
    "ƀ": "b", "ɨ": "i", "ʉ": "u", "ǥ": "g", "ȼ": "c", "ɇ": "e", "ɍ": "r", "ɏ": "y",
    "ƶ": "z", "ȥ": "z", "ɗ": "d", "ɓ": "b", "ƙ": "k", "ƴ": "y", "ɛ": "e", "ɔ": "o",
}  # fmt: skip
_FOLD_TABLE = str.maketrans(
    {**{c: "'" for c in _APOSTROPHE_LIKE}, **{c: "-" for c in _HYPHENS}, **dict.fromkeys(_ZW_JOINERS), **_TRANSLIT}
)
_NOT_SLUG_RE = re.compile(r"[^a-z0-9]+")
_ASCII_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidValueError(ValueError):
    """A single value failed validation; ``code`` is the reason code, ``message`` explains."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class DatasetItem:
    """An accepted value: ``key`` is the slug, ``display`` the text that will be spoken.

    ``pronunciation`` is the row's own (validated, canonical: a respelling or ``/IPA/``);
    ``say`` the substitutions its stems apply (its own pronunciation, else the lexicon's
    words it holds) as ``(text, pronunciation)`` pairs. Slugs, paths and metadata use
    ``display`` only. Both are left out of :meth:`to_dict` when empty.
    """

    key: str
    display: str
    row: int  # 1-based row/line/item number in the source
    pronunciation: str | None = None
    say: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "display": self.display, "row": self.row}
        if self.pronunciation:
            d["pronunciation"] = self.pronunciation
        if self.say:
            d["say"] = [list(s) for s in self.say]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetItem:
        say = tuple((str(t), str(p)) for t, p in d.get("say") or ())
        return cls(d["key"], d["display"], d["row"], d.get("pronunciation"), say)


@dataclass(frozen=True)
class Reject:
    """A refused value. ``value`` is an escaped, truncated preview (safe to print/log)."""

    row: int
    value: str
    reason: str  # machine code, e.g. "duplicate", "formula_injection"
    message: str  # human explanation naming the problem
    duplicate_of: int | None = None  # row of the first occurrence, for reason "duplicate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetResult:
    """Outcome of :func:`normalize_items`. Items are in source order; rejects by row."""

    kind: str
    source: str
    items: tuple[DatasetItem, ...]
    rejects: tuple[Reject, ...] = ()
    fingerprint: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", dataset_fingerprint(self.kind, self.items))

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    def by_key(self) -> dict[str, DatasetItem]:
        return {item.key: item for item in self.items}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "items": [i.to_dict() for i in self.items],
            "rejects": [r.to_dict() for r in self.rejects],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetResult:
        return cls(
            kind=data["kind"],
            source=data["source"],
            items=tuple(DatasetItem.from_dict(i) for i in data["items"]),
            rejects=tuple(Reject(**r) for r in data.get("rejects", ())),
        )


def dataset_fingerprint(kind: str, items: Iterable[DatasetItem]) -> str:
    """sha256 of the kind and the sorted (key, display) pairs: independent of row order.
    An item's pronunciations join its pair only when it has some (plain lists keep theirs)."""
    payload = json.dumps(
        {"kind": kind, "items": sorted([i.key, i.display] + ([[list(s) for s in i.say]] if i.say else []) for i in items)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- folding/slugs


def fold(text: str) -> str:
    """De-duplication key: case-, accent-, apostrophe/hyphen-style- and width-insensitive.

    NFKD (compatibility forms such as full-width letters become ASCII) -> casefold -> NFKD
    again (casefold can produce decomposable text, e.g. "İ") -> drop combining marks ->
    transliterate the few letters NFKD leaves alone (ß, ø, ł, ...). Zero-width joiners are
    dropped so they cannot make two equal-looking values distinct.
    """
    if text.isascii():  # fast path, same result as below for ASCII
        return _WS_RE.sub(" ", text.lower()).strip()
    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    s = "".join(ch for ch in s if ch.isascii() or unicodedata.category(ch) != "Mn")
    return _WS_RE.sub(" ", s.translate(_FOLD_TABLE)).strip()


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _join_suffix(base: str, suffix: str) -> str:
    """``base-suffix`` within :data:`SLUG_MAX_LEN` (the base is cut, never the suffix)."""
    room = SLUG_MAX_LEN - len(suffix) - 1
    head = base[:room].rstrip("-")
    return f"{head}-{suffix}" if head else f"u-{suffix}"


def slugify(text: str) -> str:
    """Stable ASCII slug of ``text``: ``^[a-z0-9][a-z0-9-]*$``, at most 48 chars, never empty.

    Accents are stripped and a few letters transliterated (ß->ss, æ->ae, ø->o, ł->l...);
    apostrophes vanish ("O'Brien" -> "obrien"), "&" becomes "and", anything else that is not
    ASCII alphanumeric separates words with "-". When letters have no ASCII spelling (李雷,
    Мария) a hash of the folded text is appended so different values don't share a slug:
    "u-<10 hex>" when nothing ASCII is left, "<ascii part>-<8 hex>" when part is left.
    Over-long slugs are cut to 41 chars plus "-<6 hex>". Depends only on :func:`fold` of
    ``text``, so it never changes for the same input (Unicode-database updates aside).
    """
    return _slug_of_folded(fold(text))


def _slug_of_folded(key: str) -> str:
    s = key.replace("'", "").replace("&", "-and-")
    # a letter/digit we cannot spell in ASCII (李, М, ٣): the ASCII part alone is lossy
    lost = not s.isascii() and any(ch.isalnum() and not ch.isascii() for ch in s)
    ascii_part = _NOT_SLUG_RE.sub("-", s.lower()).strip("-")
    if not ascii_part:
        return f"u-{_hex(key, 10)}"
    if lost:
        return _join_suffix(ascii_part, _hex(key, 8))
    if len(ascii_part) > SLUG_MAX_LEN:
        return _join_suffix(ascii_part, _hex(key, 6))
    return ascii_part


def assign_keys(displays: Sequence[str]) -> list[str]:
    """Slugs for distinct (already de-duplicated) display values, unique within the list.

    Every value gets :func:`slugify` unless another value has the same slug. In a collision
    group the value whose :func:`fold` sorts first keeps the plain slug; the others get
    ``<slug>-<6 hex of sha256(fold)>`` (8, 10, ... hex if that is taken too). Sorting by the
    folded text, not by row, makes the result independent of row order. (The hash is of the
    folded text rather than the display so that it does not depend on which spelling of a
    duplicate came first.)
    """
    return _assign_keys(displays, [fold(d) for d in displays])


def _assign_keys(displays: Sequence[str], folded: Sequence[str], keep: Mapping[str, str] | None = None) -> list[str]:
    """``keep`` maps a folded value to the key it already has: an existing item keeps its
    slug whatever joins the dataset later, and a newcomer that collides gets the suffix."""
    keep = keep or {}
    keys: list[str | None] = [None] * len(displays)
    taken: set[str] = set()
    for i, f in enumerate(folded):
        key = keep.get(f)
        if key is not None and key not in taken:
            keys[i] = key
            taken.add(key)
    bases = [_slug_of_folded(f) for f in folded]
    groups: dict[str, list[int]] = {}
    for i, base in enumerate(bases):
        if keys[i] is None:
            groups.setdefault(base, []).append(i)
    losers: list[int] = []
    for base, members in groups.items():
        members.sort(key=lambda i: (folded[i], displays[i]))
        if base in taken:
            losers.extend(members)
            continue
        keys[members[0]] = base
        taken.add(base)
        losers.extend(members[1:])
    taken |= set(groups)  # a suffixed slug never takes another group's plain slug
    for i in sorted(losers, key=lambda i: (bases[i], folded[i], displays[i])):
        digest = hashlib.sha256(folded[i].encode("utf-8", "surrogatepass")).hexdigest()
        candidate = None
        for n in range(6, len(digest) + 1, 2):
            candidate = _join_suffix(bases[i], digest[:n])
            if candidate not in taken:
                break
        counter = 2
        while candidate in taken:  # pragma: no cover - needs a sha256 prefix collision
            candidate = _join_suffix(bases[i], f"{digest[:8]}{counter}")
            counter += 1
        taken.add(candidate)
        keys[i] = candidate
    return [k for k in keys if k is not None]


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
        m = _ASCII_CTRL_RE.search(s)
        if m is None:
            return None
        return "control_char", f"contains control character {_cp(m[0])} at position {m.start() + 1}"
    for pos, ch in enumerate(s, start=1):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if ch in _ZW_JOINERS:
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
        if ch in _INVISIBLE:
            return "control_char", f"contains invisible character {_cp(ch)} at position {pos}"
        if cat == "Cs":
            return "invalid_char", f"contains a lone surrogate U+{ord(ch):04X} at position {pos} (broken encoding)"
        if cat == "Co":
            return "invalid_char", f"contains private-use character U+{ord(ch):04X} at position {pos}"
        if cat == "Cn":
            return "invalid_char", f"contains unassigned code point U+{ord(ch):04X} at position {pos}"
    return None


def _check(kind: str, raw: object) -> tuple[str, tuple[str, str] | None]:
    """Return ``(display, None)`` or ``("", (code, message))`` for one raw value."""
    if raw is None:
        return "", ("empty", "no value")
    if not isinstance(raw, str):
        return "", ("not_text", f"expected text, got {type(raw).__name__}")
    max_len = MAX_DISPLAY_LEN[kind]
    if len(raw) > _RAW_HARD_LIMIT:
        return "", ("too_long", f"{len(raw)} characters; the limit is {max_len}")
    if raw[:1] in ("\t", "\r"):
        return "", ("formula_injection", "starts with a tab or carriage return (spreadsheet formula injection)")
    s = unicodedata.normalize("NFC", raw).translate(_FULLWIDTH)
    problem = _invisible_problem(s)
    if problem:
        return "", problem
    # Any Unicode space (NBSP, ideographic space, ...) becomes a plain space; \s also matches
    # \x1c-\x1f/\x85/U+2028, but those were refused above.
    s = re.sub(r"\s+", " ", s).strip()
    if not s:
        return "", ("empty", "empty after trimming whitespace")
    if s[0] in _FORMULA_START:
        return "", ("formula_injection", f"starts with {s[0]!r} (spreadsheet formula injection)")
    if len(s) > max_len:
        return "", ("too_long", f"{len(s)} characters; the limit for {kind} is {max_len}")
    nfkc = unicodedata.normalize("NFKC", s)
    if "/" in nfkc or "\\" in nfkc or ".." in nfkc:
        return "", ("path_like", "looks like a file path (contains '/', '\\' or '..')")
    bad_markup = sorted({c for c in nfkc if c in _MARKUP})
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
            if mark_run > _MAX_MARK_RUN:
                return "", ("invalid_char", f"more than {_MAX_MARK_RUN} stacked combining marks at position {pos}")
            continue
        mark_run = 0
        if cat[0] == "L" or cat == "Nd" or ch in allowed or ch in _ZW_JOINERS:
            continue
        return "", ("invalid_char", f"character {_cp(ch)} at position {pos} is not allowed in {kind}")
    if kind == "names" and "Nd" in cats:
        return "", ("digits_in_name", "first names may not contain digits")
    if not (cats[0][0] == "L" or cats[0] == "Nd"):
        return "", ("bad_start", f"must start with a letter, not {s[0]!r}")
    scripts = set() if s.isascii() else {_script(c) for c, cat in zip(s, cats) if cat[0] == "L"}
    scripts &= _CONFUSABLE_SCRIPTS
    if len(scripts) > 1:
        mixed = " and ".join(sorted(x.title() for x in scripts))
        return "", ("mixed_script", f"mixes {mixed} letters (look-alike spoofing)")
    return s, None


def clean_value(kind: str, raw: object) -> str:
    """Validate and clean one value; return the display text or raise InvalidValueError."""
    _require_kind(kind)
    display, problem = _check(kind, raw)
    if problem:
        raise InvalidValueError(*problem)
    return display


def preview(value: object, limit: int = _PREVIEW_LEN) -> str:
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


def _require_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")


def normalize_items(
    kind: str,
    raw_values: Iterable[object],
    *,
    source: str,
    rows: Iterable[int] | None = None,
    existing: Iterable[DatasetItem] = (),
    pronunciations: Iterable[object] | None = None,
) -> DatasetResult:
    """Validate, clean, de-duplicate and slug ``raw_values``.

    ``existing`` are the items of the previous version of the dataset: each keeps its key
    (slugs are partition keys, file names and rotation keys, so they must never move).

    ``rows`` gives the 1-based source row of each value (default: 1, 2, 3, ...). Non-string
    values are rejected (``not_text``; ``None`` is ``empty``) rather than raising, so parsed
    JSON can be passed as is.

    ``pronunciations`` (optional, one per value; ``None``/empty for none) are validated by
    :func:`.pronounce.spec.parse_pronunciation`: a bad one rejects its row
    (``bad_pronunciation``, ``bad_respelling``, ``bad_ipa``, ``pronunciation_too_long``).
    The items carry it; :func:`.pronounce.lexicon.says_for` turns it into ``say``.
    """
    from .pronounce.spec import PronunciationError, parse_pronunciation

    _require_kind(kind)
    values = list(raw_values)
    row_numbers = list(rows) if rows is not None else list(range(1, len(values) + 1))
    if len(row_numbers) != len(values):
        raise ValueError(f"{len(values)} values but {len(row_numbers)} row numbers")
    prons = list(pronunciations) if pronunciations is not None else [None] * len(values)
    if len(prons) != len(values):
        raise ValueError(f"{len(values)} values but {len(prons)} pronunciations")
    own: dict[int, str] = {}
    accepted: list[tuple[int, str]] = []
    folded: list[str] = []
    rejects: list[Reject] = []
    first_row: dict[str, tuple[int, str]] = {}
    for row, raw, raw_pron in zip(row_numbers, values, prons):
        display, problem = _check(kind, raw)
        if problem:
            rejects.append(Reject(row, preview(raw), problem[0], problem[1]))
            continue
        try:
            pron = parse_pronunciation(raw_pron)
        except PronunciationError as exc:
            msg = f"pronunciation {preview(raw_pron, 40)!r}: {exc.message}"
            rejects.append(Reject(row, preview(raw), exc.code, msg))
            continue
        key = fold(display)
        if key in first_row:
            first, first_display = first_row[key]
            msg = f"duplicate of row {first} ({preview(first_display)!r})"
            rejects.append(Reject(row, preview(raw), "duplicate", msg, duplicate_of=first))
            continue
        first_row[key] = (row, display)
        if pron is not None:
            own[row] = pron.value
        accepted.append((row, display))
        folded.append(key)
    keep = {fold(i.display): i.key for i in existing}
    keys = _assign_keys([d for _, d in accepted], folded, keep)
    items = tuple(
        DatasetItem(key, display, row, own.get(row), ((display, own[row]),) if row in own else ())
        for key, (row, display) in zip(keys, accepted)
    )
    rejects.sort(key=lambda r: r.row)
    return DatasetResult(kind=kind, source=source, items=items, rejects=tuple(rejects))
