"""``batch_plan_job``: what a batch would do, computed inside a run (the CLI reads it over
GraphQL from the op's output metadata ``plan``).

The same functions the batch uses: datasets parsed and normalised as the dataset assets do
(in memory: a plan writes nothing), stems judged by :meth:`CampaignStems.freshness` (the
characters of the stems stored nowhere are what the stems runs will send), messages by
:class:`MessagePlanner` against each manifest (unchanged input signature and intact file:
skipped). With ``requests`` the plan also lists the runs of the stems and messages stages
(job, partition or range, run config, tags) for the CLI to launch.
"""

from collections.abc import Mapping, Sequence

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import DATASET_OF, build_dataset
from hybrid_audio_dagster.core.messages.manifest import file_matches, manifest_path, read_manifest
from hybrid_audio_dagster.core.messages.plan import MessagePlanner
from hybrid_audio_dagster.core.stems.index import MissingStemError
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.defs.cli_result import refused
from hybrid_audio_dagster.defs.messages.jobs import MESSAGES_JOB
from hybrid_audio_dagster.defs.partitions import developers_partitions, message_partition_key, names_partitions, templates_partitions
from hybrid_audio_dagster.defs.pipeline.stages import contiguous_ranges, range_tags
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.stems.jobs import STEM_JOB_NAMES
from hybrid_audio_dagster.defs.stems.lookup import STEM_ASSETS, CampaignStems
from hybrid_audio_dagster.defs.tags import STAGE_TAG

PARTITIONS_OF = {SegmentKind.NAME: names_partitions, SegmentKind.DEVELOPER: developers_partitions, SegmentKind.SCRIPT: templates_partitions}


class BatchPlanConfig(dg.Config):
    """A selection: templates and developers (slugs; empty = all), names (slugs; empty = all)."""

    templates: list[str] = []
    developers: list[str] = []
    names: list[str] = []
    force: bool = False
    requests: bool = False  # also list the stage runs (after a datasets run registered the partitions)


def exact_spans(order: Sequence[str], selected: Sequence[str]) -> list[tuple[str, str]]:
    """Exact contiguous runs of ``selected`` in ``order`` (no gaps bridged)."""
    return contiguous_ranges(order, selected, merge_gap=0, max_ranges=None)


def _request(job: str, first: str, last: str, tags: Mapping[str, str], run_config: dict) -> dict:
    if first == last:
        return {"job": job, "partition": first, "tags": dict(tags), "run_config": run_config}
    return {"job": job, "partition": None, "tags": {**tags, **range_tags(first, last)}, "run_config": run_config}


def batch_plan(
    instance: dg.DagsterInstance, paths: ProjectPaths, tts, config: BatchPlanConfig, *, base_tags: Mapping[str, str] = {}
) -> dict:  # noqa: B006
    campaign = CampaignStems(instance, paths, tts)
    datasets = {kind: build_dataset(paths, DATASET_OF[kind]) for kind in DATASET_OF}
    displays = {kind: {i.key: i.display for i in datasets[kind].items} for kind in DATASET_OF}
    displays[SegmentKind.SCRIPT] = {}
    templates = campaign.templates
    unknown = {
        "templates": [t for t in config.templates if t not in templates],
        "developers": [d for d in config.developers if d not in displays[SegmentKind.DEVELOPER]],
        "names": [n for n in config.names if n not in displays[SegmentKind.NAME]],
    }
    if any(unknown.values()):
        raise refused(f"unknown in the datasets/templates: { {k: v for k, v in unknown.items() if v} }", problem="unknown_item")
    scope = {
        SegmentKind.NAME: list(config.names) or list(displays[SegmentKind.NAME]),
        SegmentKind.DEVELOPER: list(config.developers) or list(displays[SegmentKind.DEVELOPER]),
        SegmentKind.SCRIPT: list(config.templates) or list(templates),
    }
    plan: dict = {
        "stems": {},
        "stems_to_synthesize": 0,
        "chars": 0,
        "messages_to_write": 0,
        "messages_to_skip": 0,
        "message_partitions": 0,
        "requests": {"stems": [], "messages": []},
    }
    seen: set[str] = set()
    stale: dict[SegmentKind, list[str]] = {}
    for kind in SegmentKind:
        fresh = campaign.freshness(kind, scope[kind], displays[kind])
        stale[kind] = list(scope[kind]) if config.force else fresh.stale_partitions
        new = (
            {sig: s for sig, s in fresh.to_synthesize.items() if sig not in seen}
            if not config.force
            else {s.signature: s for s in campaign.slots(kind, scope[kind], displays[kind])[0]}
        )
        new = {sig: s for sig, s in new.items() if sig not in seen}
        seen |= set(new)
        chars = sum(len(s.text) for s in new.values())
        plan["stems"][STEM_ASSETS[kind]] = {"partitions": len(stale[kind]), "to_synthesize": len(new), "chars": chars}
        plan["stems_to_synthesize"] += len(new)
        plan["chars"] += chars

    names = displays[SegmentKind.NAME]
    for tid in scope[SegmentKind.SCRIPT]:
        tpl = templates[tid]
        for dev in scope[SegmentKind.DEVELOPER]:
            plan["message_partitions"] += 1
            write, skip = _messages_estimate(
                campaign, paths, tpl, dev, displays[SegmentKind.DEVELOPER][dev], scope[SegmentKind.NAME], names, config.force
            )
            plan["messages_to_write"] += write
            plan["messages_to_skip"] += skip

    if config.requests:
        _stage_requests(instance, plan, stale, scope, config, base_tags)
    return plan


