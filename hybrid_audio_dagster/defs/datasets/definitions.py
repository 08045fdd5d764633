"""The datasets domain: rosters, templates, uploads (declared; ``ingest_job`` records them), the inbox
sensor and the CLI's dataset admin."""

import dagster as dg

from hybrid_audio_dagster.defs.datasets.admin import datasets_admin_job, delete_upload_job
from hybrid_audio_dagster.defs.datasets.assets import developers_dataset, message_templates, names_dataset
from hybrid_audio_dagster.defs.datasets.jobs import ingest_job
from hybrid_audio_dagster.defs.datasets.sensors import inbox_sensor
from hybrid_audio_dagster.defs.datasets.suppression import suppression
from hybrid_audio_dagster.defs.datasets.uploads import dataset_uploads

defs = dg.Definitions(
    assets=[dataset_uploads, suppression, names_dataset, developers_dataset, message_templates],
    jobs=[ingest_job, datasets_admin_job, delete_upload_job],
    sensors=[inbox_sensor],
)
