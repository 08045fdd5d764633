"""The readers of the accepted formats (CSV/TSV, JSON, TXT) and the choice of the column.

Row numbers: CSV = spreadsheet row (the header is row 1; a quoted multi-line cell is one
row), TXT = line number, JSON = 1-based position in the list.
"""

from __future__ import annotations

import csv
import io
import json
import re
from itertools import accumulate
from typing import Any

from hybrid_audio_dagster.core.datasets.constants import KINDS, RULES_OF
from hybrid_audio_dagster.core.datasets.items import Reject
from hybrid_audio_dagster.core.datasets.validation import preview
from hybrid_audio_dagster.core.inbox.errors import InboxFileError

# Accepted column headers / JSON keys per role, compared after _norm_header
# ("First Name" -> "first_name").
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "names": ("name", "first_name", "firstname", "given_name"),
    "developers": ("developer", "brand", "company", "resort"),
    "suppression": ("name", "first_name", "firstname", "given_name"),  # a list of names
}
_LINE_RE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on \x0b, \x1c, U+2028...


# -------------------------------------------------------------------------------- formats


def _norm_header(h: str) -> str:
    return re.sub(r"[\s\-]+", "_", h.replace("\ufeff", "").strip().casefold())


def _column_error(role: str, found: list[str], what: str) -> InboxFileError:
    expected = ", ".join(COLUMN_CANDIDATES[role])
    other = next(r for r in KINDS if r != RULES_OF[role])
    hint = ""
    if any(_norm_header(f) in COLUMN_CANDIDATES[other] for f in found):
        hint = f" (it has a {other} {what}: is this a {other} file?)"
    shown = ", ".join(repr(preview(f, 40)) for f in found[:10]) or "none"
    return InboxFileError(
        "no_column",
        f"no {what} for {role}: expected a {what} named one of {expected} (case-insensitive); found {shown}{hint}",
    )


def pick_column(role: str, headers: list[str], what: str) -> int:
    matches = [i for i, h in enumerate(headers) if _norm_header(h) in COLUMN_CANDIDATES[role]]
    if not matches:
        err = _column_error(role, headers, what)
        if len(headers) == 1 and what == "column":
            err.message += f"; a single-column CSV needs a header row naming its column (first row is {preview(headers[0], 40)!r})"
        raise err
    if len(matches) > 1:
        shown = ", ".join(f"{preview(headers[i], 40)!r} ({what} {i + 1})" for i in matches)
        raise InboxFileError("ambiguous_column", f"several {what}s could hold the {role}: {shown}; keep only one")
    return matches[0]


def _too_many(max_rows: int) -> InboxFileError:
    return InboxFileError("too_many_rows", f"file has more than {max_rows} rows (the limit)")


def choose_delimiter(text: str, role: str, tsv: bool) -> str:
    header = next((ln for ln in _LINE_RE.split(text) if ln.strip()), "")
    present = [d for d in (",", ";", "\t") if d in header]
    if not present:
        return "\t" if tsv else ","
    if len(present) == 1:
        return present[0]

    # Several candidates in the header: prefer one that yields exactly one known column.
    def score(d: str) -> tuple[int, int]:
        fields = next(csv.reader([header], delimiter=d))
        known = sum(1 for f in fields if _norm_header(f) in COLUMN_CANDIDATES[role])
        return (known == 1, header.count(d))

    return max(present, key=score)


def parse_csv(text: str, role: str, tsv: bool, max_rows: int) -> dict[str, Any]:
    delim = choose_delimiter(text, role, tsv)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    values: list[object] = []
    rows: list[int] = []
    rejects: list[Reject] = []
    header: list[str] | None = None
    idx = 0
    row_no = 0
    try:
        for row_no, record in enumerate(reader, start=1):
            if not any(cell.strip() for cell in record):
                continue  # blank line / empty spreadsheet row
            if header is None:
                header = record
                idx = pick_column(role, header, "column")
                continue
            if len(values) + len(rejects) >= max_rows:
                raise _too_many(max_rows)
            if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
                rejects.append(Reject(
                    row_no, preview(delim.join(record)), "extra_fields",
                    f"row has {len(record)} fields but the header has {len(header)}; "
                    f"quote values that contain {delim!r}",
                ))  # fmt: skip
            elif idx >= len(record):
                rejects.append(Reject(
                    row_no, preview(delim.join(record)), "missing_field",
                    f"row has {len(record)} field(s); column {preview(header[idx], 40)!r} is missing",
                ))  # fmt: skip
            else:
                values.append(record[idx])
                rows.append(row_no)
    except csv.Error as exc:
        raise InboxFileError("malformed_csv", f"CSV error near row {row_no + 1}: {exc}") from None
    if header is None:
        raise InboxFileError("no_data", "file contains no header and no rows")
    if not values and not rejects:
        raise InboxFileError("no_data", "file has a header but no rows")
    return {"values": values, "rows": rows, "rejects": rejects, "column": header[idx], "delimiter": delim}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


