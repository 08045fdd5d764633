"""Parsing of uploaded dataset files (CSV, JSON, TXT) into raw values for :mod:`.datasets`.

Used by the inbox sensor and the CLI. File-level problems raise :class:`InboxFileError`
with a ``code`` naming the problem (see :data:`PROBLEM_CODES`); row-level problems become
:class:`~.datasets.Reject` entries. :func:`ingest` does parse + normalise + :class:`Report`
in one call and never raises for a bad file.

Encoding policy: UTF-8 (with or without BOM) and UTF-16 with a BOM are decoded. Anything
else is refused with a message saying what it looks like (Windows-1252, Latin-1, UTF-16
without BOM, a mix of UTF-8 and another encoding, binary) -- never decoded by guessing,
so a name can never reach the TTS as mojibake.

Row numbers: CSV = spreadsheet row (the header is row 1; a quoted multi-line cell is one
row), TXT = line number, JSON = 1-based position in the list.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from .datasets import KINDS, DatasetResult, Reject, normalize_items, preview
from .fsutil import atomic_write_text

Role = Literal["names", "developers"]
MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 5 * MiB
DEFAULT_MAX_ROWS = 100_000

# Accepted column headers / JSON keys per role, compared after _norm_header
# ("First Name" -> "first_name").
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "names": ("name", "first_name", "firstname", "given_name"),
    "developers": ("developer", "brand", "company", "resort"),
}
# detect_role: file-name prefixes (lower-case, glob "prefix*"), checked in this order.
ROLE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("names", "name"),
    ("names", "first_name"),
    ("names", "first-name"),
    ("names", "firstname"),
    ("names", "given_name"),
    ("names", "given-name"),
    ("developers", "developer"),
    ("developers", "brand"),
    ("developers", "compan"),
    ("developers", "resort"),
)
FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "csv", ".json": "json", ".txt": "txt"}

PROBLEM_CODES: dict[str, str] = {
    "unreadable": "the file could not be read",
    "empty_file": "the file has 0 bytes",
    "too_large": "the file is larger than the size limit",
    "too_many_rows": "the file has more rows than the row limit",
    "binary": "the file is not text (NUL/control bytes, or a known binary format)",
    "not_utf8": "the file is text in a legacy encoding (e.g. Windows-1252), not UTF-8",
    "mixed_encoding": "some lines are UTF-8 and others are in another encoding",
    "unsupported_encoding": "UTF-16 without BOM, UTF-32, or invalid UTF-16",
    "unknown_role": "the role (names/developers) is unknown or cannot be derived from the name",
    "unsupported_format": "the extension is not .csv, .tsv, .json or .txt",
    "malformed_csv": "the CSV cannot be parsed (bad quoting, huge field)",
    "malformed_json": "the JSON cannot be parsed",
    "unsupported_json": "valid JSON but not one of the accepted shapes",
    "no_column": "no column/key with an accepted name",
    "ambiguous_column": "more than one column/key with an accepted name",
    "no_data": "the file holds no values",
    "no_valid_rows": "every row was rejected",
}

_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx/.docx workbook?); export it as 'CSV UTF-8'"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls?); export it as 'CSV UTF-8'"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
    (b"RIFF", "a RIFF file (WAV audio?)"),
)
# C0 controls that do not belong in a text file (tab, LF, VT, FF and CR are allowed).
_CTRL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_CTRL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_CTRL_RATIO = 0.05  # above this share of control bytes the file is binary, not a few bad rows
_HIGH = re.compile(rb"[\x80-\xff]")
_UTF8_MB = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_LINE_RE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on \x0b, \x1c, U+2028...
_TYPOGRAPHIC = frozenset("’‘“”–—…•€«»¡¿·°")
# charset_normalizer guesses we trust enough to name in a message (it is unreliable on
# short Latin text, which we recognise ourselves).
_TRUSTED_GUESSES = {
    "cp1250": "Windows-1250 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8_r": "KOI8-R (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "shift_jis": "Shift-JIS (Japanese)",
    "cp932": "Shift-JIS (Japanese)",
    "euc_jp": "EUC-JP (Japanese)",
    "gb2312": "GB2312 (Chinese)",
    "gbk": "GBK (Chinese)",
    "gb18030": "GB18030 (Chinese)",
    "big5": "Big5 (Chinese)",
    "euc_kr": "EUC-KR (Korean)",
    "cp949": "CP949 (Korean)",
    "mac_roman": "Mac Roman",
}
_RESAVE = "re-save it as UTF-8 (e.g. Excel: Save As > 'CSV UTF-8')"


class InboxFileError(Exception):
    """A whole file is refused. ``code`` is one of :data:`PROBLEM_CODES`.

    :func:`parse_file` fills ``filename``, ``sha256``, ``size`` and ``role`` (when known)
    before the error leaves it, so :meth:`Report.from_error` can describe the file.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        filename: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        role: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.filename = filename
        self.sha256 = sha256
        self.size = size
        self.role = role
        super().__init__(message)

    @property
    def problem_code(self) -> str:
        return self.code

    def __str__(self) -> str:
        return f"{preview(self.filename)}: {self.message}" if self.filename else self.message


