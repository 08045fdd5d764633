"""Parsing of uploaded dataset files (CSV, JSON, TXT) into raw values for :mod:`.datasets`.

Used by the inbox sensor and the CLI. File-level problems raise :class:`InboxFileError`
with a ``code`` naming the problem (see :data:`PROBLEM_CODES`); row-level problems become
:class:`~.datasets.Reject` entries. :func:`ingest` does parse + normalise + :class:`Report`
in one call and never raises for a bad file.

The package holds :mod:`.parse` (the entry points :func:`parse_file`, :func:`ingest`,
:func:`detect_role` and the limits), :mod:`.decode` (the encoding policy and
:func:`decode_text`), :mod:`.formats` (the CSV, JSON and TXT readers and column choice),
:mod:`.report` (:class:`ParsedFile`, :class:`Report`, :class:`Ingested`,
:func:`write_report`) and :mod:`.errors` (:class:`InboxFileError`, :data:`PROBLEM_CODES`).
Every name other code imports is re-exported here.
"""

from __future__ import annotations

from hybrid_audio_dagster.core.inbox.decode import decode_text
from hybrid_audio_dagster.core.inbox.errors import PROBLEM_CODES, InboxFileError
from hybrid_audio_dagster.core.inbox.formats import COLUMN_CANDIDATES, _choose_delimiter, _pick_column  # noqa: F401  (privates: core/privacy.py)
from hybrid_audio_dagster.core.inbox.parse import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    FORMATS,
    ROLE_PREFIXES,
    MiB,
    Role,
    content_sha256,
    detect_role,
    ingest,
    parse_file,
)
from hybrid_audio_dagster.core.inbox.report import Ingested, ParsedFile, Report, write_report

__all__ = [
    "COLUMN_CANDIDATES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "FORMATS",
    "PROBLEM_CODES",
    "ROLE_PREFIXES",
    "InboxFileError",
    "Ingested",
    "MiB",
    "ParsedFile",
    "Report",
    "Role",
    "content_sha256",
    "decode_text",
    "detect_role",
    "ingest",
    "parse_file",
    "write_report",
]
