"""Stem assets, their ``up_to_date`` checks, and stem lookup by signature."""

from hybrid_audio_dagster.assets.stems.assets import STEM_ASSETS_BY_KIND, TTS_POOL, StemsConfig, developer_stems, name_stems, script_stems
from hybrid_audio_dagster.assets.stems.checks import CURRENT_CHECK, STEM_CHECKS, current_keys, developer_stems_current, name_stems_current, script_stems_current
from hybrid_audio_dagster.assets.stems.lookup import SLOTS_META, STEM_ASSETS, STEMS_META, CampaignStems, MissingStemError, describe_missing

__all__ = [
    "CURRENT_CHECK",
    "SLOTS_META",
    "STEMS_META",
    "STEM_ASSETS",
    "STEM_ASSETS_BY_KIND",
    "STEM_CHECKS",
    "TTS_POOL",
    "CampaignStems",
    "MissingStemError",
    "StemsConfig",
    "current_keys",
    "describe_missing",
    "developer_stems",
    "developer_stems_current",
    "name_stems",
    "name_stems_current",
    "script_stems",
    "script_stems_current",
]
