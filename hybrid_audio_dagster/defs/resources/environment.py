"""The resources of a deployment, chosen from its environment in one place."""

import os
from collections.abc import Mapping

from hybrid_audio_dagster.defs.resources.budget import spend_guard_from_env
from hybrid_audio_dagster.defs.resources.gcs import gcs_resource_from_env
from hybrid_audio_dagster.defs.resources.paths import project_paths
from hybrid_audio_dagster.defs.resources.tts import tts_resource_from_env


def resources_from_env(env: Mapping[str, str] | None = None) -> dict:
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
