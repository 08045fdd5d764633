"""The first stage of every batch pipeline: the datasets and templates, then the
retirement of what they no longer hold."""

import dagster as dg

from hybrid_audio_dagster.defs.datasets.assets import developers_dataset, message_templates, names_dataset
from hybrid_audio_dagster.defs.datasets.suppression import suppression
from hybrid_audio_dagster.defs.messages.retirement import retired_outputs
from hybrid_audio_dagster.defs.rotation.outlook import rotation_outlook

DATASETS_JOB = "datasets_job"

datasets_job = dg.define_asset_job(
    DATASETS_JOB,
    selection=dg.AssetSelection.assets(
        suppression, names_dataset, developers_dataset, message_templates, retired_outputs, rotation_outlook
    ).without_checks(),
    description="The suppression list, the datasets and templates (adds and removes partitions), then retires the messages of removed items and records the rotation's outlook.",
)
