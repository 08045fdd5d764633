"""``up_to_date`` checks on the stem assets: what the next batch would run and synthesize.

The same rule as the messages asset and the batch planner (:meth:`CampaignStems.freshness`):
a partition is current when its latest record holds, for every slot the templates and
datasets need, a stored stem with the current signature.
"""

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import displays_for
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.stems.assets import STEM_ASSETS_BY_KIND
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems

CURRENT_CHECK = "up_to_date"


def current_keys(instance: dg.DagsterInstance, kind: SegmentKind) -> list[str]:
    """The kind's partitions in insertion order (the batch's ranges follow it)."""
    asset = STEM_ASSETS_BY_KIND[kind]
    return list(instance.get_dynamic_partitions(asset.partitions_def.name))


def _current_check(asset: dg.AssetsDefinition, kind: SegmentKind):
    @dg.asset_check(
        asset=asset,
        name=CURRENT_CHECK,
        blocking=False,
        description="Every slot the current datasets and templates need has a stored stem with the current "
        "signature, recorded by its partition; fails with the partitions the next batch would run and "
        "what it would synthesize (stems stored nowhere, and their characters).",
    )
    def _check(context: dg.AssetCheckExecutionContext, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource) -> dg.AssetCheckResult:
        keys = current_keys(context.instance, kind)
        campaign = CampaignStems(context.instance, paths, tts, gcs=gcs)
        fresh = campaign.freshness(kind, keys, displays_for(paths, kind), deep=True)
        sample = [f"{s.partition}: {s.slot} {s.text!r}" for s in list(fresh.to_synthesize.values())[:20]]
        return dg.AssetCheckResult(
            passed=fresh.current,
            metadata={
                "stems_needed": fresh.needed,
                "partitions_to_run": len(fresh.stale_partitions),
                "stale_partitions": dg.MetadataValue.json(fresh.stale_partitions[:200]),
                "stems_to_synthesize": len(fresh.to_synthesize),
                "chars_to_synthesize": fresh.chars,
                "engine": tts.engine_name,
                "synthesis_sample": dg.MetadataValue.md("\n".join(f"- {x.replace('|', '/')}" for x in sample) or "none"),
            },
        )

    return _check


STEM_CHECKS = [_current_check(STEM_ASSETS_BY_KIND[k], k) for k in SegmentKind]
name_stems_current, developer_stems_current, script_stems_current = STEM_CHECKS
