"""The delivery's asset job: the last stage of a pipeline when GCS is on."""

import dagster as dg

from hybrid_audio_dagster.defs.delivery.assets import delivered_messages

DELIVERY_JOB = "delivery_job"

delivery_job = dg.define_asset_job(
    DELIVERY_JOB,
    selection=dg.AssetSelection.assets(delivered_messages).without_checks(),
    description="Uploads a range of template × developer partitions (messages, their stems, manifests) to GCS.",
)
