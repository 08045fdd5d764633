"""The audit log: one JSON object per line in ``<logs>/audit.jsonl``, bounded and rotated.

This module owns the format. Every line has ``ts`` (UTC, ISO 8601), ``event``, ``run_id``
and ``trigger`` (who or what asked: ``cli``, ``inbox``, ``nightly``, a sensor or schedule
name, ``manual``), then the event's own fields. Events:

=====================  ===========================================================
``tts_call``           engine, chars, latency_ms, attempts, hit (bool), ok, error
``stems_run``          kind, partitions, tts_calls, cache_hits, chars
``forced_regeneration``  kind, partitions
``stems_invalidated``  stems (signature prefixes), files
``dataset_ingested``   role, stored_as, rows, rejected_rows, sha256 (of the file)
``dataset_rejected``   problem, sha256
``dataset_deleted``    stored_as
``erase``              key_hash (never the name)
``rotation_advance``   what the rotation handed out (slugs only)
``gcs``                op, object, ok
=====================  ===========================================================

Values are what the caller passes; callers pass slugs, hashes and counts, never display
text of a person and never a credential. As a last guard, :func:`record` replaces any
string given in ``redact`` (the caller's secrets) before the line is written.

Files rotate at ``MAX_BYTES`` with ``BACKUPS`` old files kept (``audit.jsonl.1`` …), so
the log never exceeds ``(BACKUPS + 1) * MAX_BYTES``. One handler per path per process;
lines are written whole (one ``write`` under the handler's lock).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

AUDIT_FILE = "audit.jsonl"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 5

_handlers: dict[str, logging.Logger] = {}
_lock = threading.Lock()


def _logger(folder: Path, max_bytes: int, backups: int) -> logging.Logger:
    path = str((folder / AUDIT_FILE).resolve())
    with _lock:
        logger = _handlers.get(path)
        if logger is None:
            folder.mkdir(parents=True, exist_ok=True)
            logger = logging.Logger(f"hybrid_audio.audit.{len(_handlers)}", level=logging.INFO)
            handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
            _handlers[path] = logger
        return logger


def format_line(event: str, *, run_id: str | None, trigger: str | None, fields: dict, redact: Iterable[str] = ()) -> str:
    """The JSON line for one event (no newline)."""
    body = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "run_id": run_id or "",
        "trigger": trigger or "",
        **fields,
    }
    line = json.dumps(body, ensure_ascii=False, sort_keys=False, default=str, separators=(",", ":"))
    for secret in redact:
        if secret and len(secret) >= 4 and secret in line:
            line = line.replace(secret, "[redacted]")
    return line


def record(
    folder: str | Path,
    event: str,
    *,
    run_id: str | None = None,
    trigger: str | None = None,
    redact: Iterable[str] = (),
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
    **fields,
) -> None:
    """Append one event to ``<folder>/audit.jsonl``. Never raises on a full or read-only
    disk: the audit must not fail the work it describes (the error goes to Python's log)."""
    try:
        _logger(Path(folder), max_bytes, backups).info(format_line(event, run_id=run_id, trigger=trigger, fields=fields, redact=redact))
    except (OSError, ValueError, TypeError) as exc:
        logging.getLogger(__name__).warning("audit log not written: %s", exc)


def read(folder: str | Path) -> Iterator[dict]:
    """Every event of the log and its rotated files, oldest file first."""
    folder = Path(folder)
    files = sorted(folder.glob(AUDIT_FILE + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    for path in [*files, folder / AUDIT_FILE]:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    yield json.loads(line)


class Auditor:
    """``record`` bound to one folder, run and trigger (what a run's code passes around)."""

    def __init__(self, folder: str | Path, *, run_id: str | None = None, trigger: str | None = None, redact: Iterable[str] = ()) -> None:
        self.folder, self.run_id, self.trigger, self.redact = Path(folder), run_id, trigger, tuple(redact)

    def __call__(self, event: str, **fields) -> None:
        record(self.folder, event, run_id=self.run_id, trigger=self.trigger, redact=self.redact, **fields)
