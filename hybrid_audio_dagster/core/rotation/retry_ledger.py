"""The rotation's retry ledger: what the rotation schedule launched and what must be
launched again (see :class:`RetryLedger`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hybrid_audio_dagster.core.fsutil import atomic_write_text, file_lock
from hybrid_audio_dagster.core.layout import ProjectDirs
from hybrid_audio_dagster.core.rotation.campaign import rotation_dir

LEDGER_VERSION = 1
KEEP_TICKS = 64  # tick plans remembered for idempotent re-evaluation
KEEP_ABANDONED = 500


def _empty_ledger() -> dict[str, Any]:
    return {"version": LEDGER_VERSION, "pending": [], "outstanding": [], "abandoned": [], "ticks": []}


class RetryLedgerError(Exception):
    """The retry ledger file is unreadable or of another version."""


class RetryLedger:
    """A small JSON file of pairs to launch again, under an exclusive ``flock``.

    Layout (every list is JSON-safe and ordered):

    ``outstanding``
        requests handed to Dagster and not settled yet: ``run_key``, ``batch_seq``,
        ``tick``, ``issued_at``, ``template``, ``developer``, ``names``, ``attempt``, ``source``.
    ``pending``
        (name, developer, template) triples waiting for a (re)launch, with ``reason``,
        ``attempts`` (runs that failed), ``deferrals`` (ticks skipped because a stem was
        missing), ``first_tick``, ``last_tick``, ``last_run_id``, ``detail``.
    ``abandoned``
        triples given up on (too many failed attempts, or removed from a dataset), newest
        last, bounded to :data:`KEEP_ABANDONED`.
    ``ticks``
        ``[tick, plan]`` of the last :data:`KEEP_TICKS` schedule ticks, so a re-evaluated
        tick returns exactly the plan (and run keys) it returned the first time.

    Writes are atomic (temp file + rename); :meth:`transaction` holds the lock from read
    to write, so two evaluations never interleave. One instance serves one transaction at
    a time (make one per call, as :meth:`for_paths` does).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.fsync = fsync
        self._written: str | None = None  # the ledger as last written, inside a transaction

    @classmethod
    def for_paths(cls, paths: ProjectDirs, *, fsync: bool = True) -> RetryLedger:
        return cls(rotation_dir(paths) / "retry_ledger.json", fsync=fsync)

    def _lock(self, exclusive: bool):
        return file_lock(self.lock_path, exclusive=exclusive)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _empty_ledger()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RetryLedgerError(f"{self.path}: corrupt retry ledger ({exc})") from exc
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
            raise RetryLedgerError(f"{self.path}: unsupported retry ledger (expected version {LEDGER_VERSION})")
        for key, value in _empty_ledger().items():
            data.setdefault(key, value)
        return data

    def read(self) -> dict[str, Any]:
        """A consistent snapshot of the ledger (shared lock)."""
        with self._lock(exclusive=False):
            return self._load()

    @contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Yield the ledger for mutation; it is written back only if the block succeeds
        (:meth:`checkpoint` writes earlier, still under the lock)."""
        with self._lock(exclusive=True):
            data = self._load()
            self._written = json.dumps(data, sort_keys=True)
            try:
                yield data
                self.checkpoint(data)
            finally:
                self._written = None

    def checkpoint(self, data: dict[str, Any]) -> None:
        """Write ``data`` now; only inside :meth:`transaction` (which holds the lock)."""
        if getattr(self, "_written", None) is None:
            raise RuntimeError("RetryLedger.checkpoint() outside a transaction")
        data["ticks"] = data["ticks"][-KEEP_TICKS:]
        data["abandoned"] = data["abandoned"][-KEEP_ABANDONED:]
        text = json.dumps(data, sort_keys=True)
        if text != self._written:
            atomic_write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1), fsync=self.fsync)
            self._written = text
