"""Delivery to Google Cloud Storage: the bucket layout, a verified mirror, the consistency
report and verify-and-repair. Pure library: no Dagster here (``resources/gcs.py`` wraps it).

- :mod:`.layout`: object names below a prefix, :class:`InventoryEntry`, checksums.
- :mod:`.mirror`: :class:`GCSMirror` (upload / download / list / exists / sync), retries.
- :mod:`.consistency`: :func:`compare` / :func:`build_report`, Markdown and JSON lines.
- :mod:`.repair`: :func:`plan_repair`, :func:`execute_repair`, :func:`repair` (dry run).
- :mod:`.errors`: :class:`DeliveryError` and its subclasses.
"""

from hybrid_audio_dagster.core.delivery.consistency import STATES, ConsistencyReport, LocalFile, ReportItem, build_report, compare, local_files, write_jsonl
from hybrid_audio_dagster.core.delivery.errors import (
    BucketNotFound,
    ChecksumMismatch,
    DeliveryError,
    ObjectNotFound,
    PermissionDenied,
    TransientFailure,
    UnsafeObjectPath,
)
from hybrid_audio_dagster.core.delivery.layout import (
    CATEGORIES,
    DEFAULT_PREFIX,
    STEM_CATEGORIES,
    BucketLayout,
    Checksums,
    InventoryEntry,
    file_checksums,
    validate_relative_path,
)
from hybrid_audio_dagster.core.delivery.mirror import GCSMirror
from hybrid_audio_dagster.core.delivery.records import DownloadResult, RemoteObject, RetrySettings, SyncReport, UploadResult
from hybrid_audio_dagster.core.delivery.repair import RepairAction, RepairOutcome, RepairPlan, RepairResult, execute_repair, plan_repair, repair

__all__ = [
    "CATEGORIES", "DEFAULT_PREFIX", "STATES", "STEM_CATEGORIES",
    "BucketLayout", "BucketNotFound", "ChecksumMismatch", "Checksums", "ConsistencyReport", "DeliveryError",
    "DownloadResult", "GCSMirror", "InventoryEntry", "LocalFile", "ObjectNotFound", "PermissionDenied",
    "RemoteObject", "RepairAction", "RepairOutcome", "RepairPlan", "RepairResult", "ReportItem", "RetrySettings",
    "SyncReport", "TransientFailure", "UnsafeObjectPath", "UploadResult",
    "build_report", "compare", "execute_repair", "file_checksums", "local_files", "plan_repair", "repair",
    "validate_relative_path", "write_jsonl",
]