@dataclass(frozen=True)
class ParsedFile:
    """Raw values of one file, ready for :func:`~.datasets.normalize_items`.

    ``values[i]`` comes from source row ``rows[i]``; ``values`` may hold non-strings from
    JSON (normalisation rejects them). ``rejects`` are rows refused while parsing (missing
    field, extra fields, header line in a TXT file, wrong JSON item type).
    """

    filename: str
    role: str
    format: str  # "csv" | "json" | "txt"
    encoding: str  # "utf-8" | "utf-8-sig" | "utf-16"
    sha256: str
    size: int
    values: tuple[object, ...]
    rows: tuple[int, ...]
    rejects: tuple[Reject, ...] = ()
    column: str | None = None  # CSV header / JSON key used, as written in the file
    delimiter: str | None = None  # CSV only

    @property
    def row_count(self) -> int:
        return len(self.values) + len(self.rejects)

    def normalize(self) -> DatasetResult:
        """Validate the values; the result's rejects include the parse-level ones."""
        result = normalize_items(self.role, self.values, source=self.filename, rows=self.rows)
        if not self.rejects:
            return result
        merged = tuple(sorted((*result.rejects, *self.rejects), key=lambda r: r.row))
        return replace(result, rejects=merged)


@dataclass(frozen=True)
class Report:
    """JSON-serialisable verdict on one file (written next to rejected uploads)."""

    filename: str
    sha256: str | None
    size: int | None
    role: str | None
    status: str  # "accepted" | "accepted_with_rejects" | "rejected"
    problem_code: str | None = None
    problem_message: str | None = None
    format: str | None = None
    encoding: str | None = None
    column: str | None = None
    rows: int = 0  # data rows seen (accepted + rejected)
    accepted: int = 0
    rejects: tuple[Reject, ...] = ()
    fingerprint: str | None = None  # DatasetResult.fingerprint when something was accepted

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        problem = {"code": d.pop("problem_code"), "message": d.pop("problem_message")}
        d["rejects"] = [r.to_dict() for r in self.rejects]
        head = {k: d.pop(k) for k in ("filename", "sha256", "size", "role", "status")}
        return {**head, "problem": problem if problem["code"] else None, **d}

    def to_json(self, indent: int | None = 2) -> str:
        # ensure_ascii: reports are read in terminals/logs; escapes keep them unambiguous
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=True)

    @classmethod
    def from_error(cls, err: InboxFileError, *, filename: str | None = None) -> Report:
        return cls(
            filename=err.filename or filename or "",
            sha256=err.sha256,
            size=err.size,
            role=err.role,
            status="rejected",
            problem_code=err.code,
            problem_message=err.message,
        )

    @classmethod
    def from_result(cls, parsed: ParsedFile, result: DatasetResult) -> Report:
        common = dict(
            filename=parsed.filename,
            sha256=parsed.sha256,
            size=parsed.size,
            role=parsed.role,
            format=parsed.format,
            encoding=parsed.encoding,
            column=parsed.column,
            rows=len(result.items) + len(result.rejects),
            accepted=len(result.items),
            rejects=result.rejects,
        )
        if not result.items:
            return cls(
                status="rejected",
                problem_code="no_valid_rows",
                problem_message=f"all {len(result.rejects)} rows were rejected",
                **common,
            )
        status = "accepted_with_rejects" if result.rejects else "accepted"
        return cls(status=status, fingerprint=result.fingerprint, **common)


