"""The nightly full batch.

``nightly_batch_schedule`` launches ``nightly_batch_job`` (datasets → stems → messages, each
stage a range run, stems strictly before messages) once a day. It is STOPPED by default:
turn it on in the UI (Automation) or with ``dagster schedule start nightly_batch_schedule``.

The cron expression is :data:`NIGHTLY_CRON` (02:00) in :data:`NIGHTLY_TIMEZONE` (UTC);
a deployment changes it with ``HYBRID_AUDIO_NIGHTLY_CRON`` / ``HYBRID_AUDIO_NIGHTLY_TZ``
(read when the code location loads: a schedule's cron is part of its definition), or builds
its own with :func:`build_nightly_batch_schedule`.
"""


import os
from collections.abc import Mapping
from datetime import datetime, timezone

import dagster as dg

from .jobs import nightly_batch_job

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
    """A schedule running the full batch at ``cron_schedule``; one run per tick (run_key = tick time)."""

    @dg.schedule(
        name=name,
        job=nightly_batch_job,
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Nightly full batch: makes whatever is missing or stale (no TTS call on a warm cache).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return dg.RunRequest(
            run_key=when.isoformat(),
            tags={"hybrid_audio/trigger": "nightly", "hybrid_audio/scheduled_for": when.isoformat()},
        )

    return _schedule


def nightly_schedule_from_env(env: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    env = os.environ if env is None else env
    return build_nightly_batch_schedule(env.get(CRON_ENV) or NIGHTLY_CRON, execution_timezone=env.get(TZ_ENV) or NIGHTLY_TIMEZONE)


nightly_batch_schedule = nightly_schedule_from_env()

ALL_SCHEDULES = [nightly_batch_schedule]
