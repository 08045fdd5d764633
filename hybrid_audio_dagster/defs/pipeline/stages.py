"""The stages of a pipeline (datasets → stems → messages [→ delivery, GCS on]) as run requests (decisions only).

Used by both drivers: the daemon's ``pipeline_sensor`` (one stage per tick, once the
previous stage's runs succeeded) and the in-process ``make batch``. Reading the instance
and the files is all these functions do; runs do the work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import displays_for
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.defs.delivery.jobs import DELIVERY_JOB
from hybrid_audio_dagster.defs.messages.jobs import MESSAGES_CHECK_JOB, MESSAGES_JOB
from hybrid_audio_dagster.defs.partitions import developers_partitions, message_partition_key, templates_partitions
from hybrid_audio_dagster.defs.pipeline.jobs import DATASETS_JOB
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.stems.checks import current_keys
from hybrid_audio_dagster.defs.stems.jobs import STEM_JOB_NAMES
from hybrid_audio_dagster.defs.stems.lookup import STEM_ASSETS, CampaignStems
from hybrid_audio_dagster.defs.tags import RANGE_END_TAG, RANGE_START_TAG, STAGE_TAG

# Gaps of up to this many current partitions between two stale ones are re-recorded rather
# than split into another run (a run costs ~0.5 s of Dagster overhead, a partition ~20-90 ms).
MERGE_GAP = 8
MAX_RANGES = 8  # past this many ranges one span is cheaper than the runs


def range_tags(first: str, last: str) -> dict[str, str]:
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def contiguous_ranges(
    keys: Sequence[str], selected: Sequence[str], *, merge_gap: int = MERGE_GAP, max_ranges: int | None = MAX_RANGES
) -> list[tuple[str, str]]:
    """Few contiguous ranges of ``keys`` (insertion order) covering every ``selected`` key:
    gaps of at most ``merge_gap`` keys are bridged, and past ``max_ranges`` ranges one span
    covers them all. ``merge_gap=0, max_ranges=None``: the exact runs of ``selected``."""
    wanted = set(selected)
    idx = [i for i, k in enumerate(keys) if k in wanted]
    if not idx:
        return []
    spans: list[list[int]] = [[idx[0], idx[0]]]
    for i in idx[1:]:
        if i - spans[-1][1] - 1 <= merge_gap:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    if max_ranges is not None and len(spans) > max_ranges:
        spans = [[spans[0][0], spans[-1][1]]]
    return [(keys[a], keys[b]) for a, b in spans]


def partition_request(
    job_name: str, first: str, last: str, *, run_key: str, tags: Mapping[str, str], run_config: dict | None = None
) -> dg.RunRequest:
    if first == last:
        return dg.RunRequest(run_key=run_key, job_name=job_name, partition_key=first, tags=dict(tags), run_config=run_config or {})
    return dg.RunRequest(run_key=run_key, job_name=job_name, tags={**tags, **range_tags(first, last)}, run_config=run_config or {})


def stage_tags(base: Mapping[str, str], stage: str) -> dict[str, str]:
    return {**base, STAGE_TAG: stage}


def datasets_request(pipeline: str, base_tags: Mapping[str, str]) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"{pipeline}:datasets", job_name=DATASETS_JOB, tags=stage_tags(base_tags, "datasets"))


@dataclass
class StemsStage:
    requests: list[dg.RunRequest] = field(default_factory=list)
    partitions: dict[str, int] = field(default_factory=dict)  # stem asset → partitions to run
    stems_to_synthesize: int = 0
    chars: int = 0

    def describe(self) -> str:
        runs = ", ".join(f"{a}: {n}" for a, n in self.partitions.items() if n) or "none"
        return f"{len(self.requests)} stem run(s) (partitions {runs}); {self.stems_to_synthesize} new stems, {self.chars:,} characters"


def stems_stage(
    instance: dg.DagsterInstance,
    paths: ProjectPaths,
    tts,
    *,
    pipeline: str,
    base_tags: Mapping[str, str],
    names: Sequence[str] = (),
    force: bool = False,
) -> StemsStage:
    """Runs over the stem partitions that are not current (every one with ``force``), and
    what they would synthesize. ``names`` restricts the name stems to those names."""
    stage = StemsStage()
    campaign = CampaignStems(instance, paths, tts)
    tags = stage_tags(base_tags, "stems")
    for kind in SegmentKind:
        asset = STEM_ASSETS[kind]
        keys = current_keys(instance, kind)
        scope = [k for k in keys if k in set(names)] if names and kind is SegmentKind.NAME else keys
        if not scope:
            continue
        fresh = campaign.freshness(kind, scope, displays_for(paths, kind))
        stale = scope if force else fresh.stale_partitions
        stage.partitions[asset] = len(stale)
        stage.stems_to_synthesize += len(fresh.to_synthesize)
        stage.chars += fresh.chars
        config = {"ops": {asset: {"config": {"force": force}}}}
        for first, last in contiguous_ranges(keys, stale):
            stage.requests.append(
                partition_request(
                    STEM_JOB_NAMES[kind],
                    first,
                    last,
                    run_key=f"{pipeline}:stems:{asset}:{first}...{last}",
                    tags=tags,
                    run_config=config,
                )
            )
    return stage


def messages_request(
    instance: dg.DagsterInstance,
    *,
    pipeline: str,
    base_tags: Mapping[str, str],
    names: Sequence[str] = (),
    developers: Sequence[str] = (),
    stage: str = "messages",
) -> dg.RunRequest | None:
    """One run over every template × developer partition (or × ``developers``, appended
    together so they form a range); ``names`` restricts the run to those names."""
    templates = instance.get_dynamic_partitions(templates_partitions.name)
    all_devs = instance.get_dynamic_partitions(developers_partitions.name)
    devs = [d for d in all_devs if d in set(developers)] if developers else all_devs
    if not templates or not devs:
        return None
    first = str(message_partition_key(templates[0], devs[0]))
    last = str(message_partition_key(templates[-1], devs[-1]))
    job = {"check": MESSAGES_CHECK_JOB, "delivery": DELIVERY_JOB}.get(stage, MESSAGES_JOB)
    config = {} if stage in ("check", "delivery") else {"ops": {"messages": {"config": {"names": list(names), "force": False}}}}
    return partition_request(job, first, last, run_key=f"{pipeline}:{stage}", tags=stage_tags(base_tags, stage), run_config=config)
