"""Messages: planning (semantic timing, input signatures), building, manifests, retirement."""

from hybrid_audio_dagster.core.messages.build import Partition, PartitionResult, StemCache, build_partitions, preflight
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, MANIFEST_SCHEMA, ManifestRow, ManifestWriter, file_matches, manifest_path, read_manifest
from hybrid_audio_dagster.core.messages.plan import (
    ASSEMBLER_VERSION,
    MessagePlan,
    MessagePlanner,
    PlannedSegment,
    build_message,
    message_path,
    message_relpath,
    plan_message,
)

__all__ = [
    "ASSEMBLER_VERSION",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "ManifestRow",
    "ManifestWriter",
    "MessagePlan",
    "MessagePlanner",
    "Partition",
    "PartitionResult",
    "PlannedSegment",
    "StemCache",
    "build_message",
    "build_partitions",
    "file_matches",
    "manifest_path",
    "message_path",
    "message_relpath",
    "plan_message",
    "preflight",
    "read_manifest",
]
