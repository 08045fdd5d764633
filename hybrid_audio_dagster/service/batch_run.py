"""``batch_job``: the whole batch (or a selection) in one run the CLI launches.

Its op runs the pipeline's stages as runs of the code location's asset jobs, executed in
its own process against the same instance (as ``make batch`` does; each stage is a real run
in the UI, tagged with this run's pipeline id): the datasets, then the stems and messages
runs that :func:`.plan.batch_plan` lists for the selection. One run process instead of one
per stage saves the ~8 s each run's start costs. Resources of the nested runs come from the
definitions (the API key stays a ``dg.EnvVar``), never from run config.
"""

import time

import dagster as dg

from ..automation.stages import STAGE_TAG, datasets_request
from ..batch import BatchSummary, _tally
from ..resources.paths import ProjectPaths
from ..resources.tts import TTSResource
from .plan import BatchPlanConfig, batch_plan

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, "execution": {"config": {"in_process": {}}}}
CARRIED = ("hybrid_audio/pipeline", "hybrid_audio/trigger", "hybrid_audio/driver", "hybrid_audio/scope")


@dg.op(description="Datasets → stems (only what is not current) → messages for a selection, each stage a run.")
def batch_run(context: dg.OpExecutionContext, config: BatchPlanConfig, paths: ProjectPaths, tts: TTSResource) -> dg.Output[dict]:
    from ..definitions import build_defs

    started = time.perf_counter()
    defs = build_defs()
    base = {k: context.run.tags[k] for k in CARRIED if k in context.run.tags}
    base.setdefault("hybrid_audio/pipeline", f"batch-{context.run.run_id[:12]}")
    base["hybrid_audio/driver"] = "cli"  # pipeline_sensor leaves these alone
    summary = BatchSummary()

    def execute(job: str, *, tags: dict, partition: str | None = None, run_config: dict | None = None) -> None:
        result = defs.resolve_job_def(job).execute_in_process(
            run_config={**(run_config or {}), **QUIET}, instance=context.instance, tags=tags, partition_key=partition, raise_on_error=False,
        )
        summary.runs.append(result.run_id)
        _tally(summary, result)
        if not result.success:
            raise dg.Failure(f"{job} run {result.run_id} failed; see it in the UI. Done so far: {summary.to_dict()}")

    request = datasets_request(base["hybrid_audio/pipeline"], base)
    execute(request.job_name, tags=dict(request.tags))
    plan = batch_plan(context.instance, paths, tts, config.model_copy(update={"requests": True}), base_tags=base)
    for req in plan["requests"]["stems"]:
        execute(req["job"], tags=req["tags"], partition=req["partition"], run_config=req["run_config"])
        summary.stem_runs += 1
    for req in plan["requests"]["messages"]:
        execute(req["job"], tags=req["tags"], partition=req["partition"], run_config=req["run_config"])
    summary.seconds = round(time.perf_counter() - started, 2)
    out = {**summary.to_dict(), "planned_chars": plan["chars"], "planned_stems": plan["stems_to_synthesize"]}
    context.log.info(f"batch: {out}")
    return dg.Output(out, metadata={"result": dg.MetadataValue.json(out), **{k: out[k] for k in ("messages_written", "tts_calls", "chars_sent")}})


@dg.job(description="The batch over a selection in one run: the datasets, stems and messages stages run inside it, "
        "each a run of its asset job (the `hybrid-audio batch` CLI).", tags={STAGE_TAG: "batch"})
def batch_job() -> None:
    batch_run()
