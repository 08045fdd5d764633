"""The pipeline domain: the stages of a batch (datasets → stems → messages [→ delivery]),
the sensor that advances them, the nightly schedule and the CLI's batch plan."""

import dagster as dg

from hybrid_audio_dagster.defs.pipeline.jobs import datasets_job
from hybrid_audio_dagster.defs.pipeline.plan import batch_plan_job
from hybrid_audio_dagster.defs.pipeline.schedules import nightly_batch_schedule
from hybrid_audio_dagster.defs.pipeline.sensors import pipeline_sensor

defs = dg.Definitions(
    jobs=[datasets_job, batch_plan_job],
    sensors=[pipeline_sensor],
    schedules=[nightly_batch_schedule],
)
