"""Stem assets: one partition per name, per developer and per template (script segments).

A partition's materialization metadata is its cache index: ``stems`` maps each slot
(``<template>/<segment>``) to the stored stem's record. On the next run a slot whose
signature (text + voice contract) is unchanged and whose file still hashes right is a
cache hit and costs no TTS call.
"""


import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg

from ..cache_index import latest_metadata
from ..core.stems import StemOutcome, StemRecord, StemStore
from ..core.templates import SegmentKind, Template, load_templates
from ..core.tts.base import VoiceSettings, stem_signature
from ..partitions import developers_partitions, names_partitions, templates_partitions
from ..resources.paths import ProjectPaths
from ..resources.tts import TTSResource
from .datasets import read_snapshot

STEMS_META = "stems"
TTS_POOL = "tts"  # Dagster concurrency pool shared by every asset that calls a TTS engine


class StemsConfig(dg.Config):
    """Run config of the stem assets."""

    force: bool = False  # re-synthesize even when the cache index has a valid stem


@dataclass(frozen=True)
class Slot:
    partition: str
    slot: str  # "<template>/<segment>"
    text: str
    voice: VoiceSettings


def _slots(kind: SegmentKind, keys: Iterable[str], templates: dict[str, Template], displays: dict[str, str]) -> tuple[list[Slot], list[str]]:
    slots: list[Slot] = []
    missing: list[str] = []
    for key in keys:
        if kind is SegmentKind.SCRIPT:
            tpl = templates.get(key)
            if tpl is None:
                missing.append(key)
                continue
            for seg in tpl.segments_of(kind):
                slots.append(Slot(key, f"{tpl.id}/{seg.id}", seg.render(), tpl.voice_settings()))
            continue
        display = displays.get(key)
        if display is None:
            missing.append(key)
            continue
        for tpl in templates.values():
            for seg in tpl.segments_of(kind):
                text = seg.render(name=display) if kind is SegmentKind.NAME else seg.render(developer=display)
                slots.append(Slot(key, f"{tpl.id}/{seg.id}", text, tpl.voice_settings()))
    return slots, missing


@dataclass
class StemPlan:
    """What a set of stem partitions needs: every slot, grouped by signature, and the hits."""

    keys: list[str]
    displays: dict[str, str]
    missing: list[str]  # partitions whose item left the dataset
    by_signature: dict[str, list[Slot]]
    indexed: dict[str, StemRecord]  # signature → record the cache index holds for it

    def stale(self) -> list[str]:
        """Signatures the index has no record for (a TTS call each, unless the file is gone too)."""
        return [sig for sig in self.by_signature if sig not in self.indexed]


def plan_stems(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    kind: SegmentKind,
    keys: list[str],
    paths: ProjectPaths,
    tts: TTSResource,
) -> StemPlan:
    """Render every slot of ``keys``, compute its signature and look it up in the cache index."""
    templates = load_templates(paths.templates)
    displays = {} if kind is SegmentKind.SCRIPT else read_snapshot(paths, "names" if kind is SegmentKind.NAME else "developers")
    slots, missing = _slots(kind, keys, templates, displays)
    index = latest_metadata(instance, asset_key, keys)
    by_signature: dict[str, list[Slot]] = {}
    indexed: dict[str, StemRecord] = {}
    contracts = {v: tts.contract(v) for v in {s.voice for s in slots}}
    for s in slots:
        sig = stem_signature(s.text, contracts[s.voice])
        by_signature.setdefault(sig, []).append(s)
        raw = (index.get(s.partition, {}).get(STEMS_META) or {}).get(s.slot)
        if raw and raw.get("signature") == sig:
            indexed.setdefault(sig, StemRecord.from_dict(raw))
    return StemPlan(keys, displays, missing, by_signature, indexed)


