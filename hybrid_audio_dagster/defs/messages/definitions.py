"""The messages domain: template × developer partitions of assembled messages, their
bit-exact check, the retirement of removed items' messages, and the CLI's message info."""

import dagster as dg

from hybrid_audio_dagster.defs.messages.admin import message_info_job
from hybrid_audio_dagster.defs.messages.assets import messages
from hybrid_audio_dagster.defs.messages.checks import messages_bit_exact
from hybrid_audio_dagster.defs.messages.jobs import messages_check_job, messages_job
from hybrid_audio_dagster.defs.messages.retirement import retired_outputs

defs = dg.Definitions(
    assets=[messages, retired_outputs],
    asset_checks=[messages_bit_exact],
    jobs=[messages_job, messages_check_job, message_info_job],
)
