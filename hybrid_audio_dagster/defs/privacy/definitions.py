"""The privacy domain: erasing one person everywhere."""

import dagster as dg

from hybrid_audio_dagster.defs.privacy.erase import erase_name_job

defs = dg.Definitions(jobs=[erase_name_job])
