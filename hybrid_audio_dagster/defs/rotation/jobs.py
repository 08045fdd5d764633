"""The rotation's jobs: a tick's advance (an op job recording ``rotation_advance``), and one
cycle's record."""

import dagster as dg

from hybrid_audio_dagster.defs.rotation.advance import advance_rotation
from hybrid_audio_dagster.defs.rotation.assets import rotation_cycle
from hybrid_audio_dagster.defs.rotation.outlook import record_outlook

ADVANCE_JOB = "rotation_advance_job"


@dg.job(
    name=ADVANCE_JOB,
    description="One rotation tick: hands out the next pairs (idempotent per tick) and records their messages runs and what comes next.",
)
def rotation_advance_job():
    record_outlook(after=advance_rotation())


rotation_cycle_job = dg.define_asset_job(
    "rotation_cycle_job",
    selection=dg.AssetSelection.assets(rotation_cycle),
    description="Records one rotation cycle's membership, progress and launched runs (reads only).",
)
