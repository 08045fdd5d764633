"""The headless full batch (``make batch``): the pipeline's stages as runs of the code
location's asset jobs, executed in this process against the given instance.

The same run requests the daemon's ``pipeline_sensor`` launches (see
:mod:`.automation.stages`); resources come from the definitions (the API key stays a
``dg.EnvVar`` there), never from run config.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import dagster as dg

from .automation.stages import (
    DRIVER_TAG,
    PIPELINE_TAG,
    SCOPE_TAG,
    TRIGGER_TAG,
    StemsStage,
    datasets_request,
    messages_request,
    stems_stage,
)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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
            f"seconds            {self.seconds:.2f}",
        ]


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, quiet: bool) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name)
    config = {**(request.run_config or {}), **(QUIET if quiet else {})}
    return job.execute_in_process(
        run_config=config, instance=instance, tags=request.tags, partition_key=request.partition_key, raise_on_error=False
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
    base = {PIPELINE_TAG: pipeline, DRIVER_TAG: "cli", TRIGGER_TAG: "cli", SCOPE_TAG: "names" if names else "full"}

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


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            return event.step_failure_data.error.message.strip()
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

