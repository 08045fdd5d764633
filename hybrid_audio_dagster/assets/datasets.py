"""Dataset assets (names, developers) and the templates asset.

Each dataset asset reads its sources — the seed file ``data/<kind>.csv`` plus every file
the inbox accepted into ``data/store/<kind>/`` — normalises and validates the rows,
writes a snapshot (slug → display text) that the stem and message assets read, and adds
the new slugs as dynamic partitions. Rejected rows are reported in the metadata.
"""


import hashlib
import json
from pathlib import Path

import dagster as dg

from hybrid_audio_dagster.core.datasets import DatasetItem, DatasetResult, normalize_items
from hybrid_audio_dagster.core.fsutil import atomic_write_text
from hybrid_audio_dagster.core.inbox import parse_file
from hybrid_audio_dagster.core.pronounce.columns import pronunciations_of
from hybrid_audio_dagster.core.pronounce.lexicon import LexiconError, apply_lexicon, load_lexicon
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.templates import SegmentKind, TemplateError, load_templates
from hybrid_audio_dagster.partitions import add_partitions, developers_partitions, names_partitions, templates_partitions
from hybrid_audio_dagster.resources.paths import ProjectPaths

KINDS = {"names": names_partitions, "developers": developers_partitions}
MAX_LISTED_KEYS = 2000


def snapshot_path(paths: ProjectPaths, kind: str) -> Path:
    return paths.datasets / f"{kind}.json"


def write_snapshot(paths: ProjectPaths, kind: str, result) -> None:
    """Atomically replace the snapshot that stems and messages read."""
    atomic_write_text(snapshot_path(paths, kind), json.dumps(result.to_dict(), ensure_ascii=False, indent=1))


def previous_items(paths: ProjectPaths, kind: str) -> list[DatasetItem]:
    """Items of the current snapshot (none before the first): their slugs are kept."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        return []
    return list(DatasetResult.from_dict(json.loads(path.read_text(encoding="utf-8"))).items)


def read_snapshot(paths: ProjectPaths, kind: str) -> dict[str, str]:
    """slug → display text of the latest materialized dataset."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        raise FileNotFoundError(f"no {kind} dataset snapshot at {path}: materialize the {kind}_dataset asset first")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {item["key"]: item["display"] for item in data["items"]}


