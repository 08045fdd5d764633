"""The messages asset: one partition per template × developer, holding every name's message.

A thin adapter over :mod:`hybrid_audio_dagster.core.messages.build`: it resolves every stem
by signature (what the template and the TTS resource would produce now) before writing
anything, builds the partitions, and records each partition's whole current picture —
also on a no-op run, and also when some names failed (then the partition is marked
``partial`` and lists them).
"""

import time

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.core.messages.build import Partition, PartitionResult, build_partitions, preflight
from hybrid_audio_dagster.core.messages.manifest import read_manifest
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.cli_result import refused
from hybrid_audio_dagster.defs.messages.admin import describe_row
from hybrid_audio_dagster.defs.partitions import message_partition_dims, messages_partitions
from hybrid_audio_dagster.defs.pools import MESSAGES_POOL
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems, describe_missing

MAX_DESCRIBED = 10  # a run restricted to at most this many names records each one's message info


class MessagesConfig(dg.Config):
    """Run config of the messages asset."""

    names: list[str] = []  # restrict to these name slugs (the on-demand path); [] = all names
    force: bool = False  # rebuild even messages whose inputs are unchanged


@dg.asset(
    partitions_def=messages_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="messages",
    kinds={"audio"},
    pool=MESSAGES_POOL,
    deps=[
        dg.AssetDep("name_stems", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(
            "developer_stems",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="developer"),
        ),
        dg.AssetDep(
            "script_stems",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="template"),
        ),
    ],
)
def messages(
    context: dg.AssetExecutionContext, config: MessagesConfig, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource
) -> None:
    """Every name's message for a template and a developer, bit-exact joins of their stems."""
    started = time.perf_counter()
    templates = load_templates(paths.templates)
    names = read_snapshot(paths, "names")
    developers = read_snapshot(paths, "developers")
    unknown = [n for n in config.names if n not in names]
    if unknown:
        raise refused(f"unknown name slug(s) {unknown[:10]}: not in the names dataset", problem="unknown_name")
    run_names = list(dict.fromkeys(config.names)) if config.names else list(names)

    parts: list[Partition] = []
    for key in context.partition_keys:
        tid, dev = message_partition_dims(key)
        if tid not in templates:
            raise dg.Failure(f"template {tid!r} has no file in {paths.templates}: run the batch (it retires removed templates)")
        if dev not in developers:
            raise dg.Failure(f"developer {dev!r} is not in the developers dataset: run the batch (it retires removed developers)")
        parts.append(Partition(str(key), templates[tid], dev, developers[dev]))

    campaign = CampaignStems(context.instance, paths, tts, templates, gcs=gcs)
    campaign.load(SegmentKind.NAME, run_names)
    campaign.load(SegmentKind.DEVELOPER, {p.developer_key for p in parts})
    campaign.load(SegmentKind.SCRIPT, list(templates))
    try:
        missing = preflight(parts, run_names, names, campaign.resolve)
    except DeliveryError as exc:
        raise dg.Failure(f"GCS stem cache: {exc}; nothing was written") from None
    if missing:
        raise dg.Failure(
            f"{len(missing)} stem(s) the messages need are not stored with the current signature; nothing was written.\n"
            + describe_missing(missing),
            metadata={"missing_stems": len(missing)},
        )

    results = build_partitions(
        parts,
        names=names,
        run_names=run_names,
        resolve=campaign.resolve,
        store=campaign.store,
        output_root=paths.output,
        force=config.force,
    )
    described = set(run_names) if config.names and len(run_names) <= MAX_DESCRIBED else set()
    for r in results:
        md = _metadata(r, paths)
        if described:  # the on-demand path (`assemble`): each message as message_info_job answers it, so no second run
            rows = {row["name_key"]: row for row in read_manifest(r.manifest) if row["name_key"] in described}
            md["described"] = dg.MetadataValue.json({k: describe_row(paths, row, gcs) for k, row in rows.items()})
        context.add_asset_metadata(md, partition_key=r.partition.key)
    failed = sum(len(r.failed) for r in results)
    context.log.info(
        f"{len(parts)} partitions × {len(run_names)} names: {sum(r.written for r in results)} written, "
        f"{sum(r.skipped for r in results)} unchanged, {failed} failed in {time.perf_counter() - started:.2f}s"
    )
    if failed:
        context.log.warning(
            f"{failed} message(s) failed; their partitions are marked partial:\n" + "\n".join(f for r in results for f in r.failed[:5])
        )


def _metadata(r: PartitionResult, paths: ProjectPaths) -> dict:
    table = "\n".join(f"| {table_cell(x['name'])} | `{x['path']}` | {x['duration_s']:.2f} | `{x['sha256'][:12]}` |" for x in r.preview)
    md: dict = {
        "status": f"partial: {len(r.failed)} failed" if r.failed else "complete",
        "written": r.written,
        "skipped": r.skipped,
        # True: skipped whole (inputs fingerprint unchanged, every file intact), no message planned
        "unchanged_partition": r.unchanged,
        "failed": len(r.failed),
        "messages": r.messages,
        "audio_seconds": round(r.audio_s, 2),
        "manifest": dg.MetadataValue.path(str(r.manifest)),
        "template_signature": r.partition.template.signature(),
        "preview": dg.MetadataValue.md("| name | path | seconds | sha256 |\n|---|---|---|---|\n" + table),
    }
    if r.failed:
        md["failed_names"] = dg.MetadataValue.md("\n".join(f"- {table_cell(f)}" for f in r.failed[:100]))
    if r.preview:  # the first message's timing, drawn (output and stems sit under one root)
        from hybrid_audio_dagster.core.messages.picture import segment_labels, timing_markdown

        row = r.preview[0]
        labels = segment_labels(r.partition.template, row["name"], r.partition.developer)
        md["timing_picture"] = dg.MetadataValue.md(timing_markdown(row, paths.output, paths.stems, labels=labels))
        md["timing_of"] = row["path"]
    return md
