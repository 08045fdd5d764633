"""The Dagster code location: composes assets, checks, jobs, resources and automation."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from hybrid_audio_dagster.assets.checks import messages_bit_exact
from hybrid_audio_dagster.assets.datasets import developers_dataset, message_templates, names_dataset
from hybrid_audio_dagster.assets.delivery import bucket_consistency, delivered_messages
from hybrid_audio_dagster.assets.messages import messages
from hybrid_audio_dagster.assets.retirement import retired_outputs
from hybrid_audio_dagster.assets.rotation import rotation_cycle
from hybrid_audio_dagster.assets.rotation_advance import rotation_advance
from hybrid_audio_dagster.assets.stems import STEM_CHECKS, developer_stems, name_stems, script_stems
from hybrid_audio_dagster.jobs import ALL_JOBS
from hybrid_audio_dagster.privacy import erase_name_job
from hybrid_audio_dagster.resources.budget import spend_guard_from_env
from hybrid_audio_dagster.resources.gcs import gcs_resource_from_env
from hybrid_audio_dagster.resources.paths import project_paths
from hybrid_audio_dagster.resources.tts import tts_resource_from_env
from hybrid_audio_dagster.assets.uploads import dataset_uploads
from hybrid_audio_dagster.automation.inbox import inbox_sensor
from hybrid_audio_dagster.automation.nightly import nightly_batch_schedule
from hybrid_audio_dagster.automation.pipeline import build_pipeline_sensor
from hybrid_audio_dagster.rotation_schedule import rotation_schedule

ALL_ASSETS = [
    dataset_uploads, names_dataset, developers_dataset, message_templates, retired_outputs,
    name_stems, developer_stems, script_stems, messages, rotation_advance, rotation_cycle,
    delivered_messages, bucket_consistency,
]
ALL_CHECKS = [messages_bit_exact, *STEM_CHECKS]
# how often pipeline_sensor looks for pipelines waiting for their next stage (seconds)
PIPELINE_SENSOR_INTERVAL_S = int(os.environ.get("HYBRID_AUDIO_PIPELINE_SENSOR_S") or 10)
ALL_SENSORS = [inbox_sensor, build_pipeline_sensor(jobs=ALL_JOBS, minimum_interval_seconds=PIPELINE_SENSOR_INTERVAL_S)]
ALL_SCHEDULES = [nightly_batch_schedule, rotation_schedule]


def build_resources(env: Mapping[str, str] | None = None) -> dict:
    """Resources per deployment, chosen from the environment at load time.

    ``HYBRID_AUDIO_ROOT`` moves data/stems/output (default: the project folder);
    ``TTS_ENGINE=cartesia`` selects Cartesia (key from ``CARTESIA_API_KEY`` via EnvVar);
    ``HYBRID_AUDIO_MAX_CHARS_*`` set the spend guard's budgets;
    ``HYBRID_AUDIO_GCS_BUCKET`` (+ ``_PREFIX``, ``GOOGLE_CLOUD_PROJECT``) turns GCS on.
    """
    env = os.environ if env is None else env
    return {
        "paths": project_paths(env),
        "tts": tts_resource_from_env(env),
        "spend_guard": spend_guard_from_env(env),
        "gcs": gcs_resource_from_env(env),
    }


def build_defs(resources: Mapping | None = None) -> dg.Definitions:
    """The code location; ``resources`` replaces some of the environment's (tests)."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[*ALL_JOBS, erase_name_job],
        sensors=ALL_SENSORS,
        schedules=ALL_SCHEDULES,
        resources={**build_resources(), **(resources or {})},
    )


defs = build_defs()
