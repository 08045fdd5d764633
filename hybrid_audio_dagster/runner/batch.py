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
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import dagster as dg

from hybrid_audio_dagster.core.fsutil import remove_stale_temp_files
from hybrid_audio_dagster.defs.pipeline.stages import StemsStage, datasets_request, messages_request, stems_stage
from hybrid_audio_dagster.defs.tags import DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, STAGE_TAG, TRIGGER_TAG
from hybrid_audio_dagster.runner.recovery import (
    STAGE_POOLS,
    PoolWatch,
    busy_pools,
    ensure_pool_limits,
    owner_tags,
    recover_dead_runs,
)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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
            *(
                [f"GCS                {self.gcs_uploaded} uploaded, {self.gcs_skipped} unchanged"]
                if self.gcs_uploaded or self.gcs_skipped
                else []
            ),
            *(
                [
                    f"recovered          {len(self.recovered_runs)} dead run(s) marked failed, {self.slots_freed} pool slot(s) freed, "
                    f"{self.temp_files_removed} temp file(s) removed ({self.recovery_seconds:.2f}s)"
                ]
                if self.recovered_runs or self.slots_freed or self.temp_files_removed
                else []
            ),
            f"seconds            {self.seconds:.2f}",
        ]


# -- who runs a run: host, pid, pid start time -------------------------------------------------
def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, quiet: bool) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name)
    config = {**(request.run_config or {}), **(QUIET if quiet else {})}
    pools = STAGE_POOLS.get(request.tags.get(STAGE_TAG, ""), ())
    for line in busy_pools(instance, pools):
        log.warning(f"{line}: this batch waits until it ends")
    # the run id is chosen here so the watch can recognise the run's waiting steps
    run_id = str(uuid.uuid4())
    with PoolWatch(instance, pools, {run_id}):
        return job.execute_in_process(
            run_config=config,
            instance=instance,
            tags=request.tags,
            partition_key=request.partition_key,
            raise_on_error=False,
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
    from hybrid_audio_dagster.definitions import build_defs

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
        stage: StemsStage = stems_stage(
            instance, planning.paths, planning.tts, pipeline=pipeline, base_tags=base, names=names, force=force_stems
        )
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
        log.warning(
            f"recovered after a crash: {len(recovery.runs)} dead run(s) of an earlier batch marked failed "
            f"({', '.join(recovery.runs) or '-'}), {recovery.slots_freed} pool slot(s) freed"
        )
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
