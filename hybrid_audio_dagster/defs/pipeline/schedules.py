"""The nightly full batch.

``nightly_batch_schedule`` asks for the first stage of a pipeline, a ``datasets_job`` run,
once a day; ``pipeline_sensor`` then asks for the stems runs and, once they succeeded, the
messages run (stems strictly before messages, each a normal run of an asset job). It is STOPPED by default:
turn it on in the UI (Automation) or with ``dagster schedule start nightly_batch_schedule``.

The cron expression is :data:`NIGHTLY_CRON` (02:00) in :data:`NIGHTLY_TIMEZONE` (UTC);
a deployment changes it with ``HYBRID_AUDIO_NIGHTLY_CRON`` / ``HYBRID_AUDIO_NIGHTLY_TZ``
(read when the code location loads: a schedule's cron is part of its definition), or builds
its own with :func:`build_nightly_batch_schedule`.
"""

import os
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from hybrid_audio_dagster.defs.pipeline.stages import datasets_request
from hybrid_audio_dagster.defs.tags import DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, TRIGGER_TAG

NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "UTC"
CRON_ENV = "HYBRID_AUDIO_NIGHTLY_CRON"
TZ_ENV = "HYBRID_AUDIO_NIGHTLY_TZ"


def build_nightly_batch_schedule(
    cron_schedule: str = NIGHTLY_CRON,
    *,
    execution_timezone: str = NIGHTLY_TIMEZONE,
    name: str = "nightly_batch_schedule",
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule starting the full batch at ``cron_schedule``; one pipeline per tick (run key
    and pipeline id from the tick time, so a re-evaluated tick asks for the same run)."""

    @dg.schedule(
        name=name,
        job_name="datasets_job",
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Nightly full batch: makes whatever is missing or stale (no TTS call on a warm cache).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC).replace(second=0, microsecond=0)
        pipeline = f"nightly-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        base = {PIPELINE_TAG: pipeline, DRIVER_TAG: "daemon", SCOPE_TAG: "full", TRIGGER_TAG: "nightly"}
        request = datasets_request(pipeline, base)
        return dg.RunRequest(
            run_key=request.run_key, job_name=request.job_name, tags={**request.tags, "hybrid_audio/scheduled_for": when.isoformat()}
        )

    return _schedule


def nightly_schedule_from_env(env: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    env = os.environ if env is None else env
    return build_nightly_batch_schedule(env.get(CRON_ENV) or NIGHTLY_CRON, execution_timezone=env.get(TZ_ENV) or NIGHTLY_TIMEZONE)


nightly_batch_schedule = nightly_schedule_from_env()

ALL_SCHEDULES = [nightly_batch_schedule]
