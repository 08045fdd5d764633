"""The persistent layer of the rotation: :class:`RotationStore`, holding cursors in a
JSON state file, advancing them under an exclusive lock, with an audit trail (JSON lines).

The state file and transaction live in :mod:`.state`, the audit trail in :mod:`.ledger`.

Dataset changes mid-cycle
-------------------------
A cycle keeps the order of the membership it started with (the sorted key lists are kept
in content-addressed sidecars ``<state>.members/<sha256>.json``). When the current
datasets differ: a pair whose name or developer was removed is *skipped* when its position
comes up (counted in ``Batch.skipped``, never handed out; if the key is back by then it is
handed out normally); new keys *wait for the next cycle*, which is built from the
datasets current when it starts (lazily, at the first take after the previous cycle
ends). If a whole dimension of the cycle is gone the rest of the cycle is skipped at
once. A new configured seed likewise applies from the next cycle, or at once via
:meth:`RotationStore.reset`. Skipping keeps G1 for the remaining pairs (none repeated,
none reordered) but windows among live items shrink; cost is about
``(N/N_live)·(M/M_live)`` position checks per handed-out pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hybrid_audio_dagster.core.rotation.batch import Assignment, Batch, RotationStatus
from hybrid_audio_dagster.core.rotation.errors import DatasetError, MissingReasonError, RunKeyConflictError, SeekError
from hybrid_audio_dagster.core.rotation.ledger import AuditLedger, read_audit
from hybrid_audio_dagster.core.rotation.order import KeySet, PairOrder, StreamOrder, seed_text
from hybrid_audio_dagster.core.rotation.state import StateFile
from hybrid_audio_dagster.core.rotation.walk import DIMENSIONS, ROTATIONS, Rotation, ScriptMode, Walker, take_assignments


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RotationStore(StateFile, AuditLedger):
    """Persistent cursors of the pair rotation and of the name/developer/script streams.

    ``names``/``developers``/``scripts`` are the datasets *now*; the state remembers the
    membership each cycle was built from (see "Dataset changes mid-cycle" above).
    ``seed`` is the configured seed; a change applies from the next cycle. The audit trail
    defaults to ``<state dir>/logs/rotation_audit.jsonl``. ``fsync=False`` trades
    durability on power loss (not on process crashes) for speed. ``remember_batches`` is
    how many run keys are remembered for idempotent retries.

    A Dagster schedule tick calls ``store.advance(k, run_key_basis=tick_key)`` and puts
    ``batch.to_dict()`` in the run config: a re-evaluated tick gets the same batch.
    """

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        names: Iterable[str],
        developers: Iterable[str],
        scripts: Iterable[str] = (),
        seed: str | int = 0,
        audit_path: str | os.PathLike[str] | None = None,
        remember_batches: int = 16,
        fsync: bool = True,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.state_path = Path(state_path)
        self.lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        self.members_dir = self.state_path.with_name(self.state_path.name + ".members")
        self.audit_path = Path(audit_path) if audit_path is not None else self.state_path.parent / "logs" / "rotation_audit.jsonl"
        self._current: dict[str, KeySet] = {
            "names": KeySet.coerce(names, "names"),
            "developers": KeySet.coerce(developers, "developers"),
            "scripts": KeySet.coerce(scripts, "scripts"),
        }
        for dim in ("names", "developers"):
            if not self._current[dim]:
                raise DatasetError(f"{dim}: the dataset is empty; a rotation needs at least one key")
        if remember_batches < 0:
            raise ValueError(f"remember_batches must be >= 0, got {remember_batches}")
        self.seed = seed_text(seed)
        self.remember_batches = remember_batches
        self.fsync = fsync
        self._clock = clock
        self._audit_mark: tuple[int, int, int] | None = None  # (inode, size, seq) after our append

    @property
    def datasets(self) -> dict[str, KeySet]:
        return dict(self._current)

    # ------------------------------------------------------------------ public operations

    def advance(
        self,
        k: int = 1,
        *,
        run_key_basis: str | None = None,
        script_mode: ScriptMode | None = None,
        actor: str | None = None,
    ) -> Batch:
        """Hand out the next ``k`` pairs, committed before returning.

        ``script_mode``: ``"pair"`` draws a script per pair, ``"batch"`` one for the whole
        batch, ``"none"`` none; default ``"pair"`` if the store has scripts. With
        ``run_key_basis`` a retry returns the remembered batch instead of advancing
        (``replayed=True``); reusing the key with another ``k``/mode raises
        :class:`RunKeyConflictError`.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        mode = self._script_mode(script_mode)
        if run_key_basis is not None and (not isinstance(run_key_basis, str) or not run_key_basis):
            raise ValueError(f"run_key_basis must be a non-empty str, got {run_key_basis!r}")

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], Batch]:
            # returns (audit event, result); mutates ``state``
            if run_key_basis is not None:
                prior = self._remembered(state, run_key_basis)
                if prior is not None:
                    if len(prior.items) != k or prior.script_mode != mode:
                        raise RunKeyConflictError(
                            f"run key {run_key_basis!r} was used for an advance of {len(prior.items)} "
                            f"(scripts: {prior.script_mode}); now asked for {k} (scripts: {mode})"
                        )
                    replayed = replace(prior, replayed=True)
                    return {
                        "event": "replay",
                        "rotation": "pairs",
                        "run_key": run_key_basis,
                        "detail": {"replay_of": prior.seq, **replayed.to_dict()},
                    }, replayed
            rotations = state["rotations"]
            pairs = self._walker("pairs", rotations.get("pairs"))
            scripts = self._walker("scripts", rotations.get("scripts")) if mode != "none" else None
            before = (pairs.rec["cycle"], pairs.rec["cursor"]) if rotations.get("pairs") else (0, 0)
            items = tuple(take_assignments(pairs, scripts, k, mode))
            rotations["pairs"] = pairs.rec
            if scripts is not None:
                rotations["scripts"] = scripts.rec
            batch = Batch(
                seq=seq,
                run_key=run_key_basis,
                script_mode=mode,
                items=items,
                cycle_before=before[0],
                cursor_before=before[1],
                cycle_after=pairs.rec["cycle"],
                cursor_after=pairs.rec["cursor"],
                cycle_length=pairs.length,
                skipped=pairs.skipped,
                cycles_started=tuple(pairs.started),
            )
            state["last_batch"] = batch.to_dict()
            if run_key_basis is not None and self.remember_batches:
                remembered = [e for e in state["batches"] if e[0] != run_key_basis]
                remembered.append([run_key_basis, batch.to_dict()])
                state["batches"] = remembered[-self.remember_batches :]
            detail = batch.to_dict()
            if scripts is not None:
                detail["script_skipped"] = scripts.skipped
                detail["script_cycles_started"] = scripts.started
            return {"event": "advance", "rotation": "pairs", "run_key": run_key_basis, "detail": detail}, batch

        return self._transact(op, actor=actor)

    def next_pair(self, *, run_key_basis: str | None = None, actor: str | None = None) -> Assignment:
        """Advance by one pair (the "generate pair" operation hands it to materialisation)."""
        return self.advance(1, run_key_basis=run_key_basis, actor=actor).items[0]

    def take(self, rotation: Literal["names", "developers", "scripts"], count: int = 1, *, actor: str | None = None) -> list[str]:
        """Advance a single-dimension stream by ``count`` and return its items."""
        if rotation not in ("names", "developers", "scripts"):
            raise ValueError(f"take() works on the names/developers/scripts streams, not {rotation!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        self._require(rotation)

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], list[str]]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            before = (walker.rec["cycle"], walker.rec["cursor"]) if prior else (0, 0)
            taken = [walker.take() for _ in range(count)]
            state["rotations"][rotation] = walker.rec
            detail = {
                "cycle_before": before[0],
                "cursor_before": before[1],
                "cycle_after": walker.rec["cycle"],
                "cursor_after": walker.rec["cursor"],
                "skipped": walker.skipped,
                "cycles_started": walker.started,
                "items": [[key, c, p] for (key,), c, p in taken],
            }
            return {"event": "take", "rotation": rotation, "detail": detail}, [key for (key,), _, _ in taken]

        return self._transact(op, actor=actor)

    def next_name(self, *, actor: str | None = None) -> str:
        """Advance the names stream (independent of the pair rotation)."""
        return self.take("names", 1, actor=actor)[0]

    def next_developer(self, *, actor: str | None = None) -> str:
        """Advance the developers stream (independent of the pair rotation)."""
        return self.take("developers", 1, actor=actor)[0]

    def next_script(self, *, actor: str | None = None) -> str:
        """Advance the scripts stream (the one :meth:`advance` draws scripts from)."""
        return self.take("scripts", 1, actor=actor)[0]

    def preview(self, n: int | None, *, script_mode: ScriptMode | None = None) -> Iterator[Assignment]:
        """Lazily yield the next ``n`` assignments (endless if None) without advancing.

        The state is read once under a shared lock; the result equals what
        ``advance(n, script_mode=...)`` would return if nothing else advanced meanwhile.
        """
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"n must be a non-negative int or None, got {n!r}")
        mode = self._script_mode(script_mode)
        with self._lock(exclusive=False):
            rotations = self._read_state()["rotations"]
            pairs = self._walker("pairs", rotations.get("pairs"))
            scripts = self._walker("scripts", rotations.get("scripts")) if mode != "none" else None
        return take_assignments(pairs, scripts, n, mode)

    def stream(self, rotation: Literal["names", "developers", "scripts"], n: int | None) -> Iterator[str]:
        """Lazily yield the next ``n`` items of a single-dimension stream without advancing."""
        if rotation not in ("names", "developers", "scripts"):
            raise ValueError(f"stream() works on the names/developers/scripts streams, not {rotation!r}")
        self._require(rotation)
        with self._lock(exclusive=False):
            walker = self._walker(rotation, self._read_state()["rotations"].get(rotation))

        def gen() -> Iterator[str]:
            i = 0
            while n is None or i < n:
                yield walker.take()[0][0]
                i += 1

        return gen()

    def script_stream(self, n: int | None) -> Iterator[str]:
        """The next ``n`` scripts, without advancing."""
        return self.stream("scripts", n)

    def reset(
        self,
        *,
        reason: str,
        rotation: Rotation = "pairs",
        cycle: int | None = None,
        actor: str | None = None,
    ) -> RotationStatus:
        """Abandon the current cycle and start ``cycle`` (default: the next) at cursor 0.

        The new cycle uses the current datasets and the configured seed. Pairs not yet
        handed out in the abandoned cycle are dropped; the audit trail records ``reason``.
        """
        self._check_reason(reason)
        self._check_rotation(rotation)
        self._require(rotation)
        if cycle is not None and (not isinstance(cycle, int) or cycle < 0):
            raise ValueError(f"cycle must be a non-negative int, got {cycle!r}")

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], None]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            before = {"cycle": walker.rec["cycle"], "cursor": walker.rec["cursor"]} if prior else None
            target = cycle if cycle is not None else (walker.rec["cycle"] + 1 if prior else 0)
            rec = walker._fresh(target, last=walker.rec.get("last"))
            state["rotations"][rotation] = rec
            detail = {"before": before, "after": {"cycle": target, "cursor": 0}, "seed": self.seed, "fingerprints": rec["fps"]}
            return {"event": "reset", "rotation": rotation, "reason": reason, "detail": detail}, None

        self._transact(op, actor=actor)
        return self.status(rotation)

    def seek(
        self,
        target: int | str | tuple[str, str],
        *,
        reason: str,
        rotation: Rotation = "pairs",
        actor: str | None = None,
    ) -> RotationStatus:
        """Move the cursor of the current cycle to a position, or to where an item is.

        ``target`` is a position in ``[0, cycle_length]``, a (name, developer) for the pair
        rotation or a key for a stream. Moving back hands pairs out again and moving
        forward skips them, deliberately: the audit trail records ``reason``.
        """
        self._check_reason(reason)
        self._check_rotation(rotation)
        self._require(rotation)

        def op(state: dict[str, Any], seq: int) -> tuple[dict[str, Any], None]:
            prior = state["rotations"].get(rotation)
            walker = self._walker(rotation, prior)
            order = walker.order
            if isinstance(target, bool) or not isinstance(target, (int, str, tuple)):
                raise SeekError(f"seek target must be a position, a key or a pair, got {target!r}")
            try:
                if isinstance(target, int):
                    position = target
                elif isinstance(order, PairOrder) and isinstance(target, tuple) and len(target) == 2:
                    position = order.position_of(target[0], target[1])
                elif isinstance(order, StreamOrder) and isinstance(target, str):
                    position = order.position_of(target)
                else:
                    raise SeekError(f"target {target!r} does not fit the {rotation} rotation")
            except KeyError as exc:
                raise SeekError(f"cannot seek {rotation}: {exc.args[0]}") from None
            if not 0 <= position <= len(order):
                raise SeekError(f"position {position} is outside cycle {walker.rec['cycle']} of {rotation} (valid: 0..{len(order)})")
            before = {"cycle": walker.rec["cycle"], "cursor": walker.rec["cursor"]}
            walker.rec["cursor"] = position
            state["rotations"][rotation] = walker.rec
            detail = {
                "before": before,
                "after": {"cycle": walker.rec["cycle"], "cursor": position},
                "target": list(target) if isinstance(target, tuple) else target,
            }
            return {"event": "seek", "rotation": rotation, "reason": reason, "detail": detail}, None

        self._transact(op, actor=actor)
        return self.status(rotation)

    def status(self, rotation: Rotation = "pairs") -> RotationStatus:
        """A read-only snapshot of one rotation (cycle 0 at cursor 0 before any advance)."""
        self._check_rotation(rotation)
        self._require(rotation)
        with self._lock(exclusive=False):
            state = self._read_state()
            walker = self._walker(rotation, state["rotations"].get(rotation))
        rec = walker.rec
        fps = dict(rec["fps"])
        return RotationStatus(
            rotation=rotation,
            seq=state["seq"],
            cycle=rec["cycle"],
            cursor=rec["cursor"],
            cycle_length=walker.length,
            seed=rec["seed"],
            configured_seed=self.seed,
            fingerprints=fps,
            dataset_changed=any(fps[d] != self._current[d].fingerprint for d in fps),
            last=tuple(rec["last"]) if rec.get("last") else None,
        )

    def batch_for(self, run_key: str) -> Batch | None:
        """The remembered batch of ``run_key`` (None if unknown or forgotten)."""
        with self._lock(exclusive=False):
            return self._remembered(self._read_state(), run_key)

    def last_batch(self) -> Batch | None:
        """The last committed advance, to recover a batch lost by a crashed caller."""
        with self._lock(exclusive=False):
            last = self._read_state().get("last_batch")
        return Batch.from_dict(last) if last else None

    def audit_records(self) -> list[dict[str, Any]]:
        """The audit trail, after appending a record a crash may have left out."""
        with self._lock(exclusive=True):
            self._repair_audit(self._read_state())
        return read_audit(self.audit_path)

    # ------------------------------------------------------------------ internals

    def _script_mode(self, script_mode: str | None) -> str:
        if script_mode is None:
            return "pair" if self._current["scripts"] else "none"
        if script_mode not in ("pair", "batch", "none"):
            raise ValueError(f"script_mode must be 'pair', 'batch' or 'none', got {script_mode!r}")
        if script_mode != "none":
            self._require("scripts")
        return script_mode

    def _require(self, rotation: str) -> None:
        for dim in DIMENSIONS[rotation]:
            if not self._current[dim]:
                raise DatasetError(f"{dim}: the dataset is empty; nothing to rotate")

    @staticmethod
    def _check_reason(reason: str) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise MissingReasonError("reset/seek need a non-empty reason for the audit trail")

    @staticmethod
    def _check_rotation(rotation: str) -> None:
        if rotation not in ROTATIONS:
            raise ValueError(f"unknown rotation {rotation!r}; expected one of {', '.join(ROTATIONS)}")

    def _walker(self, rotation: str, rec: dict[str, Any] | None) -> Walker:
        return Walker(rotation, rec, self._current, self.seed, self._load_members)

    def _remembered(self, state: dict[str, Any], run_key: str) -> Batch | None:
        for key, record in reversed(state["batches"]):
            if key == run_key:
                return Batch.from_dict(record)
        return None
