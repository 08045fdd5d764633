"""``pipeline_sensor``: takes each daemon-driven pipeline to its next stage (decides only).

A pipeline is the runs that share a ``hybrid_audio/pipeline`` tag: the nightly batch
(``datasets_job`` first), an inbox ingest (``ingest_job``) or a rotation advance. Once every
run of its latest stage has succeeded, the sensor asks for the next stage:

* after the datasets (or ingest) stage: one stems run per contiguous range of stem
  partitions that are not current, or straight the messages when every one is current;
* after the stems stage: the messages run (for an ingest, restricted to the new names, or
  to the new developers × every name).

A bulk materialization in the UI (*Materialize all* on the lineage page, or any backfill
whose runs rebuild the rosters) is a pipeline too, ``ui-<backfill id>``: a backfill targets
the partitions that exist when it is launched, so the names, developers and templates its
datasets run adds (all of them on a fresh project) are outside it. Once that run has
succeeded, the sensor asks for the stems that are not current and then the messages, as
after a nightly datasets stage. A backfill that added no partition needs nothing more.

Run keys are ``<pipeline>:<stage>…``, so evaluating a tick twice asks for the same runs and
the daemon launches each once. A failed run stops its pipeline (its runs show why); the
next nightly batch starts a new one. Automated spend is checked against the spend guard
before any stems run is asked for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import dagster as dg

from hybrid_audio_dagster.core.spend import BudgetExceeded, check_budget
from hybrid_audio_dagster.defs.datasets.jobs import ingest_job
from hybrid_audio_dagster.defs.delivery.jobs import delivery_job
from hybrid_audio_dagster.defs.messages.jobs import messages_check_job, messages_job
from hybrid_audio_dagster.defs.pipeline.jobs import datasets_job
from hybrid_audio_dagster.defs.pipeline.stages import StemsStage, messages_request, stems_stage
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.rotation.jobs import rotation_advance_job
from hybrid_audio_dagster.defs.stems.jobs import developer_stems_job, name_stems_job, script_stems_job
from hybrid_audio_dagster.defs.tags import BACKFILL_TAG, DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, STAGE_TAG, TRIGGER_TAG

LOOKBACK_S = 2 * 24 * 3600
TERMINAL_STAGES = {"messages", "record"}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
CARRIED_TAGS = (PIPELINE_TAG, DRIVER_TAG, SCOPE_TAG, TRIGGER_TAG)
BULK_PREFIX = "ui-"  # the pipeline that completes a bulk materialization (a backfill) from the UI
ROSTERS = ("names_dataset", "developers_dataset", "message_templates")  # the assets that add partitions


def _new_keys(instance: dg.DagsterInstance, run: dg.DagsterRun, kind: str) -> list[str] | None:
    """The keys the ingest run's roster added (its ``new_keys`` metadata)."""
    md = _materialization_of(instance, run, f"{kind}_dataset")
    if md is None:
        return None
    if md.get("new_keys") is None and md.get("new_partitions"):
        return ["*"]  # too many to list: the whole campaign (unchanged messages are skipped)
    return list(md.get("new_keys") or [])


def _materialization_of(instance: dg.DagsterInstance, run: dg.DagsterRun, asset: str) -> dict | None:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=50)
    for record in records.records:
        if record.run_id == run.run_id and record.asset_materialization is not None:
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return None


def rotation_requests(instance: dg.DagsterInstance, advance: dg.DagsterRun) -> list[dg.RunRequest]:
    """The messages runs a rotation tick recorded, and a record run per cycle it touched."""
    from hybrid_audio_dagster.defs.rotation.plan import PlannedRequest

    md = _materialization_of(instance, advance, "rotation_advance")
    if md is None:
        return []
    base = {t: advance.tags[t] for t in CARRIED_TAGS if t in advance.tags}
    out = []
    for d in md.get("requests") or []:
        r = PlannedRequest.from_dict(d).to_run_request()
        out.append(
            dg.RunRequest(
                run_key=r.run_key,
                job_name=r.job_name,
                partition_key=r.partition_key,
                run_config=r.run_config,
                tags={**r.tags, **base, STAGE_TAG: "messages"},
            )
        )
    for cycle in md.get("cycles") or []:
        out.append(
            dg.RunRequest(
                run_key=f"{advance.tags[PIPELINE_TAG]}:record:{cycle}",
                job_name="rotation_cycle_job",
                partition_key=cycle,
                tags={**base, STAGE_TAG: "record"},
            )
        )
    return out


