"""Crash recovery for the in-process batch: no daemon watches its runs, so the batch does.

Each in-process run is tagged with the host and pid (and the pid's start time) of the process
running it; at the start of every batch, runs of a ``make batch`` on this host whose process
is gone are marked failed and their pool slots freed (:func:`recover_dead_runs`). A pool slot
held by a live run is never freed: the batch says which run holds it and waits
(:class:`PoolWatch`).

Dagster has no public API for pool slots: :func:`pool_slot_holders`, :func:`free_pool_slots`
and :func:`ensure_pool_limits` use the event-log storage calls its daemon uses (pinned by a
test on sqlite and Postgres).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from hybrid_audio_dagster.core.fsutil import pid_alive
from hybrid_audio_dagster.defs.pools import MESSAGES_POOL, TTS_POOL
from hybrid_audio_dagster.defs.tags import DRIVER_TAG

log = logging.getLogger(__name__)

HOST_TAG = "hybrid_audio/host"  # hostname of the process running an in-process (cli) run
PID_TAG = "hybrid_audio/pid"  # its pid
PID_START_TAG = "hybrid_audio/pid_start"  # its start time (/proc, clock ticks since boot): a reused pid is not it
ACTIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
STAGE_POOLS = {"stems": ("tts",), "messages": ("messages",), "delivery": ("messages",)}  # pools each stage's assets use
POOL_NOTICE_S = 2.0  # a run still waiting for a pool slot after this long is reported


def _pid_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or ""."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs the batch's in-process runs."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _pid_start(pid)}


def run_process_alive(run: dg.DagsterRun) -> bool | None:
    """Whether the process that ran ``run`` is alive: None when that can't be told here (no
    owner tags, or another host)."""
    tags = run.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not (tags.get(PID_TAG) or "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    if pid == os.getpid():
        return True
    if not pid_alive(pid):
        return False
    started = tags.get(PID_START_TAG)
    return not started or _pid_start(pid) in ("", started)  # a different start time: the pid was reused


# -- pool slots: the one non-public Dagster API ------------------------------------------------
# Dagster 1.13 has no public API to read or free the pool (global op concurrency) slots of a
# run, nor to store a pool's default limit ahead of its first use. The daemon's run
# monitoring frees slots with exactly these event-log storage calls
# (dagster/_daemon/monitoring/concurrency.py), but no daemon watches `make batch`. Kept in
# these three functions (pool_slot_holders, free_pool_slots, ensure_pool_limits);
# tests/system/test_crash_safety.py pins them, so an upgrade that changes them fails a test, not a
# batch.
def pool_slot_holders(instance: dg.DagsterInstance, pool: str) -> tuple[int, list[str], list[str]]:
    """(slot limit, run ids holding a slot, run ids with a step waiting for one) of ``pool``."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0, [], []
    info = storage.get_concurrency_info(pool)
    waiting = [s.run_id for s in info.pending_steps if s.assigned_timestamp is None]
    limit = info.limit if info.limit is not None else info.slot_count
    return limit or 0, [s.run_id for s in info.claimed_slots], waiting


def free_pool_slots(instance: dg.DagsterInstance, run_id: str, pools: Sequence[str] = (TTS_POOL, MESSAGES_POOL)) -> int:
    """Free every pool slot (and pending claim) of ``run_id``; returns how many it held in ``pools``."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    held = sum(pool_slot_holders(instance, pool)[1].count(run_id) for pool in pools)
    storage.free_concurrency_slots_for_run(run_id)
    return held


def ensure_pool_limits(instance: dg.DagsterInstance, pools: Sequence[str] = (TTS_POOL, MESSAGES_POOL)) -> None:
    """Store the instance's default limit for ``pools`` before any run claims a slot.

    Dagster 1.13 creates a pool's limit row when a run first claims a slot in it; two
    processes doing that at once on Postgres fail one of the runs (the IntegrityError is
    handled inside an already aborted transaction). Created here, one process at a time in
    effect: losing that race is harmless (the other process stored the row)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or instance.global_op_concurrency_default_limit is None:
        return
    for pool in pools:
        if pool in {p.name for p in storage.get_pool_limits()}:
            continue
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except Exception:
            if pool not in {p.name for p in storage.get_pool_limits()}:
                raise


