"""The datasets' ingest job: one upload (from the inbox or the CLI), validated, stored and
folded into the rosters.

An op job, not an asset job: ``dataset_uploads`` is a declared asset with no function of its
own (so the UI's "Materialize all" never asks for uploads), and the ops record it and the
rosters they rebuild as materializations of those assets.
"""

import dagster as dg

from hybrid_audio_dagster.defs.datasets.assets import KINDS, DatasetConfig, build_roster
from hybrid_audio_dagster.defs.datasets.suppression import apply_suppression_list
from hybrid_audio_dagster.defs.datasets.uploads import ingest_upload
from hybrid_audio_dagster.defs.partitions import uploads_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

INGEST_JOB = "ingest_job"


@dg.op(ins={"upload": dg.In(dg.Nothing)}, description="Rebuilds the names and developers rosters (as their assets do).")
def rebuild_rosters(context: dg.OpExecutionContext, paths: ProjectPaths) -> None:
    for kind in KINDS:
        metadata, _ = build_roster(context.instance, paths, kind, DatasetConfig())
        context.log_event(dg.AssetMaterialization(asset_key=f"{kind}_dataset", metadata=metadata))


@dg.job(
    name=INGEST_JOB,
    partitions_def=uploads_partitions,
    description="One upload from the inbox: validated and stored (or rejected with a report), then the suppression list and the rosters rebuilt.",
)
def ingest_job():
    rebuild_rosters(upload=apply_suppression_list(upload=ingest_upload()))
