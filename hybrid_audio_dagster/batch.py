"""The headless full batch (``make batch``): the pipeline's stages as runs of the code
location's asset jobs, executed in this process against the given instance.

The same run requests the daemon's ``pipeline_sensor`` launches (see
:mod:`.automation.stages`); resources come from the definitions (the API key stays a
``dg.EnvVar`` there), never from run config.

Crash safety. No daemon watches these in-process runs, so the batch does it itself: each
run is tagged with the host and pid (and the pid's start time) of the process running it,
and at the start of every batch the runs of a ``make batch`` on this host whose process is
gone are marked failed and their pool slots freed (:func:`recover_dead_runs`); then the
temp files that dead writers left under ``stems/`` and ``output/`` are removed. A pool slot
held by a run that is alive is never freed: the batch says which run holds it and waits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import dagster as dg

from pathlib import Path

from .automation.stages import (
    DRIVER_TAG,
    PIPELINE_TAG,
    SCOPE_TAG,
    STAGE_TAG,
    TRIGGER_TAG,
    StemsStage,
    datasets_request,
    messages_request,
    stems_stage,
)
from .core.fsutil import pid_alive, remove_stale_temp_files

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

HOST_TAG = "hybrid_audio/host"  # hostname of the process running an in-process (cli) run
PID_TAG = "hybrid_audio/pid"  # its pid
PID_START_TAG = "hybrid_audio/pid_start"  # its start time (/proc, clock ticks since boot): a reused pid is not it
ACTIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
STAGE_POOLS = {"stems": ("tts",), "messages": ("messages",), "delivery": ("messages",)}  # pools each stage's assets use
POOL_NOTICE_S = 2.0  # a run still waiting for a pool slot after this long is reported

log = logging.getLogger(__name__)


class BatchError(Exception):
    """A stage of the batch failed; ``summary`` says what had been done."""

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class BatchSummary:
    messages_written: int = 0
    messages_skipped: int = 0
    messages_failed: int = 0
    message_partitions: int = 0
    tts_calls: int = 0
    chars_sent: int = 0
    cache_hits: int = 0
    stem_partitions: int = 0
    stem_runs: int = 0
    stems_planned: str = ""
    partitions_retired: int = 0
    files_retired: int = 0
    gcs_uploaded: int = 0
    gcs_skipped: int = 0
    checks_failed: int = 0
    seconds: float = 0.0
    runs: list[str] = field(default_factory=list)
    recovered_runs: list[str] = field(default_factory=list)  # dead runs of an earlier batch, marked failed
    slots_freed: int = 0  # pool slots those runs still held
    temp_files_removed: int = 0
    recovery_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"messages written   {self.messages_written}",
            f"messages unchanged {self.messages_skipped}",
            f"messages failed    {self.messages_failed}",
            f"TTS calls          {self.tts_calls}",
            f"characters sent    {self.chars_sent}",
            f"stem cache hits    {self.cache_hits}",
            f"stem runs          {self.stem_runs} ({self.stems_planned or 'every stem partition current'})",
            f"retired            {self.partitions_retired} partitions, {self.files_retired} files",
            *([f"GCS                {self.gcs_uploaded} uploaded, {self.gcs_skipped} unchanged"]
              if self.gcs_uploaded or self.gcs_skipped else []),
            *([f"recovered          {len(self.recovered_runs)} dead run(s) marked failed, {self.slots_freed} pool slot(s) freed, "
               f"{self.temp_files_removed} temp file(s) removed ({self.recovery_seconds:.2f}s)"]
              if self.recovered_runs or self.slots_freed or self.temp_files_removed else []),
            f"seconds            {self.seconds:.2f}",
        ]


# -- who runs a run: host, pid, pid start time -------------------------------------------------
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
# tests/test_crash_safety.py pins them, so an upgrade that changes them fails a test, not a
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


def free_pool_slots(instance: dg.DagsterInstance, run_id: str, pools: Sequence[str] = ("tts", "messages")) -> int:
    """Free every pool slot (and pending claim) of ``run_id``; returns how many it held in ``pools``."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return 0
    held = sum(pool_slot_holders(instance, pool)[1].count(run_id) for pool in pools)
    storage.free_concurrency_slots_for_run(run_id)
    return held


def ensure_pool_limits(instance: dg.DagsterInstance, pools: Sequence[str] = ("tts", "messages")) -> None:
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


def recover_dead_runs(instance: dg.DagsterInstance, pools: Sequence[str] = ("tts", "messages")) -> Recovery:
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
                run, message=f"the process running it (pid {pid} on {host}) is gone (killed or crashed); marked failed by the next make batch"
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


class _PoolWatch:
    """While a run executes, say once (warning) if it has been waiting for a pool slot for
    ``POOL_NOTICE_S`` and who holds it, instead of waiting without a word."""

    def __init__(self, instance: dg.DagsterInstance, pools: Sequence[str], run_ids: set[str], notice=log.warning) -> None:
        self.instance, self.pools, self.run_ids, self.notice = instance, pools, run_ids, notice
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pool-watch", daemon=True)

    def __enter__(self) -> _PoolWatch:
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
                self.notice("waiting for a pool slot: " + ("; ".join(lines) or f"pool(s) {waiting} are full")
                            + ". The batch goes on when that run ends (a dead one is freed by the next make batch).")
                return


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, quiet: bool) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name)
    config = {**(request.run_config or {}), **(QUIET if quiet else {})}
    pools = STAGE_POOLS.get(request.tags.get(STAGE_TAG, ""), ())
    for line in busy_pools(instance, pools):
        log.warning(f"{line}: this batch waits until it ends")
    # the run id is chosen here so the watch can recognise the run's waiting steps
    run_id = str(uuid.uuid4())
    with _PoolWatch(instance, pools, {run_id}):
        return job.execute_in_process(
            run_config=config, instance=instance, tags=request.tags, partition_key=request.partition_key, raise_on_error=False,
            run_id=run_id,
        )