@dataclass
class Recovery:
    runs: list[str] = field(default_factory=list)  # marked failed
    slots_freed: int = 0


def recover_dead_runs(instance: dg.DagsterInstance, pools: Sequence[str] = (TTS_POOL, MESSAGES_POOL)) -> Recovery:
    """Mark failed the runs of a ``make batch`` on this host whose process is gone, and free
    the pool slots they (or finished runs of such a process) still hold. Runs of a live
    process, of another host, or launched by a code server (the daemon's run monitoring
    watches those) are left alone."""
    done = Recovery()
    candidates: dict[str, dg.DagsterRun] = {
        r.run_id: r
        for r in instance.get_runs(dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={DRIVER_TAG: "cli", HOST_TAG: socket.gethostname()}))
    }
    holders = {rid for pool in pools for rid in pool_slot_holders(instance, pool)[1]}
    for rid in holders - candidates.keys():
        run = instance.get_run_by_id(rid)
        if run is not None and run.tags.get(DRIVER_TAG) == "cli":
            candidates[rid] = run
    for run in candidates.values():
        if run_process_alive(run) is not False:
            continue
        if not run.is_finished:
            host, pid = run.tags.get(HOST_TAG), run.tags.get(PID_TAG)
            instance.report_run_failed(
                run,
                message=f"the process running it (pid {pid} on {host}) is gone (killed or crashed); marked failed by the next make batch",
            )
            done.runs.append(run.run_id)
        done.slots_freed += free_pool_slots(instance, run.run_id, pools)
    return done


def describe_holder(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id} (not in this instance)"
    who = ""
    if run.tags.get(PID_TAG):
        who = f", pid {run.tags[PID_TAG]} on {run.tags.get(HOST_TAG, '?')}"
    return f"run {run_id} ({run.job_name}, {run.status.value}, driver {run.tags.get(DRIVER_TAG, '-')}{who})"


def busy_pools(instance: dg.DagsterInstance, pools: Sequence[str], *, exclude: str | None = None) -> list[str]:
    """One line per pool of ``pools`` whose slots are all held by other runs: which runs."""
    lines = []
    for pool in pools:
        limit, holders, _ = pool_slot_holders(instance, pool)
        others = [h for h in holders if h != exclude]
        if limit and len(holders) >= limit and others:
            lines.append(f"pool {pool!r} ({limit} slot(s)) is held by " + "; ".join(describe_holder(instance, h) for h in others))
    return lines


class PoolWatch:
    """While a run executes, say once (warning) if it has been waiting for a pool slot for
    ``POOL_NOTICE_S`` and who holds it, instead of waiting without a word."""

    def __init__(self, instance: dg.DagsterInstance, pools: Sequence[str], run_ids: set[str], notice=log.warning) -> None:
        self.instance, self.pools, self.run_ids, self.notice = instance, pools, run_ids, notice
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pool-watch", daemon=True)

    def __enter__(self) -> PoolWatch:
        if self.pools:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        waited_since: float | None = None
        while not self._stop.wait(1.0):
            try:
                waiting = [p for p in self.pools if set(pool_slot_holders(self.instance, p)[2]) & self.run_ids]
            except Exception:  # noqa: BLE001 - a notice must never break the batch
                return
            if not waiting:
                waited_since = None
                continue
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since >= POOL_NOTICE_S:
                lines = busy_pools(self.instance, waiting)
                self.notice(
                    "waiting for a pool slot: "
                    + ("; ".join(lines) or f"pool(s) {waiting} are full")
                    + ". The batch goes on when that run ends (a dead one is freed by the next make batch)."
                )
                return
