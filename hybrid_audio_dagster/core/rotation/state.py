"""The persistent state of a :class:`~.store.RotationStore`: the state file, membership
sidecars and the locked, committed, audited transaction (:class:`StateFile`).

Persistent state, crashes and concurrency
-----------------------------------------
Every mutation is a transaction under an exclusive ``fcntl.flock`` on ``<state>.lock``:
read state → compute → write membership sidecars → atomically replace the state file
(fsync'd; *the commit*) → append the audit line → return. So

* two processes advancing at once are serialised and never hand out the same pair;
* a crash before the commit leaves the old state: nothing was handed out (the caller
  never got a result), the next advance hands out the same pairs;
* a crash after the commit but before the caller used the result is recovered by
  retrying with the same ``run_key_basis``: the remembered batch is returned again
  (exactly-once per run key; :meth:`RotationStore.last_batch` without one);
* a crash between the commit and the audit append is repaired by the next transaction,
  which appends the committed-but-missing record (the state keeps its ``last_event``).

flock needs a local filesystem (not NFS). Use one audit file per state file.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from hybrid_audio_dagster.core.fsutil import atomic_write_text, file_lock
from hybrid_audio_dagster.core.rotation.errors import RotationStateError
from hybrid_audio_dagster.core.rotation.order import KeySet

STATE_VERSION = 1
T = TypeVar("T")

# memberships of past cycles by fingerprint: a 50,000-name sidecar costs ~10 ms to parse
_MEMBER_CACHE: OrderedDict[str, KeySet] = OrderedDict()
_MEMBER_CACHE_SIZE = 8
_MEMBER_CACHE_LOCK = threading.Lock()


class StateFile:
    """State-file half of :class:`~.store.RotationStore` (a mixin; the store sets
    ``state_path``, ``lock_path``, ``members_dir``, ``fsync``, ``seed``, ``_current`` and
    ``_clock``, and :class:`~.ledger._AuditLedger` supplies the audit methods)."""

    def _lock(self, *, exclusive: bool):
        return file_lock(self.lock_path, exclusive=exclusive)

    def _read_state(self) -> dict[str, Any]:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return {"version": STATE_VERSION, "seq": 0, "rotations": {}, "batches": [], "last_batch": None, "last_event": None}
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise RotationStateError(f"{self.state_path}: corrupt rotation state ({exc})") from exc
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise RotationStateError(f"{self.state_path}: unsupported rotation state version {version!r} (expected {STATE_VERSION})")
        return state

    def _load_members(self, fp: str) -> KeySet:
        for ks in self._current.values():
            if ks.fingerprint == fp:
                return ks
        with _MEMBER_CACHE_LOCK:
            cached = _MEMBER_CACHE.get(fp)
            if cached is not None:
                _MEMBER_CACHE.move_to_end(fp)
                return cached
        path = self.members_dir / f"{fp}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RotationStateError(f"{path}: membership of the current cycle is missing; restore it or reset the rotation") from None
        ks = KeySet.from_canonical_bytes(data, expected_fingerprint=fp, source=str(path))
        with _MEMBER_CACHE_LOCK:
            _MEMBER_CACHE[fp] = ks
            while len(_MEMBER_CACHE) > _MEMBER_CACHE_SIZE:
                _MEMBER_CACHE.popitem(last=False)
        return ks

    def _referenced(self, state: dict[str, Any]) -> set[str]:
        return {fp for rec in state["rotations"].values() for fp in rec["fps"].values()}

    def _write_sidecars(self, state: dict[str, Any]) -> None:
        # before the commit, so a committed state never points at a missing membership
        for fp in self._referenced(state):
            path = self.members_dir / f"{fp}.json"
            if path.exists():
                continue
            source = next((ks for ks in self._current.values() if ks.fingerprint == fp), None)
            if source is None:  # pragma: no cover - old fingerprints already have sidecars
                raise RotationStateError(f"{path}: membership missing and not in the current datasets")
            atomic_write_text(path, source.canonical_bytes().decode("ascii"), fsync=self.fsync)

    def _prune(self, state: dict[str, Any]) -> None:
        # under the exclusive lock; readers hold the shared lock while loading sidecars
        referenced = self._referenced(state)
        if self.members_dir.is_dir():
            for path in self.members_dir.iterdir():
                if path.suffix == ".json" and path.stem not in referenced:
                    path.unlink(missing_ok=True)
                elif path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)  # left by a crash inside atomic_write
        for path in self.state_path.parent.glob(f".{self.state_path.name}.*.tmp"):
            path.unlink(missing_ok=True)

    def _write_state(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, ensure_ascii=True, separators=(",", ":"))
        atomic_write_text(self.state_path, text, fsync=self.fsync)
        if self.fsync:
            # make the rename itself durable, not just the file's bytes
            dfd = os.open(self.state_path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _transact(self, op: Callable[[dict[str, Any], int], tuple[dict[str, Any], T]], *, actor: str | None) -> T:
        """Run ``op(state, seq) -> (event, result)`` as one locked, committed, audited step."""
        with self._lock(exclusive=True):
            state = self._read_state()
            self._repair_audit(state)
            seq = state["seq"] + 1
            event, result = op(state, seq)  # op mutates ``state``; raising aborts cleanly
            record: dict[str, Any] = {  # "seq" first: the commit order, readable at a glance
                "seq": seq,
                "ts": self._clock().isoformat(),
                "event": event["event"],
                "rotation": event["rotation"],
                "reason": event.get("reason"),
                "run_key": event.get("run_key"),
                "actor": actor,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "configured_seed": self.seed,
                "detail": event["detail"],
            }
            state["seq"] = seq
            state["last_event"] = record
            self._write_sidecars(state)
            self._write_state(state)  # the commit point
            self._append_audit(record)
            self._prune(state)
            return result
