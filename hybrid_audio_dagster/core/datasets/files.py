"""One dataset file: validate it with the inbox's rules and place it in the dataset folders.

What the inbox sensor and :mod:`hybrid_audio_dagster.core.datasets.admin` call per file: :func:`validate` (a
:class:`Verdict`), :func:`store_accepted` (``data/store/<kind>/``), :func:`reject_file`
(``data/rejected/``), :func:`set_aside_duplicate` (``data/rejected/duplicates/``) and
:func:`find_stored`; stored names are ``<UTC timestamp>-<sha8>-<safe name>``
(:func:`utc_stamp`, :func:`safe_basename`). The layout is described in :mod:`hybrid_audio_dagster.core.datasets.admin`,
which re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hybrid_audio_dagster.core.datasets.constants import UPLOAD_ROLES
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes, atomic_write_text, file_sha256
from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, ingest
from hybrid_audio_dagster.core.inbox.report import Ingested, Report, write_report
from hybrid_audio_dagster.core.layout import ProjectDirs
from hybrid_audio_dagster.core.pronounce.columns import with_pronunciations

# Row-level reasons that do not make the inbox refuse a whole file: a repeated value and a
# header line in a TXT list are harmless (the row is skipped, the report says so).
BENIGN_REJECTS: frozenset[str] = frozenset({"duplicate", "header_line", "empty"})
DUPLICATES_DIR = "duplicates"
REPORT_SUFFIX = ".report.json"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
STORED_NAME = re.compile(r"^(?P<ts>\d{8}T\d{12}Z)-(?P<sha8>[0-9a-f]{8})-(?P<name>.+)$")


class DatasetAdminError(ValueError):
    """A dataset management request is refused (unsafe path, unknown file, bad role)."""


@dataclass(frozen=True)
class Verdict:
    """Validation outcome of one file, with the bytes that were validated."""

    ingested: Ingested
    report: Report
    data: bytes | None

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def role(self) -> str | None:
        return self.report.role


# --------------------------------------------------------------------------- helpers


def utc_stamp(now: datetime | None = None) -> str:
    """Sortable UTC timestamp used in stored file names (acceptance order = name order)."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def safe_basename(filename: str) -> str:
    """The last path component of ``filename`` reduced to ``[A-Za-z0-9._-]`` (never empty/hidden)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    safe = _SAFE_NAME.sub("_", base).lstrip("._-")[:100]
    return safe or "upload"


def validate(
    source: str | os.PathLike[str] | bytes,
    *,
    filename: str | None = None,
    role: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    strict: bool = True,
) -> Verdict:
    """Validate one file with the dataset rules (never raises for a bad file).

    A path larger than ``max_bytes`` is not read into memory (the parser streams it).
    With ``strict`` a file with any non-benign row reject is refused whole.
    """
    data: bytes | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            if os.path.getsize(source) <= max_bytes:
                data = Path(source).read_bytes()
        except OSError:
            data = None  # ingest reports it as unreadable
        filename = filename or os.fspath(source)
    if filename is None:
        raise TypeError("validate(bytes) needs filename=")
    ingested = ingest(data if data is not None else source, filename=filename, role=role, max_bytes=max_bytes, max_rows=max_rows)
    ingested = with_pronunciations(ingested, data)  # bad pronunciations are row rejects too
    report = ingested.report
    if strict and report.ok:
        bad = [r for r in report.rejects if r.reason not in BENIGN_REJECTS]
        if bad:
            report = dataclasses.replace(
                report,
                status="rejected",
                problem_code="rows_rejected",
                problem_message=(
                    f"{len(bad)} row(s) failed validation ({', '.join(sorted({r.reason for r in bad}))}); "
                    "the inbox refuses a file with invalid rows whole: fix or remove them and drop it again"
                ),
                fingerprint=None,
            )
    return Verdict(ingested=ingested, report=report, data=data if report.ok else None)


def unique_path(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _sha8(report: Report) -> str:
    return (report.sha256 or "0" * 8)[:8]


def store_accepted(paths: ProjectDirs, verdict: Verdict, *, now: datetime | None = None) -> Path:
    """Write the validated bytes into ``data/store/<kind>/`` atomically, plus the report sidecar."""
    if not verdict.ok or verdict.data is None or verdict.role not in UPLOAD_ROLES:
        raise DatasetAdminError("only an accepted file can be stored")
    report = verdict.report
    target = unique_path(paths.dataset_store / verdict.role / f"{utc_stamp(now)}-{_sha8(report)}-{safe_basename(report.filename)}")
    atomic_write_bytes(target, verdict.data)
    write_report(report, target.with_name(f".{target.name}{REPORT_SUFFIX}"))
    return target


def reject_file(paths: ProjectDirs, source: Path | None, report: Report, *, now: datetime | None = None, data: bytes | None = None) -> Path:
    """Move a refused file (or write its bytes) to ``data/rejected/`` with ``<name>.report.json``."""
    target = unique_path(paths.rejected / f"{utc_stamp(now)}-{_sha8(report)}-{safe_basename(report.filename or 'upload')}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        os.replace(source, target)  # same filesystem (both under data/): atomic
    elif data is not None:
        atomic_write_bytes(target, data)
    write_report(report, target.with_name(target.name + REPORT_SUFFIX))
    return target


def set_aside_duplicate(paths: ProjectDirs, source: Path, report: Report, stored_as: str | None, *, now: datetime | None = None) -> Path:
    """Move a file whose content was already accepted to ``data/rejected/duplicates/``."""
    target = unique_path(paths.rejected / DUPLICATES_DIR / f"{utc_stamp(now)}-{_sha8(report)}-{safe_basename(report.filename)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    note = {"filename": report.filename, "sha256": report.sha256, "status": "duplicate", "already_stored_as": stored_as}
    atomic_write_text(target.with_name(target.name + REPORT_SUFFIX), json.dumps(note, indent=2, ensure_ascii=True) + "\n")
    return target


def find_stored(paths: ProjectDirs, sha256: str | None) -> str | None:
    """``<kind>/<stored name>`` of an accepted file with exactly this content, if any."""
    if not sha256:
        return None
    for kind in UPLOAD_ROLES:
        folder = paths.dataset_store / kind
        if not folder.is_dir():
            continue
        for p in folder.glob(f"*-{sha256[:8]}-*"):
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and file_sha256(p) == sha256:
                return f"{kind}/{p.name}"
    return None


def remove_stored(stored: Path) -> None:
    for p in (stored, stored.with_name(f".{stored.name}{REPORT_SUFFIX}")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
