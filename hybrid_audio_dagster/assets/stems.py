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


def materialize_stems(
    context: dg.AssetExecutionContext,
    kind: SegmentKind,
    config: StemsConfig,
    paths: ProjectPaths,
    tts: TTSResource,
) -> None:
    started = time.perf_counter()
    keys = list(context.partition_keys)
    templates = load_templates(paths.templates)
    displays = {} if kind is SegmentKind.SCRIPT else read_snapshot(paths, "names" if kind is SegmentKind.NAME else "developers")
    slots, missing = _slots(kind, keys, templates, displays)
    index = latest_metadata(context.instance, context.asset_key, keys)
    store = StemStore(paths.stems)

    # One TTS call per distinct signature in the run, whatever number of slots share it.
    by_signature: dict[str, list[Slot]] = {}
    indexed: dict[str, StemRecord] = {}
    contracts = {v: tts.contract(v) for v in {s.voice for s in slots}}
    for s in slots:
        sig = stem_signature(s.text, contracts[s.voice])
        by_signature.setdefault(sig, []).append(s)
        raw = (index.get(s.partition, {}).get(STEMS_META) or {}).get(s.slot)
        if raw and raw.get("signature") == sig:
            indexed.setdefault(sig, StemRecord.from_dict(raw))

    def work(sig: str) -> tuple[str, StemOutcome]:
        first = by_signature[sig][0]
        return sig, store.ensure(first.text, first.voice, tts, indexed=indexed.get(sig), force=config.force)

    with ThreadPoolExecutor(max_workers=max(1, tts.max_concurrency)) as pool:
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
