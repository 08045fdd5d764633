"""Op jobs the ``hybrid-audio`` CLI launches over GraphQL (plans, admin, lookups)."""

from hybrid_audio_dagster.service.admin import datasets_admin_job, invalidate_stems_job, message_info_job
from hybrid_audio_dagster.service.bucket import bucket_admin_job
from hybrid_audio_dagster.service.plan import batch_plan_job
from hybrid_audio_dagster.service.preview import stem_preview_job
from hybrid_audio_dagster.service.rotation import rotation_admin_job

SERVICE_JOBS = [batch_plan_job, invalidate_stems_job, message_info_job, datasets_admin_job, bucket_admin_job, rotation_admin_job,
                stem_preview_job]

__all__ = ["SERVICE_JOBS", "bucket_admin_job", "batch_plan_job", "datasets_admin_job", "invalidate_stems_job", "message_info_job", "rotation_admin_job", "stem_preview_job"]
