"""De-duplication folding and stable slugs (:func:`fold`, :func:`slugify`, :func:`assign_keys`)."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence

from hybrid_audio_dagster.core.datasets.constants import FOLD_TABLE, NOT_SLUG_RE, SLUG_MAX_LEN, WS_RE

# --------------------------------------------------------------------------- folding/slugs


def fold(text: str) -> str:
    """De-duplication key: case-, accent-, apostrophe/hyphen-style- and width-insensitive.

    NFKD (compatibility forms such as full-width letters become ASCII) -> casefold -> NFKD
    again (casefold can produce decomposable text, e.g. "İ") -> drop combining marks ->
    transliterate the few letters NFKD leaves alone (ß, ø, ł, ...). Zero-width joiners are
    dropped so they cannot make two equal-looking values distinct.
    """
    if text.isascii():  # fast path, same result as below for ASCII
        return WS_RE.sub(" ", text.lower()).strip()
    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    s = "".join(ch for ch in s if ch.isascii() or unicodedata.category(ch) != "Mn")
    return WS_RE.sub(" ", s.translate(FOLD_TABLE)).strip()


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
    ascii_part = NOT_SLUG_RE.sub("-", s.lower()).strip("-")
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
    return assign_folded_keys(displays, [fold(d) for d in displays])


def assign_folded_keys(displays: Sequence[str], folded: Sequence[str], keep: Mapping[str, str] | None = None) -> list[str]:
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
