"""Stem assets: one partition per name, per developer and per template (script segments).

A partition's materialization metadata is its part of the cache index: ``stems`` maps each
signature it uses to the stored stem's record, ``slots`` maps its slots to signatures. A
stem is looked up by signature in every loaded record and then in the store, so a template
copy, a wiped Dagster home or a run that failed half-way costs no TTS call for what is
already stored. New stems are synthesized under a per-signature claim, after the spend
guard has seen the estimate.
"""

import time

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import displays_for
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.core.spend import BudgetExceeded, check_budget
from hybrid_audio_dagster.core.stems.synthesis import charged_slots, plan_synthesis, synthesize
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.tts.base import TTSError
from hybrid_audio_dagster.defs.partitions import developers_partitions, names_partitions, templates_partitions
from hybrid_audio_dagster.defs.pools import TTS_POOL
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.stems.lookup import SLOTS_META, STEMS_META, CampaignStems


class StemsConfig(dg.Config):
    """Run config of the stem assets."""

    force: bool = False  # re-synthesize even stems that are stored (a new file and record each)
    max_chars: int | None = None  # this run's character budget (overrides HYBRID_AUDIO_MAX_CHARS_PER_RUN)


def materialize_stems(
    context: dg.AssetExecutionContext,
    kind: SegmentKind,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    gcs: DeliveryResource | None = None,
) -> None:
    started = time.perf_counter()
    keys = [str(k) for k in context.partition_keys]
    campaign = CampaignStems(context.instance, paths, tts, gcs=gcs).load(kind, keys)
    slots, missing = campaign.slots(kind, keys, displays_for(paths, kind))
    try:
        plan = plan_synthesis(slots, lambda sig, engine: campaign.index.lookup(sig, engine, deep=True), force=config.force)
    except DeliveryError as exc:  # the bucket is the cache tier: unreachable means stop, not bill TTS
        raise dg.Failure(f"GCS stem cache: {exc}", metadata={"bucket": exc.bucket or ""}) from None
    automated = spend_guard.is_automated(context.run.tags)
    try:
        check_budget(
            plan.chars,
            spend_guard.budget(config.max_chars),
            automated=automated,
            spent_today=spend_guard.spent_today(context.instance) if automated and plan.chars else 0,
            engine=tts.engine_name,
        )
    except BudgetExceeded as exc:
        raise dg.Failure(str(exc), metadata={"stems_to_synthesize": len(plan.to_make), "chars_estimate": plan.chars}) from None

    audit = run_auditor(context, paths)
    if config.force:
        audit("forced_regeneration", kind=kind.value, partitions=len(keys), stems=len(plan.to_make))
    if plan.pronunciations:  # Cartesia: its pronunciation dictionary in step before the first request
        try:
            done = tts.prepare_pronunciations(plan.pronunciations)
        except TTSError as exc:
            raise dg.Failure(f"pronunciations could not be prepared: {exc}") from None
        context.log.info(f"{len(plan.pronunciations)} pronunciations ready for {len(plan.to_make)} stems: {done}")

    def obtain(slot):
        return campaign.store.obtain(
            slot.text,
            slot.voice,
            tts,
            contract=campaign.contract_for(slot.voice, bool(slot.say)),
            force=config.force,
            on_tts=lambda e: audit("tts_call", **e),
            say=slot.say,
        )

    # twice the request cap: a worker validating/trimming/storing a stem does not hold one of the
    # cap's slots (the resource's semaphore bounds requests in flight, not these threads)
    result = synthesize(plan, obtain, max_workers=2 * max(1, tts.max_concurrency))
    if result.errors:
        stored = sum(1 for sig in plan.to_make if sig in result.outcomes)
        raise dg.Failure(
            f"{len(result.errors)} of {len(plan.to_make)} new stems failed; the {stored} stored ones are kept and the next run "
            "reuses them without a TTS call:\n" + "\n".join(list(result.errors.values())[:20]),
            metadata={"failed": len(result.errors), "stored": stored},
        )
    for key, md in partition_metadata(keys, missing, slots, result.outcomes, tts.describe()).items():
        context.add_asset_metadata(md, partition_key=key)
    if campaign.remote is not None and campaign.remote.fetched:
        for record in campaign.remote.fetched:
            audit("gcs_download", bucket=gcs.bucket_name, signature=record.signature, path=record.path, kind="stem")
        context.log.info(f"{len(campaign.remote.fetched)} stems downloaded from {gcs.status_message.removeprefix('GCS on: ')}")
    distinct = len(plan.by_signature)
    audit(
        "stems_run",
        kind=kind.value,
        partitions=len(keys),
        tts_calls=result.tts_calls,
        cache_hits=distinct - result.tts_calls,
        chars=result.chars_sent,
    )
    context.log.info(
        f"{len(keys)} partitions, {distinct} distinct stems: {result.tts_calls} TTS calls, "
        f"{distinct - result.tts_calls} cache hits, {result.chars_sent} chars, {time.perf_counter() - started:.2f}s"
    )


