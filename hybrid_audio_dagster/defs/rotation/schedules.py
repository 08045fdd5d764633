"""The rotation schedule: each tick asks for one ``rotation_advance_job`` run, keyed by
the tick, which hands out the next K pairs and records their messages runs
(:mod:`hybrid_audio_dagster.defs.rotation.tick`).

``rotation_schedule`` (STOPPED by default; start it in the UI or with
``dagster schedule start rotation_schedule``) runs at :data:`ROTATION_CRON` (09:00) in
:data:`ROTATION_TIMEZONE` (UTC); ``HYBRID_AUDIO_ROTATION_CRON`` / ``HYBRID_AUDIO_ROTATION_TZ``
change them when the code location loads. ``HYBRID_AUDIO_ROTATION_BATCH`` (K, default 50)
and ``HYBRID_AUDIO_ROTATION_SEED`` are read at each tick.
"""

import os
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from hybrid_audio_dagster.defs.rotation.jobs import ADVANCE_JOB
from hybrid_audio_dagster.defs.rotation.plan import TICK_TAG, RotationSettings, tick_key
from hybrid_audio_dagster.defs.tags import DRIVER_TAG, PIPELINE_TAG, SCOPE_TAG, STAGE_TAG, TRIGGER_TAG

ROTATION_CRON = "0 9 * * *"
ROTATION_TIMEZONE = "UTC"
CRON_ENV = "HYBRID_AUDIO_ROTATION_CRON"
TZ_ENV = "HYBRID_AUDIO_ROTATION_TZ"


def build_rotation_schedule(
    cron_schedule: str = ROTATION_CRON,
    *,
    execution_timezone: str = ROTATION_TIMEZONE,
    name: str = "rotation_schedule",
    settings: RotationSettings = RotationSettings(),
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule asking, per tick, for one ``rotation_advance_job`` run keyed by the tick.

    The tick only decides: the run advances the rotation (idempotently per tick), records
    the pairs it handed out, and ``pipeline_sensor`` then asks for their messages runs and a
    record of the cycle's ``rotation_cycle`` partition.
    """

    @dg.schedule(
        name=name,
        job_name=ADVANCE_JOB,
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description="Takes the next K name × developer pairs of the rotation (in a run keyed by the tick) and has "
        "their messages built; failed or deferred pairs are retried on later ticks.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC).replace(second=0, microsecond=0)
        return advance_request(when, settings)

    return _schedule


def advance_request(when: datetime, settings: RotationSettings = RotationSettings()) -> dg.RunRequest:
    """The run that advances the rotation for tick ``when`` (settings resolved now, so a
    re-evaluated tick asks for exactly the same run)."""
    tick = tick_key(when)
    pipeline = f"rotation-{tick}"
    return dg.RunRequest(
        run_key=f"rotation:{tick}",
        job_name=ADVANCE_JOB,
        run_config={
            "ops": {
                "rotation_advance": {
                    "config": {
                        "tick": tick,
                        "batch_size": settings.resolved_batch_size(),
                        "seed": settings.resolved_seed(),
                        "templates": settings.resolved_templates(),
                        "max_attempts": settings.max_attempts,
                        "launch_grace_s": settings.launch_grace_s,
                    }
                }
            }
        },
        tags={
            PIPELINE_TAG: pipeline,
            STAGE_TAG: "advance",
            DRIVER_TAG: "daemon",
            SCOPE_TAG: "rotation",
            TRIGGER_TAG: "rotation",
            TICK_TAG: tick,
        },
    )


def rotation_schedule_from_env(env: Mapping[str, str] | None = None) -> dg.ScheduleDefinition:
    env = os.environ if env is None else env
    return build_rotation_schedule(env.get(CRON_ENV) or ROTATION_CRON, execution_timezone=env.get(TZ_ENV) or ROTATION_TIMEZONE)


rotation_schedule = rotation_schedule_from_env()
