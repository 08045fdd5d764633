"""Stem assets: one partition per name, per developer and per template (script segments).

A partition's materialization metadata is its part of the cache index: ``stems`` maps each
signature it uses to the stored stem's record, ``slots`` maps its slots to signatures. A
stem is looked up by signature in every loaded record and then in the store, so a template
copy, a wiped Dagster home or a run that failed half-way costs no TTS call for what is
already stored. New stems are synthesized under a per-signature claim, after the spend
guard has seen the estimate.
"""


import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from hybrid_audio_dagster.core.spend import BudgetExceeded, check_budget
from hybrid_audio_dagster.core.stems.index import Slot
from hybrid_audio_dagster.core.stems.store import StemOutcome, StemRecord
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.tts.base import TTSError
from hybrid_audio_dagster.core.audio.errors import AudioError
from hybrid_audio_dagster.defs.partitions import developers_partitions, names_partitions, templates_partitions
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.defs.resources.budget import SpendGuardResource
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.core.datasets.snapshot import read_snapshot
from hybrid_audio_dagster.defs.stems.lookup import SLOTS_META, STEMS_META, CampaignStems
from hybrid_audio_dagster.core.markdown import table_cell

TTS_POOL = "tts"  # Dagster concurrency pool shared by every asset that calls a TTS engine
DATASET_OF = {SegmentKind.NAME: "names", SegmentKind.DEVELOPER: "developers"}


class StemsConfig(dg.Config):
    """Run config of the stem assets."""

    force: bool = False  # re-synthesize even stems that are stored (a new file and record each)
    max_chars: int | None = None  # this run's character budget (overrides HYBRID_AUDIO_MAX_CHARS_PER_RUN)


def displays_for(paths: ProjectPaths, kind: SegmentKind) -> dict[str, str]:
    return {} if kind is SegmentKind.SCRIPT else read_snapshot(paths, DATASET_OF[kind])


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
    by_signature: dict[str, list[Slot]] = {}
    for s in slots:
        by_signature.setdefault(s.signature, []).append(s)

    try:
        known: dict[str, StemRecord | None] = {
            sig: None if config.force else campaign.index.lookup(sig, group[0].engine, deep=True)
            for sig, group in by_signature.items()
        }
    except DeliveryError as exc:  # the bucket is the cache tier: unreachable means stop, not bill TTS
        raise dg.Failure(f"GCS stem cache: {exc}", metadata={"bucket": exc.bucket or ""}) from None
    to_make = [sig for sig, rec in known.items() if rec is None]
    estimate = sum(len(by_signature[sig][0].text) for sig in to_make)
    automated = spend_guard.is_automated(context.run.tags)
    try:
        check_budget(
            estimate, spend_guard.budget(config.max_chars), automated=automated,
            spent_today=spend_guard.spent_today(context.instance) if automated and estimate else 0, engine=tts.engine_name,
        )
    except BudgetExceeded as exc:
        raise dg.Failure(str(exc), metadata={"stems_to_synthesize": len(to_make), "chars_estimate": estimate}) from None

    audit = run_auditor(context, paths)
    if config.force:
        audit("forced_regeneration", kind=kind.value, partitions=len(keys), stems=len(to_make))
    said = tuple(sorted({x for sig in to_make for x in by_signature[sig][0].say}))
    if said:  # Cartesia: its pronunciation dictionary in step before the first request
        try:
            done = tts.prepare_pronunciations(said)
        except TTSError as exc:
            raise dg.Failure(f"pronunciations could not be prepared: {exc}") from None
        context.log.info(f"{len(said)} pronunciations ready for {len(to_make)} stems: {done}")
    outcomes: dict[str, StemOutcome] = {sig: StemOutcome(rec, True, 0) for sig, rec in known.items() if rec is not None}
    errors: dict[str, str] = {}

    def work(sig: str) -> tuple[str, StemOutcome | str]:
        first = by_signature[sig][0]
        contract = campaign.contract_for(first.voice, bool(first.say))
        try:
            return sig, campaign.store.obtain(
                first.text, first.voice, tts, contract=contract, force=config.force, on_tts=lambda e: audit("tts_call", **e),
                say=first.say,
            )
        except (TTSError, AudioError, OSError, ValueError) as exc:
            return sig, f"{first.partition} {first.slot} {first.text[:40]!r}: {exc}"

    # twice the request cap: a worker validating/trimming/storing a stem does not hold one of the
    # cap's slots (the resource's semaphore bounds requests in flight, not these threads)
    with ThreadPoolExecutor(max_workers=2 * max(1, tts.max_concurrency)) as pool:
        for sig, result in pool.map(work, to_make):
            if isinstance(result, str):
                errors[sig] = result
            else:
                outcomes[sig] = result
    if errors:
        stored = sum(1 for sig in to_make if sig in outcomes)
        raise dg.Failure(
            f"{len(errors)} of {len(to_make)} new stems failed; the {stored} stored ones are kept and the next run "
            "reuses them without a TTS call:\n" + "\n".join(list(errors.values())[:20]),
            metadata={"failed": len(errors), "stored": stored},
        )
    _record(context, keys, missing, slots, outcomes, campaign, tts)
    if campaign.remote is not None and campaign.remote.fetched:
        audit = run_auditor(context, paths)
        for record in campaign.remote.fetched:
            audit("gcs_download", bucket=gcs.bucket_name, signature=record.signature, path=record.path, kind="stem")
        context.log.info(f"{len(campaign.remote.fetched)} stems downloaded from {gcs.status_message.removeprefix('GCS on: ')}")
    calls = sum(1 for o in outcomes.values() if not o.cache_hit)
    audit("stems_run", kind=kind.value, partitions=len(keys), tts_calls=calls, cache_hits=len(by_signature) - calls,
          chars=sum(o.chars_sent for o in outcomes.values()))
    context.log.info(
        f"{len(keys)} partitions, {len(by_signature)} distinct stems: {calls} TTS calls, "
        f"{len(by_signature) - calls} cache hits, {sum(o.chars_sent for o in outcomes.values())} chars, "
        f"{time.perf_counter() - started:.2f}s"
    )


