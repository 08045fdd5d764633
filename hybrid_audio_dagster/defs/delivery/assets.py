"""Delivery to GCS: ``delivered_messages`` (the sync after ``messages``) and
``bucket_consistency`` (local against bucket, with the ``in_sync`` check).

Thin over ``core/delivery``: the inventory comes from the manifests and the stem assets'
records (:mod:`hybrid_audio_dagster.defs.delivery.inventory`), the work from :class:`DeliveryResource`. With GCS
off both assets record "GCS is off" and touch nothing.
"""

import time
from contextlib import ExitStack
from pathlib import Path

import dagster as dg

from hybrid_audio_dagster.core.delivery.consistency import write_jsonl
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.core.delivery.inventory import partition_entries, stamp_manifest
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.delivery.records import SyncReport
from hybrid_audio_dagster.core.fsutil import safe_join
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, read_manifest
from hybrid_audio_dagster.core.messages.retire import lock_partitions
from hybrid_audio_dagster.core.stems.store import StemStore
from hybrid_audio_dagster.core.templates import load_templates
from hybrid_audio_dagster.defs.delivery.admin import stem_check
from hybrid_audio_dagster.defs.delivery.inventory import local_inventory, segment_categories, to_regenerate
from hybrid_audio_dagster.defs.delivery.reporting import REPORT_LOG, consistency_metadata, delivery_failure
from hybrid_audio_dagster.defs.partitions import message_partition_dims, messages_partitions
from hybrid_audio_dagster.defs.pools import MESSAGES_POOL
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource

IN_SYNC_CHECK = "in_sync"
RECORDED_OBJECTS = 20_000  # past this, `bucket list` asks a run
RECORDED_STEMS = 5_000  # past this, `bucket check` asks a run
URI_SAMPLE = 5


@dg.asset(
    partitions_def=messages_partitions,
    deps=["messages"],
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="delivery",
    kinds={"gcs"},
    pool=MESSAGES_POOL,  # it rewrites manifests: never beside a messages step
)
def delivered_messages(context: dg.AssetExecutionContext, paths: ProjectPaths, gcs: DeliveryResource) -> None:
    """Each partition's messages, the stems they use (WAV + record) and its manifest in the
    bucket, checksum-verified; unchanged objects are skipped. Each manifest row gets the
    message's ``gs://`` URI (column ``gs_uri``)."""
    keys = [str(k) for k in context.partition_keys]
    if not gcs.enabled:
        for key in keys:
            context.add_asset_metadata({"status": gcs.status_message, "uploaded": 0, "skipped": 0}, partition_key=key)
        context.log.info(gcs.status_message)
        return
    started = time.perf_counter()
    templates = load_templates(paths.templates)
    layout = gcs.layout
    parts: dict[str, tuple[Path, list[dict], list[InventoryEntry]]] = {}
    owner: dict[str, str] = {}  # object name → the first partition that ships it (counts add up)
    for key in keys:
        tid, dev = message_partition_dims(key)
        parts[key] = (safe_join(paths.output, tid, dev), [], [])
    with ExitStack() as locks:
        lock_partitions(locks, [folder for folder, _, _ in parts.values()])
        for key, (folder, rows, entries) in parts.items():
            tid, _ = message_partition_dims(key)
            rows += read_manifest(folder / MANIFEST_NAME)
            tpl = templates.get(tid)
            msgs, stems = partition_entries(
                rows, output_root=paths.output, stems_root=paths.stems, segment_categories=segment_categories(tpl) if tpl else {}
            )
            entries += msgs + stems
            for e in entries:
                owner.setdefault(layout.entry_object(e), key)
        try:
            report = gcs.sync([e for _, _, entries in parts.values() for e in entries])
            manifests: list[InventoryEntry] = []
            for key, (folder, rows, _) in parts.items():
                uris = {r["path"]: report.uris.get(layout.object_for("messages", r["path"])) for r in rows}
                rewritten, _ = stamp_manifest(folder, uris)
                rel = f"{folder.parent.name}/{folder.name}/{MANIFEST_NAME}"
                if (folder / MANIFEST_NAME).exists():
                    manifests.append(InventoryEntry("manifests", rel, folder / MANIFEST_NAME))
                    owner[layout.object_for("manifests", rel)] = key
                if rewritten:
                    context.log.debug(f"{key}: manifest stamped with gs:// URIs")
            manifest_report = gcs.sync(manifests)
        except DeliveryError as exc:
            raise delivery_failure(exc, f"delivery to {gcs.status_message.removeprefix('GCS on: ')} failed") from None
    _record(context, keys, owner, report, manifest_report, gcs)
    audit_sync(run_auditor(context, paths), gcs, report, manifest_report)
    failed = report.failed + manifest_report.failed
    context.log.info(
        f"{len(keys)} partitions to {gcs.status_message.removeprefix('GCS on: ')}: "
        f"{len(report.uploaded) + len(manifest_report.uploaded)} uploaded, "
        f"{len(report.skipped) + len(manifest_report.skipped)} unchanged, {len(failed)} failed, "
        f"{len(report.missing_local)} missing locally in {time.perf_counter() - started:.2f}s"
    )
    if failed:
        raise dg.Failure(
            f"{len(failed)} upload(s) failed; local files are untouched and the next run uploads them:\n"
            + "\n".join(f"- {e.relative_path}: {msg}" for e, msg in failed[:10]),
            metadata={"failed": len(failed), "uploaded": len(report.uploaded) + len(manifest_report.uploaded)},
        )