def materialize_stems(
    context: dg.AssetExecutionContext,
    kind: SegmentKind,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
) -> None:
    started = time.perf_counter()
    keys = list(context.partition_keys)
    plan = plan_stems(context.instance, context.asset_key, kind, keys, paths, tts)
    by_signature, indexed, displays, missing = plan.by_signature, plan.indexed, plan.displays, plan.missing
    store = StemStore(paths.stems)

    def work(sig: str) -> tuple[str, StemOutcome]:
        first = by_signature[sig][0]
        return sig, store.ensure(first.text, first.voice, tts, indexed=indexed.get(sig), force=config.force)

    # twice the request cap: a worker validating/trimming/storing a stem does not hold one of the
    # cap's slots (the resource's semaphore bounds requests in flight, not these threads)
    with ThreadPoolExecutor(max_workers=2 * max(1, tts.max_concurrency)) as pool:
        outcomes = dict(pool.map(work, by_signature))

    per_partition: dict[str, dict[str, dict]] = {k: {} for k in keys}
    stats = {k: {"hits": 0, "misses": 0, "chars": 0} for k in keys}
    charged: set[str] = set()
    for sig, group in by_signature.items():
        outcome = outcomes[sig]
        for s in group:
            per_partition[s.partition][s.slot] = {**outcome.record.to_dict(), "cache": "hit" if outcome.cache_hit else "miss"}
            st = stats[s.partition]
            if outcome.cache_hit or sig in charged:
                st["hits"] += 1
            else:
                st["misses"] += 1
                st["chars"] += outcome.chars_sent
                charged.add(sig)
    engine = tts.describe()
    for key in keys:
        slots_md = per_partition[key]
        st = stats[key]
        md: dict = {
            STEMS_META: dg.MetadataValue.json(slots_md),
            "status": "removed from dataset" if key in missing else "ok",
            "display": displays.get(key, key),
            "engine": dg.MetadataValue.json(engine),
            "tts_calls": st["misses"],
            "cache_hits": st["hits"],
            "chars_sent": st["chars"],
            "duration_s": round(sum(r["frames"] / r["sample_rate"] for r in slots_md.values()), 3),
        }
        if slots_md:
            md["texts"] = dg.MetadataValue.md(
                "| slot | text | cache | sha256 |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {slot} | {_md_escape(r['text'])} | {r['cache']} | `{r['sha256'][:12]}` |" for slot, r in slots_md.items()
                )
            )
        context.add_asset_metadata(md, partition_key=key)
    calls = sum(s["misses"] for s in stats.values())
    context.log.info(
        f"{len(keys)} partitions, {len(by_signature)} distinct stems: {calls} TTS calls, "
        f"{len(by_signature) - calls} cache hits, {sum(s['chars'] for s in stats.values())} chars, "
        f"{time.perf_counter() - started:.2f}s"
    )
    if missing:
        context.log.warning(f"{len(missing)} partition(s) no longer in the dataset, no stems made: {missing[:10]}")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_COMMON = dict(
    group_name="stems",
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=TTS_POOL,
    kinds={"audio"},
)


@dg.asset(partitions_def=names_partitions, deps=["names_dataset", "message_templates"], **_COMMON)
def name_stems(context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource) -> None:
    """Spoken name segments ("Hey John,") of every template, one partition per name."""
    materialize_stems(context, SegmentKind.NAME, config, paths, tts)


@dg.asset(partitions_def=developers_partitions, deps=["developers_dataset", "message_templates"], **_COMMON)
def developer_stems(context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource) -> None:
    """Spoken developer segments ("Hilton timeshare.") of every template, one partition per developer."""
    materialize_stems(context, SegmentKind.DEVELOPER, config, paths, tts)


@dg.asset(partitions_def=templates_partitions, deps=["message_templates"], **_COMMON)
def script_stems(context: dg.AssetExecutionContext, config: StemsConfig, paths: ProjectPaths, tts: TTSResource) -> None:
    """The generic segments of each template, one partition per template."""
    materialize_stems(context, SegmentKind.SCRIPT, config, paths, tts)


CURRENT_CHECK = "up_to_date"
_DATASET_OF = {SegmentKind.NAME: "names", SegmentKind.DEVELOPER: "developers"}


def _current_check(asset: dg.AssetsDefinition, kind: SegmentKind):
    @dg.asset_check(
        asset=asset,
        name=CURRENT_CHECK,
        blocking=False,
        description="Every stem the current datasets and templates need is in the cache index with an intact "
        "file; fails with what the next batch would synthesize (stale or missing stems).",
    )
    def _check(context: dg.AssetCheckExecutionContext, paths: ProjectPaths, tts: TTSResource) -> dg.AssetCheckResult:
        if kind is SegmentKind.SCRIPT:
            keys = sorted(load_templates(paths.templates))
        else:
            keys = list(read_snapshot(paths, _DATASET_OF[kind]))
        plan = plan_stems(context.instance, asset.key, kind, keys, paths, tts)
        store = StemStore(paths.stems)
        stale = plan.stale() + [sig for sig, rec in plan.indexed.items() if not store.is_intact(rec)]
        chars = sum(len(plan.by_signature[sig][0].text) for sig in stale)
        sample = [f"{s.partition}: {s.slot} {s.text!r}" for sig in stale[:20] for s in plan.by_signature[sig][:1]]
        return dg.AssetCheckResult(
            passed=not stale,
            metadata={
                "stems_needed": len(plan.by_signature),
                "stale_or_missing": len(stale),
                "chars_to_synthesize": chars,
                "engine": tts.engine_name,
                "stale_sample": dg.MetadataValue.md("\n".join(f"- {_md_escape(x)}" for x in sample) or "none"),
            },
        )

    return _check


name_stems_current = _current_check(name_stems, SegmentKind.NAME)
developer_stems_current = _current_check(developer_stems, SegmentKind.DEVELOPER)
script_stems_current = _current_check(script_stems, SegmentKind.SCRIPT)
STEM_CHECKS = [name_stems_current, developer_stems_current, script_stems_current]