def _record(context, keys, missing, slots, outcomes, campaign, tts) -> None:
    per_partition: dict[str, list[Slot]] = {k: [] for k in keys}
    for s in slots:
        per_partition[s.partition].append(s)
    charged: set[str] = set()
    engine = tts.describe()
    for key in keys:
        stems_md: dict[str, dict] = {}
        slots_md: dict[str, str] = {}
        hits = misses = chars = 0
        rows = []
        for s in per_partition[key]:
            outcome = outcomes[s.signature]
            first_charge = not outcome.cache_hit and s.signature not in charged
            if first_charge:
                charged.add(s.signature)
                misses += 1
                chars += outcome.chars_sent
            else:
                hits += 1
            stems_md[s.signature] = outcome.record.to_dict()
            slots_md[s.slot] = s.signature
            rows.append(f"| {s.slot} | {table_cell(s.text)} | {'miss' if first_charge else 'hit'} | `{s.signature[:12]}` | `{outcome.record.sha256[:12]}` |")
        md: dict = {
            STEMS_META: dg.MetadataValue.json(stems_md),
            SLOTS_META: dg.MetadataValue.json(slots_md),
            "status": "removed from dataset" if key in missing else "ok",
            "engine": dg.MetadataValue.json(engine),
            "tts_calls": misses,
            "cache_hits": hits,
            "chars_sent": chars,
            "duration_s": round(sum(r["frames"] / r["sample_rate"] for r in stems_md.values()), 3),
        }
        if rows:
            md["texts"] = dg.MetadataValue.md("| slot | text | cache | signature | sha256 |\n|---|---|---|---|---|\n" + "\n".join(rows))
        context.add_asset_metadata(md, partition_key=key)


_COMMON = dict(
    group_name="stems",
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=TTS_POOL,
    kinds={"audio"},
)


@dg.asset(partitions_def=names_partitions, deps=["names_dataset", "message_templates"], **_COMMON)
def name_stems(
    context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource, spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """Spoken name segments ("Hey John,") of every template, one partition per name."""
    materialize_stems(context, SegmentKind.NAME, config, paths, tts, spend_guard, gcs)


@dg.asset(partitions_def=developers_partitions, deps=["developers_dataset", "message_templates"], **_COMMON)
def developer_stems(
    context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource, spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """Spoken developer segments ("Hilton timeshare.") of every template, one partition per developer."""
    materialize_stems(context, SegmentKind.DEVELOPER, config, paths, tts, spend_guard, gcs)


@dg.asset(partitions_def=templates_partitions, deps=["message_templates"], **_COMMON)
def script_stems(
    context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource, spend_guard: SpendGuardResource,
    gcs: DeliveryResource,
) -> None:
    """The generic segments of each template, one partition per template."""
    materialize_stems(context, SegmentKind.SCRIPT, config, paths, tts, spend_guard, gcs)


STEM_ASSETS_BY_KIND = {SegmentKind.NAME: name_stems, SegmentKind.DEVELOPER: developer_stems, SegmentKind.SCRIPT: script_stems}
