"""The datasets' asset job: one upload (from the inbox or the CLI), validated, stored and
folded into the rosters."""

import dagster as dg

from hybrid_audio_dagster.defs.datasets.assets import developers_dataset, names_dataset
from hybrid_audio_dagster.defs.datasets.suppression import suppression
from hybrid_audio_dagster.defs.datasets.uploads import dataset_uploads

INGEST_JOB = "ingest_job"

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(dataset_uploads, suppression, names_dataset, developers_dataset).without_checks(),
    description="One upload from the inbox: validated and stored (or rejected with a report), then the suppression list and the rosters rebuilt.",
)