def read_says(paths: ProjectPaths, kind: str) -> dict[str, tuple[Say, ...]]:
    """slug → the pronunciations its stems apply, for the items that have some (none
    before the first materialization)."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {item["key"]: tuple(Say(t, p) for t, p in item["say"]) for item in data["items"] if item.get("say")}


LEXICON_FILE = "lexicon.csv"  # in data/: the shared pronunciations (brands), see core/pronounce/lexicon.py


WITHDRAWN_FILE = ".withdrawn.json"  # in data/store/<kind>/: sha256 prefixes of withdrawn uploads


def stored_uploads(paths: ProjectPaths, kind: str) -> list[tuple[Path, str]]:
    """(file, sha256) of every accepted upload of ``kind``, in acceptance order (by name)."""
    store = paths.dataset_store / kind
    if not store.is_dir():
        return []
    files = sorted(p for p in store.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))
    return [(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]


def withdrawn(paths: ProjectPaths, kind: str) -> set[str]:
    path = paths.dataset_store / kind / WITHDRAWN_FILE
    return set(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else set()


def dataset_sources(paths: ProjectPaths, kind: str) -> list[Path]:
    """Seed file first, then the accepted uploads not withdrawn, in the order they were accepted."""
    sources = [p for p in (paths.data / f"{kind}.csv",) if p.exists()]
    gone = withdrawn(paths, kind)
    return sources + [p for p, sha in stored_uploads(paths, kind) if sha[:16] not in gone]


class DatasetConfig(dg.Config):
    """Roll the dataset back or forward by upload (keys of ``dataset_uploads`` partitions,
    e.g. ``names-1a2b3c4d5e6f7a8b``). Withdrawn uploads stay stored and can be restored."""

    withdraw: list[str] = []
    restore: list[str] = []


def _apply_withdrawals(paths: ProjectPaths, kind: str, config: DatasetConfig) -> set[str]:
    if not config.withdraw and not config.restore:
        return withdrawn(paths, kind)
    known = {sha[:16] for _, sha in stored_uploads(paths, kind)}
    wanted = {k.rsplit("-", 1)[-1] for k in config.withdraw}
    back = {k.rsplit("-", 1)[-1] for k in config.restore}
    unknown = sorted((wanted | back) - known)
    if unknown:
        raise dg.Failure(f"no stored {kind} upload with key(s) ending {unknown}: see the dataset_uploads partitions")
    state = (withdrawn(paths, kind) | wanted) - back
    atomic_write_text(paths.dataset_store / kind / WITHDRAWN_FILE, json.dumps(sorted(state)))
    return state


def build_dataset(paths: ProjectPaths, kind: str):
    """Parse and normalise every source of ``kind`` into one DatasetResult."""
    sources = dataset_sources(paths, kind)
    values: list[str] = []
    pronunciations: list[object] = []
    for src in sources:
        data = src.read_bytes()
        parsed = parse_file(data, filename=src.name, role=kind)
        values += parsed.values
        try:
            pronunciations += pronunciations_of(parsed, data)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
    try:
        lexicon = load_lexicon(paths.data / LEXICON_FILE)
    except LexiconError as exc:
        raise dg.Failure(f"the pronunciation lexicon is refused: {exc}") from None
    result = normalize_items(
        kind, values, source=",".join(p.name for p in sources) or "<none>", existing=previous_items(paths, kind),
        pronunciations=pronunciations,
    )
    return apply_lexicon(result, lexicon)


def sync_partitions(instance: dg.DagsterInstance, partitions_def: dg.DynamicPartitionsDefinition, keys: list[str]) -> tuple[list[str], list[str]]:
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


def _dataset_asset(kind: str):
    partitions_def = KINDS[kind]

    @dg.asset(name=f"{kind}_dataset", group_name="datasets", kinds={"csv"}, deps=["dataset_uploads"])
    def _asset(context: dg.AssetExecutionContext, config: DatasetConfig, paths: ProjectPaths) -> dg.MaterializeResult:
        gone = _apply_withdrawals(paths, kind, config)
        result = build_dataset(paths, kind)
        if not result.items:
            raise dg.Failure(f"the {kind} dataset is empty: add rows to {paths.data / (kind + '.csv')} or drop a file in {paths.inbox}")
        write_snapshot(paths, kind, result)
        new_keys, removed = sync_partitions(context.instance, partitions_def, result.keys)
        rejects_md = "\n".join(
            f"| {r.row} | {_esc(r.value)} | {r.reason} |" for r in result.rejects[:200]
        )
        preview = "\n".join(f"| `{i.key}` | {_esc(i.display)} |" for i in result.items[:50])
        said = [i for i in result.items if i.say]
        said_md = "\n".join(
            f"| `{i.key}` | {_esc(i.display)} | {_esc('; '.join(f'{t} → {p}' for t, p in i.say))} |" for i in said[:200]
        )
        return dg.MaterializeResult(
            metadata={
                "items": len(result.items),
                "rejected": len(result.rejects),
                "new_partitions": len(new_keys),
                "removed_partitions": len(removed),
                # the new keys (the inbox pipeline restricts its messages run to them), when few
                "new_keys": dg.MetadataValue.json(new_keys if len(new_keys) <= MAX_LISTED_KEYS else None),
                "fingerprint": result.fingerprint,
                "sources": dg.MetadataValue.json([p.name for p in dataset_sources(paths, kind)]),
                "uploads": dg.MetadataValue.md(
                    "| upload | file | state |\n|---|---|---|\n" + "\n".join(
                        f"| `{kind}-{sha[:16]}` | {_esc(p.name)} | {'withdrawn' if sha[:16] in gone else 'active'} |"
                        for p, sha in stored_uploads(paths, kind)
                    ) if stored_uploads(paths, kind) else "none"
                ),
                "preview": dg.MetadataValue.md("| key | display |\n|---|---|\n" + preview),
                "pronounced": len(said),
                "pronunciations": dg.MetadataValue.md(
                    "| key | display | says |\n|---|---|---|\n" + said_md if said_md else "none"
                ),
                "rejects": dg.MetadataValue.md("| row | value | reason |\n|---|---|---|\n" + rejects_md if rejects_md else "none"),
            },
            data_version=dg.DataVersion(result.fingerprint),
        )

    _asset.__doc__ = f"The normalised {kind} list; adds its slugs as `{partitions_def.name}` partitions."
    return _asset


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


names_dataset = _dataset_asset("names")
developers_dataset = _dataset_asset("developers")


@dg.asset(group_name="datasets", kinds={"json"})
def message_templates(context: dg.AssetExecutionContext, paths: ProjectPaths) -> dg.MaterializeResult:
    """Every `templates/*.json`, validated; their ids become `templates` partitions."""
    try:
        templates = load_templates(paths.templates)
    except TemplateError as exc:
        raise dg.Failure(f"invalid template(s):\n{exc}") from None
    new_keys, removed = sync_partitions(context.instance, templates_partitions, list(templates))
    rows = "\n".join(
        f"| {t.id} | {t.version} | {t.language} | {len(t.segments)} | "
        f"{', '.join(s.id for s in t.segments_of(SegmentKind.SCRIPT))} | `{t.signature()[:12]}` |"
        for t in templates.values()
    )
    return dg.MaterializeResult(
        metadata={
            "templates": len(templates),
            "new_partitions": len(new_keys),
            "removed_partitions": len(removed),
            "signatures": dg.MetadataValue.json({t.id: t.signature() for t in templates.values()}),
            "summary": dg.MetadataValue.md("| id | version | lang | segments | script segments | signature |\n|---|---|---|---|---|---|\n" + rows),
        }
    )