@dataclass(frozen=True)
class Ingested:
    """Outcome of :func:`ingest`: ``parsed``/``result`` are None when the file was refused."""

    report: Report
    parsed: ParsedFile | None = None
    result: DatasetResult | None = None


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _basename(filename: str) -> str:
    # uploads may carry Windows paths; only the last component is meaningful
    return PurePosixPath(filename.replace("\\", "/")).name


def detect_role(filename: str) -> str | None:
    """``"names"`` / ``"developers"`` from a file name (``names*.csv``, ``brands*.json``...).

    Glob-like prefix match on the lower-cased base name with a supported extension
    (.csv/.tsv/.json/.txt); ``None`` when nothing matches.
    """
    base = _basename(filename).lower()
    if Path(base).suffix not in FORMATS:
        return None
    for role, prefix in ROLE_PREFIXES:
        if base.startswith(prefix):
            return role
    return None


# ------------------------------------------------------------------------------- decoding


def _is_utf16_without_bom(data: bytes) -> bool:
    half = len(data) // 2
    if half < 2:
        return False
    even, odd = data[0::2].count(0), data[1::2].count(0)
    return max(even, odd) / half > 0.3 and min(even, odd) / half < 0.05


def _looks_latin(text: str) -> bool:
    """Plausible Western text: accented letters sit inside otherwise-ASCII words."""
    high = [c for c in text if ord(c) > 0x7F]
    if not high:
        return True
    good = sum(1 for c in high if c.isalpha() or c in _TYPOGRAPHIC)
    if good / len(high) < 0.8:
        return False
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not w.isascii()]
    if not words:
        return True
    return sum(1 for w in words if any(c.isascii() for c in w)) / len(words) >= 0.5


def _looks_cyrillic(text: str) -> bool:
    high = [c for c in text if ord(c) > 0x7F]
    cyr = sum(1 for c in high if unicodedata.name(c, "").startswith("CYRILLIC"))
    return bool(high) and cyr / len(high) >= 0.9


def _guess_legacy(data: bytes) -> str | None:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and _looks_latin(text):
        if re.search(rb"[\x80-\x9f]", data):  # smart quotes, dashes, euro: Windows-only bytes
            return "Windows-1252"
        return "Windows-1252 / ISO-8859-1 (Latin-1)"
    try:
        if _looks_cyrillic(data.decode("cp1251")):
            return "Windows-1251 (Cyrillic)"
    except UnicodeDecodeError:
        pass
    try:
        import charset_normalizer  # optional: only to name an exotic encoding

        best = charset_normalizer.from_bytes(data).best()
    except Exception:  # pragma: no cover - missing package or detector failure
        return None
    return _TRUSTED_GUESSES.get(best.encoding) if best is not None else None


