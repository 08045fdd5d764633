"""Dataset assets (names, developers) and the templates asset.

Each dataset asset reads its sources — the seed file ``data/<kind>.csv`` plus every file
the inbox accepted into ``data/store/<kind>/`` — normalises and validates the rows,
writes a snapshot (slug → display text) that the stem and message assets read, and adds
the new slugs as dynamic partitions. Rejected rows are reported in the metadata.
"""

import dagster as dg

from hybrid_audio_dagster.core.datasets.admin import list_datasets
from hybrid_audio_dagster.core.datasets.snapshot import (
    DatasetSourceError,
    apply_withdrawals,
    build_dataset,
    dataset_sources,
    stored_uploads,
    write_snapshot,
)
from hybrid_audio_dagster.core.datasets.suppression import SUPPRESSED
from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.core.template_fields import SegmentKind
from hybrid_audio_dagster.core.templates import TemplateError, load_templates
from hybrid_audio_dagster.defs.partitions import add_partitions, developers_partitions, names_partitions, templates_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

KINDS = {"names": names_partitions, "developers": developers_partitions}
MAX_LISTED_KEYS = 2000


class DatasetConfig(dg.Config):
    """Roll the dataset back or forward by upload (keys of ``dataset_uploads`` partitions,
    e.g. ``names-1a2b3c4d5e6f7a8b``). Withdrawn uploads stay stored and can be restored."""

    withdraw: list[str] = []
    restore: list[str] = []


def sync_partitions(
    instance: dg.DagsterInstance, partitions_def: dg.DynamicPartitionsDefinition, keys: list[str]
) -> tuple[list[str], list[str]]:
    """Make the dynamic partitions exactly ``keys``: (added, removed).

    A removed item's partition goes, so the batch, the UI and backfills stop seeing it; its
    messages are retired by the ``retired_outputs`` asset.
    """
    existing = instance.get_dynamic_partitions(partitions_def.name)
    wanted = set(keys)
    have = set(existing)
    removed = [k for k in existing if k not in wanted]
    added = add_partitions(instance, partitions_def.name, [k for k in keys if k not in have])
    for key in removed:
        instance.delete_dynamic_partition(partitions_def.name, key)
    return added, removed


def build_roster(instance: dg.DagsterInstance, paths: ProjectPaths, kind: str, config: DatasetConfig) -> tuple[dict, str]:
    """Rebuild the ``kind`` roster: snapshot written, partitions synced; (metadata, fingerprint)."""
    partitions_def = KINDS[kind]
    try:
        gone = apply_withdrawals(paths, kind, config.withdraw, config.restore)
        result = build_dataset(paths, kind)
    except DatasetSourceError as exc:
        raise dg.Failure(str(exc)) from None
    if not result.items:
        raise dg.Failure(f"the {kind} dataset is empty: add rows to {paths.data / (kind + '.csv')} or drop a file in {paths.inbox}")
    write_snapshot(paths, kind, result)
    new_keys, removed = sync_partitions(instance, partitions_def, result.keys)
    rejects_md = "\n".join(f"| {r.row} | {table_cell(r.value)} | {r.reason} |" for r in result.rejects[:200])
    preview = "\n".join(f"| `{i.key}` | {table_cell(i.display)} |" for i in result.items[:50])
    said = [i for i in result.items if i.say]
    said_md = "\n".join(
        f"| `{i.key}` | {table_cell(i.display)} | {table_cell('; '.join(f'{t} → {p}' for t, p in i.say))} |" for i in said[:200]
    )
    metadata = {
        "items": len(result.items),
        "rejected": len(result.rejects),
        "suppressed": sum(r.reason == SUPPRESSED for r in result.rejects),
        "new_partitions": len(new_keys),
        "removed_partitions": len(removed),
        # the new keys (the inbox pipeline restricts its messages run to them), when few
        "new_keys": dg.MetadataValue.json(new_keys if len(new_keys) <= MAX_LISTED_KEYS else None),
        "fingerprint": result.fingerprint,
        "sources": dg.MetadataValue.json([p.name for p in dataset_sources(paths, kind)]),
        # what `hybrid-audio datasets list` shows, recorded so it needs no run
        "listing": dg.MetadataValue.json(list_datasets(paths, (kind,))),
        "uploads": dg.MetadataValue.md(
            "| upload | file | state |\n|---|---|---|\n"
            + "\n".join(
                f"| `{kind}-{sha[:16]}` | {table_cell(p.name)} | {'withdrawn' if sha[:16] in gone else 'active'} |"
                for p, sha in stored_uploads(paths, kind)
            )
            if stored_uploads(paths, kind)
            else "none"
        ),
        "preview": dg.MetadataValue.md("| key | display |\n|---|---|\n" + preview),
        "pronounced": len(said),
        "pronunciations": dg.MetadataValue.md("| key | display | says |\n|---|---|---|\n" + said_md if said_md else "none"),
        "rejects": dg.MetadataValue.md("| row | value | reason |\n|---|---|---|\n" + rejects_md if rejects_md else "none"),
    }
    return metadata, result.fingerprint


def _dataset_asset(kind: str):
    # the names leave out whoever the suppression list holds (that asset first retires what they have)
    deps = ["dataset_uploads", "suppression"] if kind == "names" else ["dataset_uploads"]

    @dg.asset(name=f"{kind}_dataset", group_name="datasets", kinds={"csv"}, deps=deps)
    def _asset(context: dg.AssetExecutionContext, config: DatasetConfig, paths: ProjectPaths) -> dg.MaterializeResult:
        metadata, fingerprint = build_roster(context.instance, paths, kind, config)
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(fingerprint))

    _asset.__doc__ = f"The normalised {kind} list; adds its slugs as `{KINDS[kind].name}` partitions."
    return _asset


names_dataset = _dataset_asset("names")
developers_dataset = _dataset_asset("developers")


def build_templates(instance: dg.DagsterInstance, paths: ProjectPaths) -> dict:
    """Validate every template and sync the ``templates`` partitions; the metadata to record."""
    try:
        templates = load_templates(paths.templates)
    except TemplateError as exc:
        raise dg.Failure(f"invalid template(s):\n{exc}") from None
    new_keys, removed = sync_partitions(instance, templates_partitions, list(templates))
    rows = "\n".join(
        f"| {t.id} | {t.version} | {t.language} | {len(t.segments)} | "
        f"{', '.join(s.id for s in t.segments_of(SegmentKind.SCRIPT))} | `{t.signature()[:12]}` |"
        for t in templates.values()
    )
    return {
        "templates": len(templates),
        "new_partitions": len(new_keys),
        "removed_partitions": len(removed),
        "signatures": dg.MetadataValue.json({t.id: t.signature() for t in templates.values()}),
        "summary": dg.MetadataValue.md(
            "| id | version | lang | segments | script segments | signature |\n|---|---|---|---|---|---|\n" + rows
        ),
    }


@dg.asset(group_name="datasets", kinds={"json"})
def message_templates(context: dg.AssetExecutionContext, paths: ProjectPaths) -> dg.MaterializeResult:
    """Every `templates/*.json`, validated; their ids become `templates` partitions."""
    return dg.MaterializeResult(metadata=build_templates(context.instance, paths))
