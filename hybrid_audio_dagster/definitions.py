"""The Dagster code location: each domain contributes its own definitions; the resources
are chosen from the environment."""

from collections.abc import Mapping

import dagster as dg

from hybrid_audio_dagster.defs.datasets.definitions import defs as datasets
from hybrid_audio_dagster.defs.delivery.definitions import defs as delivery
from hybrid_audio_dagster.defs.messages.definitions import defs as messages
from hybrid_audio_dagster.defs.pipeline.definitions import defs as pipeline
from hybrid_audio_dagster.defs.privacy.definitions import defs as privacy
from hybrid_audio_dagster.defs.resources.environment import resources_from_env
from hybrid_audio_dagster.defs.rotation.definitions import defs as rotation
from hybrid_audio_dagster.defs.stems.definitions import defs as stems

DOMAINS = (datasets, stems, messages, rotation, delivery, privacy, pipeline)


def build_defs(resources: Mapping | None = None) -> dg.Definitions:
    """The code location; ``resources`` replaces some of the environment's (tests, the runner)."""
    return dg.Definitions.merge(*DOMAINS, dg.Definitions(resources={**resources_from_env(), **(resources or {})}))


defs = build_defs()