def audit_sync(audit, gcs, *reports) -> None:
    """One audit line per object sent, one for the objects found unchanged, one per failure."""
    bucket = gcs.bucket_name
    for report in reports:
        for up in report.uploaded:
            audit("gcs_upload", bucket=bucket, object=up.object_name, verified_by=list(up.verified_by or ()))
        for entry, error in report.failed:
            audit("gcs_upload_failed", bucket=bucket, path=entry.relative_path, error=error[:300])
    unchanged = sum(len(r.skipped) for r in reports)
    if unchanged:
        audit("gcs_unchanged", bucket=bucket, objects=unchanged)


def _record(context, keys: list[str], owner: dict[str, str], report: SyncReport, manifests: SyncReport, gcs: DeliveryResource) -> None:
    layout = gcs.layout
    per = {
        k: {
            "messages_uploaded": 0,
            "messages_skipped": 0,
            "stems_uploaded": 0,
            "stems_skipped": 0,
            "manifest": "none",
            "failed": 0,
            "missing_local": 0,
        }
        for k in keys
    }
    samples: dict[str, list[str]] = {k: [] for k in keys}
    manifest_uri: dict[str, str] = {}
    for results, action in (
        (report.uploaded, "uploaded"),
        (report.skipped, "skipped"),
        (manifests.uploaded, "uploaded"),
        (manifests.skipped, "skipped"),
    ):
        for r in results:
            key = owner.get(r.object_name)
            if key is None:
                continue
            where = layout.split(r.object_name)
            if where and where[0] == "stems":
                per[key][f"stems_{action}"] += 1
            elif r.object_name.endswith(MANIFEST_NAME):
                per[key]["manifest"] = action
                manifest_uri[key] = r.uri
            else:
                per[key][f"messages_{action}"] += 1
                if len(samples[key]) < URI_SAMPLE:
                    samples[key].append(r.uri)
    for e, _ in (*report.failed, *manifests.failed):
        if (key := owner.get(layout.entry_object(e))) is not None:
            per[key]["failed"] += 1
    for e in report.missing_local:
        if (key := owner.get(layout.entry_object(e))) is not None:
            per[key]["missing_local"] += 1
    for key in keys:
        c = per[key]
        uploaded = c["messages_uploaded"] + c["stems_uploaded"] + (c["manifest"] == "uploaded")
        skipped = c["messages_skipped"] + c["stems_skipped"] + (c["manifest"] == "skipped")
        md: dict = {
            "status": "delivered" if not c["failed"] else f"partial: {c['failed']} failed",
            "uploaded": uploaded,
            "skipped": skipped,
            **c,
            "bucket": gcs.status_message.removeprefix("GCS on: "),
        }
        if key in manifest_uri:
            md["manifest_uri"] = dg.MetadataValue.url(manifest_uri[key])
        md["gs_uris"] = dg.MetadataValue.md("\n".join(f"- `{u}`" for u in samples[key]) or "none")
        context.add_asset_metadata(md, partition_key=key)


def bucket_reads(paths: ProjectPaths, gcs: DeliveryResource) -> dict:
    """What ``hybrid-audio bucket list|check`` answer, as of this run: the bucket's listing
    under the layout's prefix and every stored stem's check (the bucket admin's own functions
    over one listing), so those reads need no run while nothing changed since."""
    objects = gcs.list_objects()
    remote = {o.name: o for o in objects}
    stems = list(StemStore(paths.stems).signatures())
    checks = {sig: stem_check(paths, gcs, engine, sig, remote) for engine, sig in stems[:RECORDED_STEMS]}
    return {
        "bucket_listing": dg.MetadataValue.json(
            {
                "layout_prefix": gcs.layout.prefix,
                "status": gcs.status_message,
                "count": len(objects),
                "complete": len(objects) <= RECORDED_OBJECTS,
                "objects": [{"name": o.name, "size": o.size, "md5": o.md5, "uri": gcs.uri(o.name)} for o in objects[:RECORDED_OBJECTS]],
            }
        ),
        "stem_checks": dg.MetadataValue.json({"complete": len(stems) <= RECORDED_STEMS, "stems": checks}),
    }


@dg.asset(
    deps=["delivered_messages"],
    group_name="delivery",
    kinds={"gcs"},
    check_specs=[
        dg.AssetCheckSpec(
            IN_SYNC_CHECK,
            asset="bucket_consistency",
            blocking=False,
            description="Every stem, message and manifest is the same locally and in the bucket.",
        )
    ],
)
def bucket_consistency(
    context: dg.AssetExecutionContext, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource
) -> dg.MaterializeResult:
    """Local stems (by category), messages and manifests against the bucket: in sync,
    local-only, remote-only, mismatched or missing everywhere. JSON lines in
    ``logs/bucket_consistency.jsonl``; ``bucket_repair_job`` fixes what it can."""
    if not gcs.enabled:
        return dg.MaterializeResult(
            metadata={"status": gcs.status_message},
            check_results=[dg.AssetCheckResult(check_name=IN_SYNC_CHECK, passed=True, metadata={"status": gcs.status_message})],
        )
    inventory = local_inventory(context.instance, paths, tts)
    try:
        report = gcs.report(inventory.entries)
    except DeliveryError as exc:
        raise delivery_failure(exc, "consistency report failed") from None
    log_path = write_jsonl(report, paths.logs / REPORT_LOG)
    regenerate = to_regenerate(report.by_state("missing"), inventory)
    context.log.info(f"bucket consistency: {report.summary()}")
    totals = report.summary()
    return dg.MaterializeResult(
        metadata={
            "status": "clean" if report.is_clean else "out of sync",
            **consistency_metadata(report, regenerate, log_path),
            **bucket_reads(paths, gcs),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=IN_SYNC_CHECK,
                passed=report.is_clean,
                metadata={**{k: v for k, v in totals.items() if k != "in_sync"}, "in_sync": totals["in_sync"]},
            )
        ],
    )
