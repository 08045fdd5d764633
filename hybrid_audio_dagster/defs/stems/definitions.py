"""The stems domain: one asset per kind of segment, their freshness checks, their jobs and
the CLI's invalidation and pronunciation preview."""

import dagster as dg

from hybrid_audio_dagster.defs.stems.admin import invalidate_stems_job
from hybrid_audio_dagster.defs.stems.assets import developer_stems, name_stems, script_stems
from hybrid_audio_dagster.defs.stems.checks import STEM_CHECKS
from hybrid_audio_dagster.defs.stems.jobs import developer_stems_job, name_stems_job, script_stems_job
from hybrid_audio_dagster.defs.stems.preview import stem_preview_job

defs = dg.Definitions(
    assets=[name_stems, developer_stems, script_stems],
    asset_checks=STEM_CHECKS,
    jobs=[name_stems_job, developer_stems_job, script_stems_job, invalidate_stems_job, stem_preview_job],
)