def _messages_estimate(campaign, paths, tpl, dev, dev_display, run_names, names, force) -> tuple[int, int]:
    if force:
        return len(run_names), 0
    old = {r["name_key"]: r for r in read_manifest(manifest_path(paths.output, tpl.id, dev))}
    owner = {SegmentKind.DEVELOPER: dev, SegmentKind.SCRIPT: tpl.id}
    try:
        planner = MessagePlanner(
            tpl,
            developer_key=dev,
            developer=dev_display,
            stem_for=lambda kind, seg, text: campaign.resolve(kind, owner[kind], tpl, seg, text),
        )
    except MissingStemError:
        return len(run_names), 0
    write = skip = 0
    for key in run_names:
        row = old.get(key)
        try:
            p = planner.plan(
                name_key=key, name=names[key], stem_for=lambda kind, seg, text, key=key: campaign.resolve(kind, key, tpl, seg, text)
            )
        except MissingStemError:
            write += 1
            continue
        if row is not None and row["input_signature"] == p.input_signature and file_matches(paths.output, row):
            skip += 1
        else:
            write += 1
    return write, skip


def _stage_requests(instance, plan, stale, scope, config, base_tags) -> None:
    for kind in SegmentKind:
        order = list(instance.get_dynamic_partitions(PARTITIONS_OF[kind].name))
        asset = STEM_ASSETS[kind]
        run_config = {"ops": {asset: {"config": {"force": config.force}}}}
        for first, last in exact_spans(order, stale[kind]):  # exact: a bridged gap could bill stems outside the plan
            plan["requests"]["stems"].append(_request(STEM_JOB_NAMES[kind], first, last, {**base_tags, STAGE_TAG: "stems"}, run_config))
    templates = list(instance.get_dynamic_partitions(templates_partitions.name))
    devs = list(instance.get_dynamic_partitions(developers_partitions.name))
    run_config = {"ops": {"messages": {"config": {"names": list(config.names), "force": config.force}}}}
    for t0, t1 in exact_spans(templates, scope[SegmentKind.SCRIPT]):
        for d0, d1 in exact_spans(devs, scope[SegmentKind.DEVELOPER]):
            first, last = str(message_partition_key(t0, d0)), str(message_partition_key(t1, d1))
            req = _request(MESSAGES_JOB, first, last, {**base_tags, STAGE_TAG: "messages"}, run_config)
            if first == last:  # a one-key range: the shape a single-run backfill takes
                req = {**req, "partition": None, "tags": {**req["tags"], **range_tags(first, last)}}
            plan["requests"]["messages"].append(req)


@dg.op(description="What a batch over a selection would do: stems to synthesize, characters (the TTS cost), messages written or skipped.")
def batch_plan_op(context: dg.OpExecutionContext, config: BatchPlanConfig, paths: ProjectPaths, tts: TTSResource) -> dg.Output[dict]:
    base = {k: v for k, v in context.run.tags.items() if k.startswith("hybrid_audio/") and k != STAGE_TAG}
    plan = batch_plan(context.instance, paths, tts, config, base_tags=base)
    summary = {k: plan[k] for k in ("stems_to_synthesize", "chars", "messages_to_write", "messages_to_skip", "message_partitions")}
    context.log.info(f"plan: {summary}")
    return dg.Output(plan, metadata={"plan": dg.MetadataValue.json(plan), **summary})


@dg.job(
    description="Computes a batch's plan (dry run: nothing is synthesized or written). The `hybrid-audio batch` CLI reads it.",
    tags={STAGE_TAG: "plan"},
)
def batch_plan_job() -> None:
    batch_plan_op()
