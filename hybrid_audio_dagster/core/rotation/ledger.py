"""The audit trail of a rotation: JSON lines, one per committed transaction
(:class:`AuditLedger`, the store's append/repair half, and :func:`read_audit`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


class AuditLedger:
    """Audit-trail half of :class:`~.store.RotationStore` (a mixin; the store sets
    ``audit_path``, ``fsync`` and ``_audit_mark``)."""

    # ------------------------------------------------------------------ audit trail

    def _repair_audit(self, state: dict[str, Any]) -> None:
        last = state.get("last_event")
        if last and self._last_audit_seq() < last["seq"]:
            self._append_audit(last)

    def _last_audit_seq(self) -> int:
        try:
            st = os.stat(self.audit_path)
        except FileNotFoundError:
            return 0
        if self._audit_mark is not None and self._audit_mark[:2] == (st.st_ino, st.st_size):
            return self._audit_mark[2]  # nobody appended since our own last append
        with open(self.audit_path, "rb") as f:
            for line in _lines_backwards(f):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn line from a crash mid-append
                if isinstance(record, dict) and isinstance(record.get("seq"), int):
                    return record["seq"]
        return 0

    def _append_audit(self, record: dict[str, Any]) -> None:
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.audit_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a torn line so ours stays parseable
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
            self._audit_mark = (st.st_ino, st.st_size, record["seq"])
        finally:
            os.close(fd)


def _lines_backwards(f: Any, chunk: int = 65536) -> Iterator[bytes]:
    """Yield the non-empty lines of a binary file, last first, reading from the end."""
    f.seek(0, os.SEEK_END)
    pos = f.tell()
    tail = b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
        parts = tail.split(b"\n")
        tail = parts[0]  # may be the end of a line that starts in an earlier chunk
        for line in reversed(parts[1:]):
            if line.strip():
                yield line
    if tail.strip():
        yield tail


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse an audit trail, skipping torn lines; records are in commit (``seq``) order."""
    records: list[dict[str, Any]] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return records
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
