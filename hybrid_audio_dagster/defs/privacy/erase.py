"""``erase_name_job``: one command erases a person completely (a privacy request).

A run, like every change to data: it removes the person's rows from every dataset source,
their snapshot entry, messages and manifest rows, the stems only they use, their ``names``
partition, and the event history of the assets whose metadata shows names (re-recorded by
the next batch at no TTS cost). Nothing in its logs or metadata names them.
"""

import hashlib

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import dataset_sources, snapshot_path
from hybrid_audio_dagster.core.privacy import Erasure, erase_from_snapshot, erase_from_sources, erase_messages, erase_stems, item_of
from hybrid_audio_dagster.core.stems.store import engine_dirname
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.defs.cli_result import refused
from hybrid_audio_dagster.defs.partitions import names_partitions
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource
from hybrid_audio_dagster.defs.stems.lookup import CampaignStems
from hybrid_audio_dagster.defs.tags import TRIGGER_TAG

HISTORY_NAMING_PEOPLE = ("names_dataset", "dataset_uploads", "name_stems", "messages", "rotation_outlook", "bucket_consistency")


class EraseConfig(dg.Config):
    """Who to erase: a name's slug (its partition key) or its text."""

    name: str


@dg.op(description="Erases one person: dataset rows, snapshot entry, messages, manifest rows, their stems, their partition.")
def erase_name(
    context: dg.OpExecutionContext, config: EraseConfig, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource
) -> dg.Output[dict]:
    snapshot = snapshot_path(paths, "names")
    item = item_of(snapshot, config.name) if snapshot.exists() else None
    if item is None:
        raise refused("no such name in the names dataset (give its slug or its text exactly as listed)", problem="unknown_name")
    done = Erasure(item.key)
    campaign = CampaignStems(context.instance, paths, tts).load(SegmentKind.NAME, [item.key])
    slots, _ = campaign.slots(SegmentKind.NAME, [item.key], {item.key: item.display})
    signatures = {(engine_dirname(s.engine), s.signature) for s in slots}
    signatures |= {(engine_dirname(r.engine), r.signature) for r in campaign.records[SegmentKind.NAME].get(item.key, [])}
    texts = {s.text for s in slots} | {r.text for r in campaign.records[SegmentKind.NAME].get(item.key, [])}

    files = [*dataset_sources(paths, "names")]
    for folder in (paths.dataset_store / "names", paths.rejected, paths.rejected / "duplicates"):
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.is_file() and p not in files)
    erase_from_sources(files, "names", item.display, done)
    erase_from_snapshot(snapshot, item.key, item.display)
    erase_messages(paths.output, {item.key}, done)
    erase_stems(campaign.store, texts, signatures, done)
    bucket_deleted = gcs.forget(done, paths.output)  # the bucket's copies go too (GCS on)
    if item.key in context.instance.get_dynamic_partitions(names_partitions.name):
        context.instance.delete_dynamic_partition(names_partitions.name, item.key)
    # Dagster's event log can't drop one partition's records (sqlite and Postgres storage
    # raise NotImplementedError), and these assets' metadata previews show names: their
    # history goes whole. The next batch records them again, with no TTS call (the stem
    # store's sidecars answer) and no message rewritten.
    wiped = [k for k in HISTORY_NAMING_PEOPLE if context.instance.get_latest_materialization_event(dg.AssetKey(k))]
    context.instance.wipe_assets([dg.AssetKey(k) for k in wiped])
    summary = {
        **done.to_dict(),
        "key": hashlib.sha256(item.key.encode()).hexdigest()[:12],
        "sources_rewritten": len(done.sources_rewritten),
        "history_wiped": ", ".join(wiped),
        "bucket_objects_deleted": bucket_deleted,
    }
    context.log.info(f"erased one person: {summary}")
    run_auditor(context, paths)(
        "erase", key_hash=summary["key"], **{k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}
    )
    return dg.Output(summary, metadata={k: v for k, v in summary.items()})


@dg.job(description="Erases one person completely (config: ops.erase_name.config.name = slug or text).", tags={TRIGGER_TAG: "privacy"})
def erase_name_job() -> None:
    erase_name()
