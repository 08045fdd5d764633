"""Asset jobs: every stage of a pipeline is a run of one of these (checks excluded; the UI
and the batch's ``--check`` run them)."""

import dagster as dg

from hybrid_audio_dagster.assets.checks import messages_bit_exact
from hybrid_audio_dagster.assets.datasets import developers_dataset, message_templates, names_dataset
from hybrid_audio_dagster.assets.messages import messages
from hybrid_audio_dagster.assets.retirement import retired_outputs
from hybrid_audio_dagster.assets.stems import developer_stems, name_stems, script_stems
from hybrid_audio_dagster.assets.uploads import dataset_uploads
from hybrid_audio_dagster.assets.rotation import rotation_cycle
from hybrid_audio_dagster.assets.rotation_advance import rotation_advance
from hybrid_audio_dagster.automation.inbox import INGEST_JOB
from hybrid_audio_dagster.assets.delivery import delivered_messages
from hybrid_audio_dagster.automation.stages import DATASETS_JOB, DELIVERY_JOB, MESSAGES_CHECK_JOB, MESSAGES_JOB, STEM_JOB_NAMES
from hybrid_audio_dagster.bucket_repair import bucket_repair_job
from hybrid_audio_dagster.core.templates import SegmentKind

datasets_job = dg.define_asset_job(
    DATASETS_JOB,
    selection=dg.AssetSelection.assets(names_dataset, developers_dataset, message_templates, retired_outputs).without_checks(),
    description="The datasets and templates (adds and removes partitions), then retires the messages of removed items.",
)
name_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.NAME],
    selection=dg.AssetSelection.assets(name_stems).without_checks(),
    description="Stems of some names (one partition or a range).",
)
developer_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.DEVELOPER],
    selection=dg.AssetSelection.assets(developer_stems).without_checks(),
    description="Stems of some developers.",
)
script_stems_job = dg.define_asset_job(
    STEM_JOB_NAMES[SegmentKind.SCRIPT],
    selection=dg.AssetSelection.assets(script_stems).without_checks(),
    description="Script stems of some templates.",
)
messages_job = dg.define_asset_job(
    MESSAGES_JOB,
    selection=dg.AssetSelection.assets(messages).without_checks(),
    description="Messages for a range of template × developer partitions (config `names` restricts the names).",
)
messages_check_job = dg.define_asset_job(
    MESSAGES_CHECK_JOB,
    selection=dg.AssetSelection.checks(messages_bit_exact),
    description="Re-verifies every message of a range of partitions bit-exactly against its stems.",
)

delivery_job = dg.define_asset_job(
    DELIVERY_JOB,
    selection=dg.AssetSelection.assets(delivered_messages).without_checks(),
    description="Uploads a range of template × developer partitions (messages, their stems, manifests) to GCS.",
)

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(dataset_uploads, names_dataset, developers_dataset).without_checks(),
    description="One upload from the inbox: validated and stored (or rejected with a report), then the rosters rebuilt.",
)

rotation_advance_job = dg.define_asset_job(
    "rotation_advance_job",
    selection=dg.AssetSelection.assets(rotation_advance),
    description="One rotation tick: hands out the next pairs (idempotent per tick) and records their messages runs.",
)
rotation_cycle_job = dg.define_asset_job(
    "rotation_cycle_job",
    selection=dg.AssetSelection.assets(rotation_cycle),
    description="Records one rotation cycle's membership, progress and launched runs (reads only).",
)

STEM_JOBS = {SegmentKind.NAME: name_stems_job, SegmentKind.DEVELOPER: developer_stems_job, SegmentKind.SCRIPT: script_stems_job}
ALL_JOBS = [datasets_job, ingest_job, rotation_advance_job, rotation_cycle_job, name_stems_job, developer_stems_job, script_stems_job, messages_job, messages_check_job,
            delivery_job, bucket_repair_job]

# the op jobs the hybrid-audio CLI launches (plans, invalidation, lookups, dataset admin)
from hybrid_audio_dagster.service import SERVICE_JOBS  # noqa: E402

ALL_JOBS = [*ALL_JOBS, *SERVICE_JOBS]