def _line_list(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    return shown + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")


def _diagnose_not_utf8(data: bytes) -> InboxFileError:
    """Explain why valid-looking text is not UTF-8: mixed encodings or a legacy one."""
    utf8_lines: list[int] = []
    bad_lines: list[int] = []
    first_bad: tuple[int, int] | None = None
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not _HIGH.search(line):
            continue
        rest = _UTF8_MB.sub(b"", line)
        if len(rest) != len(line):
            utf8_lines.append(n)
        bad = _HIGH.search(rest)
        if bad:
            bad_lines.append(n)
            first_bad = first_bad or (n, rest[bad.start()])
    if first_bad is None:  # pragma: no cover - the regex mirrors the strict decoder
        return InboxFileError("not_utf8", f"file is not valid UTF-8; {_RESAVE}")
    line_no, byte = first_bad
    if utf8_lines:
        return InboxFileError(
            "mixed_encoding",
            f"file mixes encodings: line(s) {_line_list(utf8_lines)} contain UTF-8 but line(s) "
            f"{_line_list(bad_lines)} do not (first bad byte 0x{byte:02X} on line {line_no}); "
            f"{_RESAVE}",
        )
    guess = _guess_legacy(data)
    looks = f"it looks like {guess}" if guess else "its encoding is unknown (a legacy 8-bit code page?)"
    hint = ""
    if guess and guess.startswith("Windows-1252"):
        hint = f", which is {bytes([byte]).decode('cp1252', 'replace')!r} in Windows-1252"
    return InboxFileError(
        "not_utf8",
        f"file is not UTF-8; {looks}; {_RESAVE} (line {line_no}: byte 0x{byte:02X}{hint})",
    )


def _check_controls(count: int, total: int, what: str) -> None:
    if total and count / total > _CTRL_RATIO:
        raise InboxFileError("binary", f"file is not text: {count} of {total} {what} are control codes")


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode ``data`` as UTF-8 (BOM optional) or BOM-marked UTF-16; return (text, encoding).

    Raises :class:`InboxFileError` (``binary``, ``not_utf8``, ``mixed_encoding``,
    ``unsupported_encoding``) for anything else.
    """
    for magic, what in _BINARY_MAGIC:
        if data.startswith(magic):
            raise InboxFileError("binary", f"file is not text: it looks like {what}")
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise InboxFileError("unsupported_encoding", f"file is UTF-32, which is not supported; {_RESAVE}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16-le" if data.startswith(b"\xff\xfe") else "utf-16-be"
        try:
            text = data[2:].decode(codec)
        except UnicodeDecodeError as exc:
            raise InboxFileError(
                "unsupported_encoding", f"file has a UTF-16 byte-order mark but is not valid UTF-16 ({exc.reason})"
            ) from None
        if "\x00" in text:
            raise InboxFileError("binary", "file is not text: it contains NUL characters")
        _check_controls(len(_CTRL_CHARS.findall(text)), len(text), "characters")
        return text, "utf-16"
    encoding = "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data, encoding = data[3:], "utf-8-sig"
    if b"\x00" in data:
        if _is_utf16_without_bom(data):
            raise InboxFileError(
                "unsupported_encoding", f"file looks like UTF-16 without a byte-order mark; {_RESAVE}"
            )
        raise InboxFileError("binary", "file is not text: it contains NUL bytes")
    _check_controls(len(_CTRL_BYTES.findall(data)), len(data), "bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _diagnose_not_utf8(data) from None
    return text, encoding


# -------------------------------------------------------------------------------- formats


def _norm_header(h: str) -> str:
    return re.sub(r"[\s\-]+", "_", h.replace("\ufeff", "").strip().casefold())


def _column_error(role: str, found: list[str], what: str) -> InboxFileError:
    expected = ", ".join(COLUMN_CANDIDATES[role])
    other = next(r for r in KINDS if r != role)
    hint = ""
    if any(_norm_header(f) in COLUMN_CANDIDATES[other] for f in found):
        hint = f" (it has a {other} {what}: is this a {other} file?)"
    shown = ", ".join(repr(preview(f, 40)) for f in found[:10]) or "none"
    return InboxFileError(
        "no_column",
        f"no {what} for {role}: expected a {what} named one of {expected} (case-insensitive); "
        f"found {shown}{hint}",
    )


def _pick_column(role: str, headers: list[str], what: str) -> int:
    matches = [i for i, h in enumerate(headers) if _norm_header(h) in COLUMN_CANDIDATES[role]]
    if not matches:
        err = _column_error(role, headers, what)
        if len(headers) == 1 and what == "column":
            err.message += (
                f"; a single-column CSV needs a header row naming its column"
                f" (first row is {preview(headers[0], 40)!r})"
            )
        raise err
    if len(matches) > 1:
        shown = ", ".join(f"{preview(headers[i], 40)!r} ({what} {i + 1})" for i in matches)
        raise InboxFileError(
            "ambiguous_column", f"several {what}s could hold the {role}: {shown}; keep only one"
        )
    return matches[0]


def _too_many(max_rows: int) -> InboxFileError:
    return InboxFileError("too_many_rows", f"file has more than {max_rows} rows (the limit)")


def _choose_delimiter(text: str, role: str, tsv: bool) -> str:
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


def _parse_csv(text: str, role: str, tsv: bool, max_rows: int) -> dict[str, Any]:
    delim = _choose_delimiter(text, role, tsv)
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
                idx = _pick_column(role, header, "column")
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


def _parse_json(text: str, role: str, max_rows: int) -> dict[str, Any]:
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InboxFileError("malformed_json", "invalid JSON: nested too deeply") from None
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


def _parse_txt(text: str, role: str, max_rows: int) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------- entry


def _load(source: str | os.PathLike[str] | bytes, max_bytes: int) -> tuple[bytes, str, int]:
    """Return (first max_bytes+1 bytes, sha256 of the whole content, size)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data, content_sha256(data), len(data)
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    try:
        with open(source, "rb") as fh:
            # stream: the hash covers the whole file, but memory stays bounded by max_bytes
            while chunk := fh.read(1 * MiB):
                digest.update(chunk)
                size += len(chunk)
                if len(head) <= max_bytes:
                    head += chunk[: max_bytes + 1 - len(head)]
    except OSError as exc:
        raise InboxFileError("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    return bytes(head), digest.hexdigest(), size


def parse_file(
    source: str | os.PathLike[str] | bytes,
    *,
    filename: str | None = None,
    role: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ParsedFile:
    """Parse an uploaded file (a path, or its bytes plus ``filename``) into raw values.

    ``role`` overrides :func:`detect_role`. The format follows the extension (.csv, .tsv,
    .json, .txt). Raises :class:`InboxFileError` for file-level problems.
    """
    if filename is None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise TypeError("parse_file(bytes) needs filename=")
        filename = os.fspath(source)
    name = _basename(filename)
    sha: str | None = None
    size: int | None = None
    try:
        data, sha, size = _load(source, max_bytes)
        ext = Path(name.lower()).suffix
        if ext not in FORMATS:
            hint = "; export spreadsheets as 'CSV UTF-8'" if ext in (".xlsx", ".xls", ".ods", ".numbers") else ""
            raise InboxFileError(
                "unsupported_format",
                f"unsupported file type {ext or '(none)'!r}; use .csv, .tsv, .json or .txt{hint}",
            )
        if role is None:
            role = detect_role(name)
            if role is None:
                raise InboxFileError(
                    "unknown_role",
                    "cannot tell from the file name whether it holds names or developers; "
                    "name it names*.csv / developers*.csv (or brands*) or pass the role explicitly",
                )
        elif role not in KINDS:
            bad, role = role, None
            raise InboxFileError("unknown_role", f"unknown role {bad!r}; expected one of {', '.join(KINDS)}")
        if size == 0:
            raise InboxFileError("empty_file", "file is empty (0 bytes)")
        if size > max_bytes:
            raise InboxFileError("too_large", f"file is {size} bytes; the limit is {max_bytes}")
        text, encoding = decode_text(data)
        text = text.lstrip("\ufeff")  # a second BOM left by a re-encoding round trip
        fmt = FORMATS[ext]
        if fmt == "csv":
            parts = _parse_csv(text, role, ext == ".tsv", max_rows)
        elif fmt == "json":
            parts = _parse_json(text, role, max_rows)
        else:
            parts = _parse_txt(text, role, max_rows)
    except InboxFileError as err:
        err.filename = err.filename or name
        err.sha256 = err.sha256 or sha
        err.size = err.size if err.size is not None else size
        err.role = err.role or role
        raise
    return ParsedFile(
        filename=name,
        role=role,
        format=fmt,
        encoding=encoding,
        sha256=sha,
        size=size,
        values=tuple(parts["values"]),
        rows=tuple(parts["rows"]),
        rejects=tuple(parts["rejects"]),
        column=parts["column"],
        delimiter=parts["delimiter"],
    )


def ingest(
    source: str | os.PathLike[str] | bytes,
    *,
    filename: str | None = None,
    role: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Ingested:
    """Parse, normalise and report one file. Never raises :class:`InboxFileError`."""
    try:
        parsed = parse_file(source, filename=filename, role=role, max_bytes=max_bytes, max_rows=max_rows)
    except InboxFileError as err:
        fallback = filename or (None if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source))
        return Ingested(report=Report.from_error(err, filename=_basename(fallback or "")))
    result = parsed.normalize()
    return Ingested(report=Report.from_result(parsed, result), parsed=parsed, result=result)


def write_report(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``report`` as JSON atomically (readers never see a half-written report)."""
    atomic_write_text(path, report.to_json() + "\n")
