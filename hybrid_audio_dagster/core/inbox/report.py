"""The results of parsing an upload: :class:`ParsedFile` (raw values), :class:`Report`
(the JSON verdict), :class:`Ingested` and :func:`write_report`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

from hybrid_audio_dagster.core.datasets.constants import RULES_OF
from hybrid_audio_dagster.core.datasets.items import DatasetResult, Reject
from hybrid_audio_dagster.core.datasets.normalize import normalize_items
from hybrid_audio_dagster.core.fsutil import atomic_write_text
from hybrid_audio_dagster.core.inbox.errors import InboxFileError


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
        result = normalize_items(RULES_OF[self.role], self.values, source=self.filename, rows=self.rows)
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


def write_report(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``report`` as JSON atomically (readers never see a half-written report)."""
    atomic_write_text(path, report.to_json() + "\n")
