"""The Dagster code location: composes assets, checks, resources, sensors and schedules."""

from __future__ import annotations

import os

import dagster as dg

from .assets.checks import messages_bit_exact
from .assets.datasets import developers_dataset, message_templates, names_dataset
from .assets.messages import messages
from .assets.rotation import rotation_cycle
from .assets.stems import STEM_CHECKS, developer_stems, name_stems, script_stems
from .jobs import ALL_JOBS
from .resources.paths import project_paths
from .resources.tts import tts_resource_from_env
from .rotation_schedule import rotation_schedule
from .schedules import ALL_SCHEDULES
from .sensors import ALL_SENSORS

ALL_ASSETS = [names_dataset, developers_dataset, message_templates, name_stems, developer_stems, script_stems, messages, rotation_cycle]
ALL_CHECKS = [messages_bit_exact, *STEM_CHECKS]


def build_resources(env: os._Environ | dict | None = None) -> dict:
    """Resources per deployment, chosen the way Dagster's docs do it: from the environment.

    ``HYBRID_AUDIO_ROOT`` moves data/stems/output (default: the project folder);
    ``TTS_ENGINE=cartesia`` selects Cartesia (key from ``CARTESIA_API_KEY`` via EnvVar).
    """
    env = os.environ if env is None else env
    return {
        "paths": project_paths(env),
        "tts": tts_resource_from_env(env),
    }


defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    schedules=[*ALL_SCHEDULES, rotation_schedule],
    resources=build_resources(),
)
