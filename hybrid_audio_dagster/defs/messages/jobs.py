"""The messages' asset jobs (checks excluded from the build; the check job runs them)."""

import dagster as dg

from hybrid_audio_dagster.defs.messages.assets import messages
from hybrid_audio_dagster.defs.messages.checks import messages_bit_exact

MESSAGES_JOB = "messages_job"
MESSAGES_CHECK_JOB = "messages_check_job"

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
