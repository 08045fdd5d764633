"""Parsing of one uploaded file: :func:`parse_file`, :func:`ingest`, :func:`detect_role`
and the size/row limits."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Literal

from hybrid_audio_dagster.core.datasets.constants import UPLOAD_ROLES
from hybrid_audio_dagster.core.inbox.decode import decode_text
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.formats import parse_csv, parse_json, parse_txt
from hybrid_audio_dagster.core.inbox.report import Ingested, ParsedFile, Report

Role = Literal["names", "developers", "suppression"]
MiB = 1024 * 1024
# A file carried by value (its bytes in a run's config: the CLI's upload) is bounded so the
# run config stays small; a file read where it lies (the inbox, the store) by reference.
DEFAULT_MAX_BYTES = 5 * MiB
DEFAULT_MAX_ROWS = 100_000
REFERENCE_MAX_BYTES = 32 * MiB
REFERENCE_MAX_ROWS = 1_000_000

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
    ("suppression", "suppression"),
    ("suppression", "suppress"),
    ("suppression", "opt-out"),
    ("suppression", "opt_out"),
    ("suppression", "optout"),
)
FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "csv", ".json": "json", ".txt": "txt"}


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _basename(filename: str) -> str:
    # uploads may carry Windows paths; only the last component is meaningful
    return PurePosixPath(filename.replace("\\", "/")).name


def detect_role(filename: str) -> str | None:
    """``"names"`` / ``"developers"`` / ``"suppression"`` from a file name (``names*.csv``,
    ``brands*.json``, ``suppression*.csv``...).

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
                    "name it names*.csv / developers*.csv (or brands*) / suppression*.csv or pass the role explicitly",
                )
        elif role not in UPLOAD_ROLES:
            bad, role = role, None
            raise InboxFileError("unknown_role", f"unknown role {bad!r}; expected one of {', '.join(UPLOAD_ROLES)}")
        if size == 0:
            raise InboxFileError("empty_file", "file is empty (0 bytes)")
        if size > max_bytes:
            raise InboxFileError("too_large", f"file is {size} bytes; the limit is {max_bytes}")
        text, encoding = decode_text(data)
        text = text.lstrip("\ufeff")  # a second BOM left by a re-encoding round trip
        fmt = FORMATS[ext]
        if fmt == "csv":
            parts = parse_csv(text, role, ext == ".tsv", max_rows)
        elif fmt == "json":
            parts = parse_json(text, role, max_rows)
        else:
            parts = parse_txt(text, role, max_rows)
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