def partition_metadata(keys, missing, slots, outcomes, engine: dict) -> dict[str, dict]:
    """Each partition's record: its stems by signature, its slots, what it paid, a table of texts."""
    per_partition: dict[str, list[tuple]] = {k: [] for k in keys}
    for s, paid in charged_slots(slots, outcomes):
        per_partition[s.partition].append((s, paid))
    out = {}
    for key in keys:
        stems_md = {s.signature: outcomes[s.signature].record.to_dict() for s, _ in per_partition[key]}
        rows = [
            f"| {s.slot} | {table_cell(s.text)} | {'miss' if paid else 'hit'} | `{s.signature[:12]}` | `{outcomes[s.signature].record.sha256[:12]}` |"
            for s, paid in per_partition[key]
        ]
        misses = sum(1 for _, paid in per_partition[key] if paid)
        md: dict = {
            STEMS_META: dg.MetadataValue.json(stems_md),
            SLOTS_META: dg.MetadataValue.json({s.slot: s.signature for s, _ in per_partition[key]}),
            "status": "removed from dataset" if key in missing else "ok",
            "engine": dg.MetadataValue.json(engine),
            "tts_calls": misses,
            "cache_hits": len(per_partition[key]) - misses,
            "chars_sent": sum(outcomes[s.signature].chars_sent for s, paid in per_partition[key] if paid),
            "duration_s": round(sum(r["frames"] / r["sample_rate"] for r in stems_md.values()), 3),
        }
        if rows:
            md["texts"] = dg.MetadataValue.md("| slot | text | cache | signature | sha256 |\n|---|---|---|---|---|\n" + "\n".join(rows))
        out[key] = md
    return out


_COMMON = dict(
    group_name="stems",
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=TTS_POOL,
    kinds={"audio"},
)


@dg.asset(partitions_def=names_partitions, deps=["names_dataset", "message_templates"], **_COMMON)
def name_stems(
    context: dg.AssetExecutionContext,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """Spoken name segments ("Hey John,") of every template, one partition per name."""
    materialize_stems(context, SegmentKind.NAME, config, paths, tts, spend_guard, gcs)


@dg.asset(partitions_def=developers_partitions, deps=["developers_dataset", "message_templates"], **_COMMON)
def developer_stems(
    context: dg.AssetExecutionContext,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """Spoken developer segments ("Hilton timeshare.") of every template, one partition per developer."""
    materialize_stems(context, SegmentKind.DEVELOPER, config, paths, tts, spend_guard, gcs)


@dg.asset(partitions_def=templates_partitions, deps=["message_templates"], **_COMMON)
def script_stems(
    context: dg.AssetExecutionContext,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
    spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """The generic segments of each template, one partition per template."""
    materialize_stems(context, SegmentKind.SCRIPT, config, paths, tts, spend_guard, gcs)


STEM_ASSETS_BY_KIND = {SegmentKind.NAME: name_stems, SegmentKind.DEVELOPER: developer_stems, SegmentKind.SCRIPT: script_stems}
