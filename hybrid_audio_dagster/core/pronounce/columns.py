"""The optional pronunciation column of a dataset file, aligned with its parsed rows.

:func:`~..inbox.parse_file` reads the one column that holds the names (or developers); this
module reads the optional second one, by header (CSV) or key (JSON objects), for the same
rows, so a file without it parses exactly as before. Accepted headers (case-insensitive,
spaces and hyphens as ``_``): :data:`PRONUNCIATION_COLUMNS`. TXT files have no columns.
Values are validated later, row by row, by :func:`~..datasets.normalize_items`.
"""

from __future__ import annotations

import csv
import io
import json
import re

__all__ = ["PRONUNCIATION_COLUMNS", "pronunciations_of"]

PRONUNCIATION_COLUMNS: tuple[str, ...] = ("pronunciation", "pronounce", "pronounced", "sounds_like", "ipa")


def _norm(header: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(header).replace("\ufeff", "").strip().casefold())


def _pick(headers: list[str], filename: str) -> int | None:
    hits = [i for i, h in enumerate(headers) if _norm(h) in PRONUNCIATION_COLUMNS]
    if len(hits) > 1:
        shown = ", ".join(repr(headers[i][:40]) for i in hits)
        raise ValueError(f"{filename}: several pronunciation columns ({shown}); keep only one")
    return hits[0] if hits else None


def _ipa_column(name: str, value: object) -> object:
    # an "ipa" column may omit the slashes that mark IPA elsewhere
    if _norm(name) == "ipa" and isinstance(value, str) and value.strip() and not value.strip().startswith("/"):
        return f"/{value.strip()}/"
    return value


def pronunciations_of(parsed, data: bytes) -> tuple[object, ...]:
    """One raw pronunciation (or ``None``) per value of ``parsed`` (a ``ParsedFile`` of ``data``)."""
    from hybrid_audio_dagster.core.inbox.decode import decode_text

    none = (None,) * len(parsed.values)
    if parsed.format == "txt" or not parsed.values:
        return none
    text = decode_text(data)[0].lstrip("\ufeff")
    if parsed.format == "csv":
        records: dict[int, list[str]] = {}
        header: list[str] | None = None
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=parsed.delimiter or ",", strict=True)
        for n, record in enumerate(reader, start=1):
            if not any(c.strip() for c in record):
                continue
            if header is None:
                header = record
            else:
                records[n] = record
        idx = _pick(header or [], parsed.filename)
        if idx is None or header is None:
            return none
        return tuple(_ipa_column(header[idx], records[r][idx]) if r in records and idx < len(records[r]) else None for r in parsed.rows)
    doc = json.loads(text)
    if isinstance(doc, dict):
        doc = next((v for k, v in doc.items() if k.casefold() in ("items", parsed.role)), [])
    out: list[object] = []
    for r in parsed.rows:
        item = doc[r - 1] if 0 < r <= len(doc) else None
        value = None
        if isinstance(item, dict):
            idx = _pick(list(item), parsed.filename)
            if idx is not None:
                key = list(item)[idx]
                value = _ipa_column(key, item[key])
        out.append(value)
    return tuple(out)


def with_pronunciations(ingested, data: bytes | None):
    """``ingested`` (an upload's ``Ingested``) re-judged with its pronunciation column, so
    a bad pronunciation is a row reject in the upload's report; unchanged without one."""
    from dataclasses import replace

    from hybrid_audio_dagster.core.datasets.constants import RULES_OF
    from hybrid_audio_dagster.core.datasets.normalize import normalize_items
    from hybrid_audio_dagster.core.inbox.report import Ingested, Report

    parsed = ingested.parsed
    if parsed is None or data is None:
        return ingested
    try:
        prons = pronunciations_of(parsed, data)
    except ValueError as exc:  # two pronunciation columns: the whole file is refused
        report = replace(ingested.report, status="rejected", problem_code="ambiguous_column", problem_message=str(exc), fingerprint=None)
        return Ingested(report=report)
    if not any(p not in (None, "") for p in prons):
        return ingested
    result = normalize_items(RULES_OF[parsed.role], parsed.values, source=parsed.filename, rows=parsed.rows, pronunciations=prons)
    if parsed.rejects:
        result = replace(result, rejects=tuple(sorted((*result.rejects, *parsed.rejects), key=lambda r: r.row)))
    return Ingested(report=Report.from_result(parsed, result), parsed=parsed, result=result)