def run_full_batch(
    instance: dg.DagsterInstance,
    resources: dict | None = None,
    *,
    force_stems: bool = False,
    names: Sequence[str] = (),
    check: bool = False,
    defs: dg.Definitions | None = None,
    quiet: bool = True,
) -> BatchSummary:
    """Datasets → stems (only partitions that are not current) → messages [→ bit-exact check]
    [→ delivery to GCS, when the ``gcs`` resource is on].

    ``resources`` overrides the definitions' resources (tests use a throwaway project).
    Raises :class:`BatchError` when a stage's run fails; later stages are not started.
    """
    from .definitions import build_defs

    started = time.perf_counter()
    defs = defs or build_defs(resources)
    summary = BatchSummary()
    pipeline = f"batch-{uuid.uuid4().hex[:12]}"
    base = {PIPELINE_TAG: pipeline, DRIVER_TAG: "cli", TRIGGER_TAG: "cli", SCOPE_TAG: "names" if names else "full", **owner_tags()}
    _recover(instance, defs, summary)

    def run(request: dg.RunRequest, what: str) -> dg.ExecuteInProcessResult:
        result = _execute(defs, instance, request, quiet)
        summary.runs.append(result.run_id)
        _tally(summary, result)
        if not result.success:
            summary.seconds = time.perf_counter() - started
            raise BatchError(f"{what} run {result.run_id} failed: {_failure(result)}", summary)
        return result

    run(datasets_request(pipeline, base), "datasets")
    # initialised here for planning only: contracts, no TTS call, nothing put in run config
    with dg.build_resources({k: defs.resources[k] for k in ("paths", "tts")}) as planning:
        stage: StemsStage = stems_stage(instance, planning.paths, planning.tts, pipeline=pipeline, base_tags=base, names=names, force=force_stems)
    summary.stems_planned = stage.describe() if stage.requests else ""
    for request in stage.requests:
        run(request, "stems")
        summary.stem_runs += 1
    request = messages_request(instance, pipeline=pipeline, base_tags=base, names=names)
    if request is not None:
        run(request, "messages")
        if check:
            check_request = messages_request(instance, pipeline=pipeline, base_tags=base, stage="check")
            run(check_request, "bit-exact check")
        gcs = defs.resources.get("gcs")
        if gcs is not None and gcs.enabled:  # the delivery stage, only with GCS on
            run(messages_request(instance, pipeline=pipeline, base_tags=base, stage="delivery"), "delivery")
    summary.seconds = time.perf_counter() - started
    return summary


def _recover(instance: dg.DagsterInstance, defs: dg.Definitions, summary: BatchSummary) -> None:
    """Before the first stage: dead runs of earlier batches failed and their slots freed,
    dead writers' temp files removed (see the module docstring)."""
    t0 = time.perf_counter()
    ensure_pool_limits(instance)
    recovery = recover_dead_runs(instance)
    summary.recovered_runs, summary.slots_freed = recovery.runs, recovery.slots_freed
    if recovery.runs or recovery.slots_freed:
        log.warning(f"recovered after a crash: {len(recovery.runs)} dead run(s) of an earlier batch marked failed "
                    f"({', '.join(recovery.runs) or '-'}), {recovery.slots_freed} pool slot(s) freed")
    with dg.build_resources({"paths": defs.resources["paths"]}) as res:
        summary.temp_files_removed = len(remove_stale_temp_files(res.paths.stems, res.paths.output))
    summary.recovery_seconds = time.perf_counter() - t0


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            message = error.message.strip()
            if error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
                message = f"{message} {error.cause.message.strip()}"  # the asset's own error (e.g. disk full, naming the path)
            return message
    return "see the run's logs in the Dagster UI"


def _tally(summary: BatchSummary, result: dg.ExecuteInProcessResult) -> None:
    """Add a run's per-partition metadata to the summary."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        md = {k: v.value for k, v in mat.metadata.items()}
        key = mat.asset_key.to_user_string()
        if key.endswith("_stems"):
            summary.stem_partitions += 1
            summary.tts_calls += md.get("tts_calls", 0)
            summary.cache_hits += md.get("cache_hits", 0)
            summary.chars_sent += md.get("chars_sent", 0)
        elif key == "messages":
            summary.message_partitions += 1
            summary.messages_written += md.get("written", 0)
            summary.messages_skipped += md.get("skipped", 0)
            summary.messages_failed += md.get("failed", 0)
        elif key == "delivered_messages":
            summary.gcs_uploaded += md.get("uploaded", 0)
            summary.gcs_skipped += md.get("skipped", 0)
        elif key == "retired_outputs":
            summary.partitions_retired += md.get("partitions_retired", 0)
            summary.files_retired += md.get("files_removed", 0)
    for evaluation in result.get_asset_check_evaluations():
        summary.checks_failed += not evaluation.passed