def over_budget(instance: dg.DagsterInstance, stage: StemsStage, tts: TTSResource, spend_guard: SpendGuardResource) -> str | None:
    """Why the spend guard refuses the stems stage as an automated run (None: within budget)."""
    try:
        check_budget(
            stage.chars,
            spend_guard.budget(),
            automated=True,
            spent_today=spend_guard.spent_today(instance) if stage.chars else 0,
            engine=tts.engine_name,
        )
    except BudgetExceeded as exc:
        return str(exc)
    return None


def start_stems(
    instance: dg.DagsterInstance, stage: StemsStage, tts: TTSResource, spend_guard: SpendGuardResource, requests: list, note: str, pid: str
) -> str:
    """Add the stems stage's runs to ``requests`` unless the spend guard refuses them; the note to log."""
    refused = over_budget(instance, stage, tts, spend_guard)
    if refused:
        return f"{pid}: not started: {refused}"
    requests += stage.requests
    return note


def pipeline_decisions(
    instance: dg.DagsterInstance,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    *,
    now: float | None = None,
    gcs: DeliveryResource | None = None,
) -> tuple[list[dg.RunRequest], list[str]]:
    """(run requests, notes) for every pipeline whose latest stage finished successfully.
    With GCS on (``gcs.enabled``) a delivery run follows the messages stage and is the last."""
    now = time.time() if now is None else now
    delivery_on = gcs is not None and gcs.enabled
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={DRIVER_TAG: "daemon"}, updated_after=datetime.fromtimestamp(now - LOOKBACK_S, tz=UTC)), limit=2000
    )
    pipelines: dict[str, list[dg.DagsterRun]] = {}
    for rec in records:
        pid = rec.dagster_run.tags.get(PIPELINE_TAG)
        if pid:
            pipelines.setdefault(pid, []).append(rec.dagster_run)
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for pid, runs in sorted(pipelines.items()):
        stages = {r.tags.get(STAGE_TAG) for r in runs}
        delivery_due = delivery_on and "messages" in stages and "advance" not in stages
        if any(r.status not in FINISHED for r in runs) or "delivery" in stages or (stages & TERMINAL_STAGES and not delivery_due):
            continue  # still running, or done
        if any(r.status is not dg.DagsterRunStatus.SUCCESS for r in runs):
            continue  # stopped: the failed run says why
        advance = next((r for r in runs if r.tags.get(STAGE_TAG) == "advance"), None)
        if advance is not None:
            requests += rotation_requests(instance, advance)
            notes.append(f"{pid}: rotation messages and cycle record")
            continue
        first = next((r for r in runs if r.tags.get(STAGE_TAG) == "datasets"), None)
        if first is None and pid.startswith(BULK_PREFIX):
            first = runs[0]  # its datasets stage was the backfill's run; it carries the tags
        if first is None:
            continue
        base = {t: first.tags[t] for t in CARRIED_TAGS if t in first.tags}
        scope = first.tags.get(SCOPE_TAG, "full")
        names: list[str] = []
        developers: list[str] = []
        if scope in ("names", "developers"):
            new = _new_keys(instance, first, scope)
            if not new:
                notes.append(f"{pid}: the upload added no new {scope}; nothing to build")
                continue
            if new != ["*"]:
                names, developers = (new, []) if scope == "names" else ([], new)
        elif scope != "full":
            continue  # a rejected or unknown upload: its run failed or changed nothing
        if delivery_due:
            request = messages_request(instance, pipeline=pid, base_tags=base, developers=developers, stage="delivery")
            if request is not None:
                requests.append(request)
                notes.append(f"{pid}: delivery to GCS")
            continue
        if "stems" not in stages:
            stage = stems_stage(instance, paths, tts, pipeline=pid, base_tags=base, names=names)
            if stage.requests:
                notes.append(start_stems(instance, stage, tts, spend_guard, requests, f"{pid}: {stage.describe()}", pid))
                continue
        request = messages_request(instance, pipeline=pid, base_tags=base, names=names, developers=developers)
        if request is not None:
            requests.append(request)
            notes.append(f"{pid}: messages")
    bulk_requests, bulk_notes = bulk_followups(
        instance, paths, tts, spend_guard, started=set(pipelines), updated_after=datetime.fromtimestamp(now - LOOKBACK_S, tz=UTC)
    )
    return requests + bulk_requests, notes + bulk_notes


