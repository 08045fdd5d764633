"""The Dagster code location: each domain contributes its own definitions; the resources
are chosen from the environment."""

from collections.abc import Mapping

import dagster as dg

# the domains' modules, not their Definitions objects: Dagster loads the one Definitions
# object at this module's scope
from hybrid_audio_dagster.defs.datasets import definitions as datasets
from hybrid_audio_dagster.defs.delivery import definitions as delivery
from hybrid_audio_dagster.defs.messages import definitions as messages
from hybrid_audio_dagster.defs.pipeline import definitions as pipeline
from hybrid_audio_dagster.defs.privacy import definitions as privacy
from hybrid_audio_dagster.defs.resources.environment import resources_from_env
from hybrid_audio_dagster.defs.rotation import definitions as rotation
from hybrid_audio_dagster.defs.stems import definitions as stems

DOMAINS = tuple(domain.defs for domain in (datasets, stems, messages, rotation, delivery, privacy, pipeline))


def build_defs(resources: Mapping | None = None) -> dg.Definitions:
    """The code location; ``resources`` replaces some of the environment's (tests, the runner)."""
    return dg.Definitions.merge(
        *DOMAINS,
        # Every job here is a stage of one or a few steps; the multiprocess default would start a
        # second process per step (a full import of the code location, ~4 s) for no parallelism.
        # Pools still hold: the in-process executor claims the same concurrency slots.
        dg.Definitions(executor=dg.in_process_executor, resources={**resources_from_env(), **(resources or {})}),
    )


defs = build_defs()
