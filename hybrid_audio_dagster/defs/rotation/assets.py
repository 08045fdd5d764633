"""``rotation_cycle``: one rotation cycle as recorded by Dagster.

The asset is **not partitioned by cycle**, deliberately: the rotation has exactly one
current cycle and a materialization is a snapshot of it (cycle, cursor, progress, the next
pairs). A partition per cycle could only be materialized while its cycle is current (a
past cycle's preview no longer exists, so re-materializing its partition would either lie
or fail) and a backfill over cycles would be meaningless. The cycle number is metadata
instead, so the UI plots it, and progress, over materializations; the audit trail keeps
every advance.
"""

from typing import Any

import dagster as dg

from hybrid_audio_dagster.core.datasets.snapshot import snapshot_fingerprint
from hybrid_audio_dagster.core.rotation.campaign import open_rotation
from hybrid_audio_dagster.core.rotation.counts import script_counts
from hybrid_audio_dagster.core.rotation.errors import RotationError
from hybrid_audio_dagster.core.rotation.ledger import read_audit
from hybrid_audio_dagster.core.rotation.report import ledger_table, preview_table, skipped_in_cycle, variants_table
from hybrid_audio_dagster.core.rotation.retry_ledger import RetryLedger
from hybrid_audio_dagster.defs.partitions import cycle_key, rotation_cycles_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

PREVIEW_ROWS = 20


class RotationCycleConfig(dg.Config):
    """Run config of the rotation status asset."""

    preview: int = PREVIEW_ROWS  # rows of the "next pairs" table


def rotation_status_metadata(paths: ProjectPaths, *, preview: int = PREVIEW_ROWS, seed: str | None = None) -> dict[str, Any]:
    """Metadata of the rotation (what the asset records); reads only, never advances."""
    rotation = open_rotation(paths, seed=seed)
    store = rotation.store
    status = store.status()
    rows = rotation.preview(preview)
    ledger = RetryLedger.for_paths(paths).read()
    ticks = ledger["ticks"]
    last_tick = ticks[-1][1] if ticks else None
    progress = 100.0 * status.cursor / status.cycle_length if status.cycle_length else 0.0
    datasets = store.datasets
    audit = read_audit(store.audit_path)
    counts = script_counts(audit)
    return {
        "cycle": status.cycle,
        "cursor": status.cursor,
        "cycle_length": status.cycle_length,
        "progress_pct": round(progress, 2),
        "remaining": status.remaining,
        "skipped": skipped_in_cycle(audit, status.cycle),
        "seed": status.seed,
        "configured_seed": status.configured_seed,
        "dataset_changed": status.dataset_changed,
        "last_pair": " × ".join(status.last) if status.last else "none yet",
        "advances": status.seq,
        "rotation_templates": dg.MetadataValue.json(list(rotation.scripts)),
        "template_counts": dg.MetadataValue.json(counts.in_cycle(status.cycle)),
        "template_counts_total": dg.MetadataValue.json(dict(sorted(counts.total.items()))),
        "template_counts_by_cycle": dg.MetadataValue.json(counts.to_dict()["by_cycle"]),
        "variants": dg.MetadataValue.md(variants_table(rotation, counts, status.cycle)),
        **({"rotation_templates_unmatched": dg.MetadataValue.json(list(rotation.unmatched))} if rotation.unmatched else {}),
        "preview": dg.MetadataValue.md(preview_table(rows)),
        "fingerprints": dg.MetadataValue.json(
            {
                "cycle_membership": status.fingerprints,
                "current": {d: ks.fingerprint for d, ks in datasets.items()},
                "snapshots": {k: snapshot_fingerprint(paths, k) for k in ("names", "developers")},
            }
        ),
        "retry_pending": len(ledger["pending"]),
        "retry_outstanding": len(ledger["outstanding"]),
        "retry_abandoned": len(ledger["abandoned"]),
        "retry_ledger": dg.MetadataValue.md(ledger_table(ledger)),
        "last_tick": dg.MetadataValue.json(last_tick or {}),
        "state_file": dg.MetadataValue.path(str(store.state_path)),
        "audit_file": dg.MetadataValue.path(str(store.audit_path)),
    }


@dg.asset(
    group_name="rotation",
    kinds={"json"},
    partitions_def=rotation_cycles_partitions,
    deps=["names_dataset", "developers_dataset", "message_templates", "rotation_advance"],
)
def rotation_cycle(context: dg.AssetExecutionContext, config: RotationCycleConfig, paths: ProjectPaths) -> dg.MaterializeResult:
    """One rotation cycle: membership, seed, progress, the next pairs, the runs its ticks
    launched, the retry ledger. Materializing it only reads the rotation state (it never
    advances it); ``rotation_advance`` runs hand pairs out."""
    if not 1 <= config.preview <= 500:
        raise dg.Failure(f"preview must be between 1 and 500 rows, got {config.preview}")
    try:
        metadata = rotation_status_metadata(paths, preview=config.preview)
    except (FileNotFoundError, RotationError) as exc:
        raise dg.Failure(f"cannot read the rotation: {exc}") from None
    key = context.partition_key
    current = cycle_key(metadata["cycle"])
    ledger = RetryLedger.for_paths(paths).read()
    launched = [
        r["run_key"]
        for _, plan in ledger["ticks"]
        for r in plan.get("requests", [])
        if cycle_key(plan.get("batch", {}).get("cycle_after", -1)) == key
    ]
    metadata["status"] = "current" if key == current else ("complete" if key < current else "not started")
    metadata["runs_launched"] = dg.MetadataValue.json(launched[-500:])
    metadata["runs_launched_count"] = len(launched)
    if key != current:  # progress fields describe the current cycle only; the counts, this one
        for label in ("cursor", "progress_pct", "remaining", "preview"):
            metadata.pop(label, None)
        by_cycle = metadata["template_counts_by_cycle"].value
        metadata["template_counts"] = dg.MetadataValue.json(by_cycle.get(str(int(key.rsplit("-", 1)[1])), {}))
    context.log.info(
        f"{key} ({metadata['status']}): {len(launched)} runs launched; current cycle {metadata['cycle']} at "
        f"{metadata['cursor'] if 'cursor' in metadata else metadata['cycle_length']}/{metadata['cycle_length']}"
    )
    return dg.MaterializeResult(metadata=metadata)
