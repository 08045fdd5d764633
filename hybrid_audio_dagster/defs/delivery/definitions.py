"""The delivery domain: the GCS copy of messages, stems and manifests, its consistency
report, repair, and the CLI's bucket listing."""

import dagster as dg

from hybrid_audio_dagster.defs.delivery.admin import bucket_admin_job
from hybrid_audio_dagster.defs.delivery.assets import bucket_consistency, delivered_messages
from hybrid_audio_dagster.defs.delivery.jobs import delivery_job
from hybrid_audio_dagster.defs.delivery.repair import bucket_repair_job

defs = dg.Definitions(
    assets=[delivered_messages, bucket_consistency],
    jobs=[delivery_job, bucket_repair_job, bucket_admin_job],
)