def bulk_followups(
    instance: dg.DagsterInstance,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    *,
    started: set[str],
    updated_after: datetime,
) -> tuple[list[dg.RunRequest], list[str]]:
    """The first stage of each ``ui-<backfill>`` pipeline not started yet: for every backfill
    run that rebuilt the rosters, succeeded and added partitions, the stems runs of what is not
    current (or straight the messages run when every stem is current)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=updated_after), limit=500
    )
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for rec in records:
        run = rec.dagster_run
        backfill = run.tags.get(BACKFILL_TAG)
        pid = f"{BULK_PREFIX}{backfill}"
        if not backfill or pid in started:
            continue
        selected = run.asset_selection
        rosters = [a for a in ROSTERS if selected is None or dg.AssetKey(a) in selected]
        mats = [m for m in (_materialization_of(instance, run, a) for a in rosters) if m is not None]
        if not mats:
            continue  # not a run that rebuilt the rosters (e.g. the backfill's stems runs)
        started.add(pid)
        added = sum(int(m.get("new_partitions") or 0) for m in mats)
        if not added:
            continue  # the backfill itself covers every partition there is
        base = {PIPELINE_TAG: pid, DRIVER_TAG: "daemon", SCOPE_TAG: "full", TRIGGER_TAG: "ui"}
        stage = stems_stage(instance, paths, tts, pipeline=pid, base_tags=base)
        if not stage.requests:
            request = messages_request(instance, pipeline=pid, base_tags=base)
            if request is not None:
                requests.append(request)
                notes.append(f"{pid}: messages of the {added} partition(s) backfill {backfill} added")
            continue
        notes.append(
            start_stems(
                instance,
                stage,
                tts,
                spend_guard,
                requests,
                f"{pid}: backfill {backfill} added {added} partition(s); {stage.describe()}",
                pid,
            )
        )
    return requests, notes


def build_pipeline_sensor(
    *, minimum_interval_seconds: int = 10, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING, jobs: Iterable = ()
) -> dg.SensorDefinition:
    @dg.sensor(
        name="pipeline_sensor",
        jobs=list(jobs),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Advances nightly batches, inbox ingests and the UI's bulk materializations: stems (only "
        "partitions that are not current) after the datasets stage, messages after the stems, delivery to GCS after "
        "the messages (GCS on only); each stage a normal run of an asset job.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, paths: ProjectPaths, tts: TTSResource, spend_guard: SpendGuardResource, gcs: DeliveryResource
    ):
        requests, notes = pipeline_decisions(context.instance, paths, tts, spend_guard, gcs=gcs)
        for note in notes:
            context.log.info(note)
        if not requests:
            return dg.SkipReason("; ".join(notes) or "no pipeline waiting for its next stage")
        return requests

    return _sensor


PIPELINE_SENSOR_ENV = "HYBRID_AUDIO_PIPELINE_SENSOR_S"


def pipeline_sensor_from_env(env: Mapping[str, str] | None = None) -> dg.SensorDefinition:
    """``pipeline_sensor`` every ``HYBRID_AUDIO_PIPELINE_SENSOR_S`` seconds (default 10), read
    when the code location loads; it may ask for a run of every stage's job."""
    env = os.environ if env is None else env
    return build_pipeline_sensor(
        jobs=[
            datasets_job,
            ingest_job,
            rotation_advance_job,
            name_stems_job,
            developer_stems_job,
            script_stems_job,
            messages_job,
            messages_check_job,
            delivery_job,
        ],
        minimum_interval_seconds=int(env.get(PIPELINE_SENSOR_ENV) or 10),
    )


pipeline_sensor = pipeline_sensor_from_env()
