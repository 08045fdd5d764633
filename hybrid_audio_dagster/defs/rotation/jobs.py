"""The rotation's asset jobs: a tick's advance, and one cycle's record."""

import dagster as dg

from hybrid_audio_dagster.defs.rotation.advance import rotation_advance
from hybrid_audio_dagster.defs.rotation.assets import rotation_cycle
from hybrid_audio_dagster.defs.rotation.outlook import rotation_outlook

ADVANCE_JOB = "rotation_advance_job"

rotation_advance_job = dg.define_asset_job(
    ADVANCE_JOB,
    selection=dg.AssetSelection.assets(rotation_advance, rotation_outlook),
    description="One rotation tick: hands out the next pairs (idempotent per tick) and records their messages runs and what comes next.",
)
rotation_cycle_job = dg.define_asset_job(
    "rotation_cycle_job",
    selection=dg.AssetSelection.assets(rotation_cycle),
    description="Records one rotation cycle's membership, progress and launched runs (reads only).",
)
