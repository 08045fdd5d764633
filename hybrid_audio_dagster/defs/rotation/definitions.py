"""The rotation domain: the advance that hands out pairs, the cycle record, the schedule
and the CLI's rotation commands."""

import dagster as dg

from hybrid_audio_dagster.defs.rotation.admin import rotation_admin_job
from hybrid_audio_dagster.defs.rotation.advance import rotation_advance
from hybrid_audio_dagster.defs.rotation.assets import rotation_cycle
from hybrid_audio_dagster.defs.rotation.jobs import rotation_advance_job, rotation_cycle_job
from hybrid_audio_dagster.defs.rotation.outlook import rotation_outlook
from hybrid_audio_dagster.defs.rotation.schedules import rotation_schedule

defs = dg.Definitions(
    assets=[rotation_advance, rotation_cycle, rotation_outlook],
    jobs=[rotation_advance_job, rotation_cycle_job, rotation_admin_job],
    schedules=[rotation_schedule],
)