# A names list needs depth 3 ({"items": [{"name": ...}]}). Refusing deeper documents before
# json.loads keeps the parser far from the interpreter's recursion limit: a RecursionError
# there is catchable, but anything finalised at that depth (a garbage-collected file or
# socket) fails inside its own __del__ and is reported as unraisable.
MAX_JSON_DEPTH = 32
_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_NON_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """The deepest nesting of lists and objects in `text` (strings skipped), without parsing it."""
    brackets = _JSON_NON_BRACKET_RE.sub("", _JSON_STRING_RE.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def parse_json(text: str, role: str, max_rows: int) -> dict[str, Any]:
    if (depth := json_depth(text)) > MAX_JSON_DEPTH:
        raise InboxFileError("malformed_json", f"invalid JSON: nested {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InboxFileError("malformed_json", f"invalid JSON: {exc}") from None
    key = COLUMN_CANDIDATES[role][0]
    shapes = f'a list of strings, a list of objects with a "{key}" key, or {{"items": [...]}}'
    if isinstance(doc, dict):
        keys = [k for k in doc if k.casefold() in ("items", role)]
        if len(keys) != 1 or not isinstance(doc[keys[0]], list):
            found = ", ".join(repr(preview(k, 40)) for k in list(doc)[:10]) or "none"
            raise InboxFileError("unsupported_json", f"expected {shapes}; the object's keys are {found}")
        doc = doc[keys[0]]
    if not isinstance(doc, list):
        raise InboxFileError("unsupported_json", f"expected {shapes}; got a JSON {type(doc).__name__}")
    if not doc:
        raise InboxFileError("no_data", "the JSON list is empty")
    if len(doc) > max_rows:
        raise _too_many(max_rows)
    values: list[object] = []
    rows: list[int] = []
    rejects: list[Reject] = []
    column: str | None = None
    # A list of objects if objects outnumber strings (stray items become row rejects);
    # deciding by the majority keeps one odd item from rejecting every other row.
    if sum(isinstance(x, dict) for x in doc) > sum(isinstance(x, str) for x in doc):
        keys_seen: dict[str, str] = {}  # normalised -> as written (first seen)
        for x in doc:
            if isinstance(x, dict):
                for k in x:
                    if _norm_header(k) in COLUMN_CANDIDATES[role]:
                        keys_seen.setdefault(_norm_header(k), k)
        all_keys = list(dict.fromkeys(k for x in doc if isinstance(x, dict) for k in x))
        if not keys_seen:
            raise _column_error(role, all_keys, "key")
        if len(keys_seen) > 1:
            shown = ", ".join(repr(preview(k, 40)) for k in keys_seen.values())
            raise InboxFileError("ambiguous_column", f"objects use several keys for {role}: {shown}; use only one")
        norm, column = next(iter(keys_seen.items()))
        for n, x in enumerate(doc, start=1):
            if not isinstance(x, dict):
                rejects.append(Reject(n, preview(x), "wrong_type", f'expected an object like {{"{column}": ...}}'))
                continue
            hit = [k for k in x if _norm_header(k) == norm]
            if not hit:
                rejects.append(Reject(n, preview(x), "missing_field", f"object has no {column!r} key"))
                continue
            values.append(x[hit[0]])
            rows.append(n)
    else:
        values = list(doc)
        rows = list(range(1, len(doc) + 1))
    return {"values": values, "rows": rows, "rejects": rejects, "column": column, "delimiter": None}


def parse_txt(text: str, role: str, max_rows: int) -> dict[str, Any]:
    values: list[object] = []
    rows: list[int] = []
    rejects: list[Reject] = []
    for n, line in enumerate(_LINE_RE.split(text), start=1):
        if not line.strip():
            continue
        if len(values) + len(rejects) >= max_rows:
            raise _too_many(max_rows)
        if not values and not rejects and _norm_header(line) in COLUMN_CANDIDATES[role]:
            # a CSV-style header in a TXT file would otherwise become a person called "Name"
            rejects.append(Reject(n, preview(line), "header_line", "looks like a column header; skipped"))
            continue
        values.append(line)
        rows.append(n)
    if not values and not rejects:
        raise InboxFileError("no_data", "file contains only blank lines")
    return {"values": values, "rows": rows, "rejects": rejects, "column": None, "delimiter": None}
