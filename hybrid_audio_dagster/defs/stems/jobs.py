"""The stems' asset jobs: one per stem asset, each run over one partition or a range."""

import dagster as dg

from hybrid_audio_dagster.core.templates import SegmentKind
from hybrid_audio_dagster.defs.stems.assets import developer_stems, name_stems, script_stems

STEM_JOB_NAMES = {SegmentKind.NAME: "name_stems_job", SegmentKind.DEVELOPER: "developer_stems_job", SegmentKind.SCRIPT: "script_stems_job"}

name_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.NAME],
    selection=dg.AssetSelection.assets(name_stems).without_checks(),
    description="Stems of some names (one partition or a range).",
)
developer_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.DEVELOPER],
    selection=dg.AssetSelection.assets(developer_stems).without_checks(),
    description="Stems of some developers.",
)
script_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.SCRIPT],
    selection=dg.AssetSelection.assets(script_stems).without_checks(),
    description="Script stems of some templates.",
)
