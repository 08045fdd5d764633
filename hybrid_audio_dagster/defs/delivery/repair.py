"""``bucket_repair_job``: verify and repair the bucket against the local inventory.

Re-uploads local-only and mismatched objects when the local file passes validation (local
wins; WAVs through ``core.audio.wav.load_wav``), downloads remote-only objects of known
partitions (and the bucket's copy of a local file that fails validation), and reports what
is on neither side with the stem/messages partitions to materialize: the next batch's
stems run makes those (it finds them stale), so repair itself never calls TTS. Run config
``dry_run: true`` (the default) only reports the plan.
"""

import json
from contextlib import ExitStack

import dagster as dg

from hybrid_audio_dagster.core.delivery.consistency import write_jsonl
from hybrid_audio_dagster.core.delivery.errors import DeliveryError
from hybrid_audio_dagster.core.delivery.inventory import validate_file
from hybrid_audio_dagster.core.fsutil import atomic_write_text
from hybrid_audio_dagster.core.messages.retire import lock_partitions
from hybrid_audio_dagster.defs.delivery.inventory import local_inventory, to_regenerate
from hybrid_audio_dagster.defs.delivery.reporting import REPORT_LOG, consistency_metadata, delivery_failure
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.gcs import DeliveryResource
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.resources.tts import TTSResource

REPAIR_LOG = "bucket_repair.jsonl"


class BucketRepairConfig(dg.Config):
    """Run config of ``bucket_repair_job``."""

    dry_run: bool = True  # only report what would be uploaded, downloaded and regenerated


@dg.op(description="Verify the bucket against the local inventory and repair what differs (or plan it: dry_run).")
def bucket_repair(
    context: dg.OpExecutionContext, config: BucketRepairConfig, paths: ProjectPaths, tts: TTSResource, gcs: DeliveryResource
) -> dg.Output[dict]:
    if not gcs.enabled:
        context.log.info(gcs.status_message)
        return dg.Output({"enabled": False}, metadata={"status": gcs.status_message})
    inventory = local_inventory(context.instance, paths, tts)
    with ExitStack() as locks:
        if not config.dry_run:  # downloads replace messages and manifests: no messages run meanwhile
            lock_partitions(locks, [paths.output / t / d for t in inventory.templates for d in inventory.developers])
        try:
            result = gcs.repair(inventory.entries, dry_run=config.dry_run, validate=validate_file, locate=inventory.locate)
        except DeliveryError as exc:
            raise delivery_failure(exc, "bucket repair failed") from None
    audit = run_auditor(context, paths)
    for o in result.outcomes:
        audit(
            "gcs_repair",
            bucket=gcs.bucket_name,
            action=o.action.kind,
            status=o.status,
            object=o.action.item.object_name,
            dry_run=config.dry_run,
        )
    counts = result.counts()
    regenerate = to_regenerate(result.missing_everywhere, inventory)
    lines = [
        json.dumps(
            {
                "kind": o.action.kind,
                "status": o.status,
                "category": o.action.item.category,
                "object_name": o.action.item.object_name,
                "state": o.action.item.state,
                "detail": o.detail,
                "uri": o.uri,
            },
            sort_keys=True,
        )
        for o in result.outcomes
    ]
    atomic_write_text(paths.logs / REPAIR_LOG, "".join(f"{line}\n" for line in lines))
    final = result.after or result.before
    log_path = write_jsonl(result.after, paths.logs / REPORT_LOG) if result.after is not None else None
    actions = [f"- {o.action.kind} ({o.status}) `{o.action.item.object_name}`: {o.detail}" for o in result.outcomes[:100]]
    md = {
        "dry_run": config.dry_run,
        "counts": dg.MetadataValue.json(counts),
        "actions": dg.MetadataValue.md("\n".join(actions) or "nothing to do"),
        "log": dg.MetadataValue.path(str(paths.logs / REPAIR_LOG)),
        **{
            f"after_{k}" if result.after is not None else f"before_{k}": v
            for k, v in consistency_metadata(final, regenerate, log_path).items()
        },
    }
    context.log.info(f"bucket repair ({'dry run' if config.dry_run else 'done'}): {counts}")
    if regenerate:
        context.log.warning(
            "on neither side, regenerate by materializing: " + "; ".join(f"{a} {', '.join(p[:20])}" for a, p in regenerate.items())
        )
    if not result.ok:
        failed = [o for o in result.outcomes if o.status == "failed"]
        raise dg.Failure(
            f"{len(failed)} repair action(s) failed:\n" + "\n".join(f"- {o.action.item.object_name}: {o.detail}" for o in failed[:10]),
            metadata=md,
        )
    return dg.Output({"counts": counts, "regenerate": regenerate, "clean": bool(final and final.is_clean)}, metadata=md)


@dg.job(
    description="Verify and repair the GCS bucket against the local stems, messages and manifests "
    "(config dry_run, default true); reports what must be regenerated through the stem assets."
)
def bucket_repair_job():
    bucket_repair()
