"""The datasets' ingest job: one upload (from the inbox or the CLI), validated, stored and
folded into the rosters.

An op job, not an asset job: ``dataset_uploads`` is a declared asset with no function of its
own (so the UI's "Materialize all" never asks for uploads), and the ops record it and the
rosters they rebuild as materializations of those assets.
"""

import dagster as dg

from hybrid_audio_dagster.defs.datasets.assets import KINDS, DatasetConfig, build_roster, build_templates
from hybrid_audio_dagster.defs.datasets.suppression import apply_suppression_list
from hybrid_audio_dagster.defs.datasets.uploads import ingest_upload
from hybrid_audio_dagster.defs.partitions import uploads_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

INGEST_JOB = "ingest_job"


@dg.op(ins={"upload": dg.In(dg.Nothing)}, description="Rebuilds the names and developers rosters and the templates (as their assets do).")
def rebuild_rosters(context: dg.OpExecutionContext, paths: ProjectPaths) -> None:
    for kind in KINDS:
        metadata, _ = build_roster(context.instance, paths, kind, DatasetConfig())
        context.log_event(dg.AssetMaterialization(asset_key=f"{kind}_dataset", metadata=metadata))
    # the templates too: the stems stage that follows an ingest plans the script stems of the
    # templates registered by then, and on a project whose first batch has not registered them
    # yet (or is still running) the new names' messages would otherwise find no script stems
    context.log_event(dg.AssetMaterialization(asset_key="message_templates", metadata=build_templates(context.instance, paths)))


@dg.job(
    name=INGEST_JOB,
    partitions_def=uploads_partitions,
    description="One upload from the inbox: validated and stored (or rejected with a report), then the suppression list and the rosters rebuilt.",
)
def ingest_job():
    rebuild_rosters(upload=apply_suppression_list(upload=ingest_upload()))
