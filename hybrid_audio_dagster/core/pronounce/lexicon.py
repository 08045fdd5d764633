"""The shared lexicon (``data/lexicon.csv``) and which substitutions a text needs.

The lexicon maps words as written ("Wyndham") to a pronunciation ("WIND-um"), for brands and
any other word the engines get wrong. It applies to every developer (and name) whose text
holds the word as a whole word, case-sensitively, the way Cartesia's dictionary matches. A
dataset row's own ``pronunciation`` covers its whole text and wins over the lexicon.

File format: a CSV with a header ``text,pronunciation`` (UTF-8); blank lines and rows whose
``text`` starts with ``#`` are skipped. A bad row fails the whole file with its row number,
so a typo never reaches a paid TTS call.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping

from hybrid_audio_dagster.core.pronounce.spec import PronunciationError, Say, parse_pronunciation

__all__ = ["LexiconError", "load_lexicon", "parse_lexicon", "says_for"]

MAX_LEXICON_ROWS = 5000
_MAX_TEXT_LEN = 60


class LexiconError(ValueError):
    """The lexicon file is refused; the message names the row."""


def parse_lexicon(text: str, *, source: str = "lexicon.csv") -> dict[str, str]:
    """``{written text: canonical pronunciation}`` from CSV text (see module doc)."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    rows = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not rows:
        return {}
    header_no, header = rows[0]
    names = [h.strip().casefold() for h in header]
    if "text" not in names or "pronunciation" not in names:
        raise LexiconError(f"{source}: row {header_no}: the header must name the columns text,pronunciation")
    ti, pi = names.index("text"), names.index("pronunciation")
    out: dict[str, str] = {}
    if len(rows) - 1 > MAX_LEXICON_ROWS:
        raise LexiconError(f"{source}: more than {MAX_LEXICON_ROWS} entries")
    for n, row in rows[1:]:
        word = " ".join((row[ti] if ti < len(row) else "").split())
        if word.startswith("#"):
            continue
        if not word or len(word) > _MAX_TEXT_LEN or any(c in word for c in "<>[]{}/\\|") or not any(c.isalpha() for c in word):
            raise LexiconError(f"{source}: row {n}: text {word[:80]!r} must be 1-{_MAX_TEXT_LEN} characters of plain words")
        try:
            pron = parse_pronunciation(row[pi] if pi < len(row) else None)
        except PronunciationError as exc:
            raise LexiconError(f"{source}: row {n} ({word!r}): {exc.message}") from None
        if pron is None:
            raise LexiconError(f"{source}: row {n} ({word!r}): the pronunciation is empty")
        if word in out:
            raise LexiconError(f"{source}: row {n}: {word!r} is listed twice")
        out[word] = pron.value
    return out


def load_lexicon(path: str | os.PathLike[str]) -> dict[str, str]:
    """The lexicon at ``path``; an absent file is an empty lexicon."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(1024 * 1024)
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise LexiconError(f"{os.path.basename(path)}: not UTF-8") from None
    return parse_lexicon(text, source=os.path.basename(path))


def _whole_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def says_for(display: str, own: str | None, lexicon: Mapping[str, str]) -> tuple[Say, ...]:
    """The substitutions ``display`` needs: its own pronunciation (the whole text), else
    every lexicon word it holds as a whole word (longest first, non-overlapping)."""
    if own:
        return (Say(display, own),)
    found: list[Say] = []
    taken: list[tuple[int, int]] = []
    for word in sorted(lexicon, key=lambda w: (-len(w), w)):
        for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", display):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                taken.append((m.start(), m.end()))
                if Say(word, lexicon[word]) not in found:
                    found.append(Say(word, lexicon[word]))
    return tuple(sorted(found))


def says_in_text(text: str, says: Iterable[Say]) -> tuple[Say, ...]:
    """The substitutions of ``says`` whose written form occurs in ``text`` (a rendered
    segment): only these change its audio, so only these enter its signature."""
    return tuple(sorted({s for s in says if _whole_word(text, s.text)}))


def apply_lexicon(result, lexicon: Mapping[str, str]):
    """``result`` (a ``DatasetResult``) with each item's ``say``: its own pronunciation, else
    the lexicon words its display holds. An empty lexicon leaves plain items plain."""
    from dataclasses import replace

    items = tuple(
        replace(i, say=tuple((s.text, s.pronunciation) for s in says_for(i.display, i.pronunciation, lexicon))) for i in result.items
    )
    return type(result)(kind=result.kind, source=result.source, items=items, rejects=result.rejects)
