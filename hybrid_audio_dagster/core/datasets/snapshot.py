"""The dataset snapshots and their sources, on disk.

A dataset's sources are the seed file ``data/<kind>.csv`` and every upload the inbox
accepted into ``data/store/<kind>/`` that is not withdrawn; :func:`build_dataset` turns them
into one :class:`DatasetResult`, whose snapshot (``data/normalized/<kind>.json``: slug →
display text, pronunciations) is what the stems, messages and rotation read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hybrid_audio_dagster.core.datasets.items import DatasetItem, DatasetResult
from hybrid_audio_dagster.core.datasets.normalize import normalize_items
from hybrid_audio_dagster.core.datasets.suppression import SuppressionListError, apply_suppression, read_suppression, upload_files
from hybrid_audio_dagster.core.fsutil import atomic_write_text
from hybrid_audio_dagster.core.inbox.parse import REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS, parse_file
from hybrid_audio_dagster.core.layout import ProjectDirs
from hybrid_audio_dagster.core.pronounce.columns import pronunciations_of
from hybrid_audio_dagster.core.pronounce.lexicon import LexiconError, apply_lexicon, load_lexicon
from hybrid_audio_dagster.core.pronounce.spec import Say
from hybrid_audio_dagster.core.template_fields import SegmentKind

# the dataset each kind of segment is spoken from (script segments have none)
DATASET_OF = {SegmentKind.NAME: "names", SegmentKind.DEVELOPER: "developers"}


class DatasetSourceError(ValueError):
    """A dataset source, the lexicon or a withdrawal is refused (the message says which)."""


def snapshot_path(paths: ProjectDirs, kind: str) -> Path:
    return paths.datasets / f"{kind}.json"


def write_snapshot(paths: ProjectDirs, kind: str, result) -> None:
    """Atomically replace the snapshot that stems and messages read."""
    atomic_write_text(snapshot_path(paths, kind), json.dumps(result.to_dict(), ensure_ascii=False, indent=1))


def previous_items(paths: ProjectDirs, kind: str) -> list[DatasetItem]:
    """Items of the current snapshot (none before the first): their slugs are kept."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        return []
    return list(DatasetResult.from_dict(json.loads(path.read_text(encoding="utf-8"))).items)


def read_snapshot(paths: ProjectDirs, kind: str) -> dict[str, str]:
    """slug → display text of the latest materialized dataset."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        raise FileNotFoundError(f"no {kind} dataset snapshot at {path}: materialize the {kind}_dataset asset first")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {item["key"]: item["display"] for item in data["items"]}


def read_says(paths: ProjectDirs, kind: str) -> dict[str, tuple[Say, ...]]:
    """slug → the pronunciations its stems apply, for the items that have some (none
    before the first materialization)."""
    path = snapshot_path(paths, kind)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {item["key"]: tuple(Say(t, p) for t, p in item["say"]) for item in data["items"] if item.get("say")}


LEXICON_FILE = "lexicon.csv"  # in data/: the shared pronunciations (brands), see core/pronounce/lexicon.py


WITHDRAWN_FILE = ".withdrawn.json"  # in data/store/<kind>/: sha256 prefixes of withdrawn uploads


def stored_uploads(paths: ProjectDirs, kind: str) -> list[tuple[Path, str]]:
    """(file, sha256) of every accepted upload of ``kind``, in acceptance order (by name)."""
    return [(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in upload_files(paths, kind)]


def withdrawn(paths: ProjectDirs, kind: str) -> set[str]:
    path = paths.dataset_store / kind / WITHDRAWN_FILE
    return set(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else set()


def dataset_sources(paths: ProjectDirs, kind: str) -> list[Path]:
    """Seed file first, then the accepted uploads not withdrawn, in the order they were accepted."""
    sources = [p for p in (paths.data / f"{kind}.csv",) if p.exists()]
    gone = withdrawn(paths, kind)
    return sources + [p for p, sha in stored_uploads(paths, kind) if sha[:16] not in gone]


def build_dataset(paths: ProjectDirs, kind: str) -> DatasetResult:
    """Parse and normalise every source of ``kind`` into one DatasetResult; names on the
    suppression list are left out (refused rows with reason ``suppressed``).

    Raises :class:`DatasetSourceError` when a source's pronunciations, the lexicon or the
    suppression list are refused.
    """
    sources = dataset_sources(paths, kind)
    values: list[str] = []
    pronunciations: list[object] = []
    for src in sources:
        data = src.read_bytes()
        # already validated when stored: bounded like any file read by reference
        parsed = parse_file(data, filename=src.name, role=kind, max_bytes=REFERENCE_MAX_BYTES, max_rows=REFERENCE_MAX_ROWS)
        values += parsed.values
        try:
            pronunciations += pronunciations_of(parsed, data)
        except ValueError as exc:
            raise DatasetSourceError(str(exc)) from None
    try:
        lexicon = load_lexicon(paths.data / LEXICON_FILE)
    except LexiconError as exc:
        raise DatasetSourceError(f"the pronunciation lexicon is refused: {exc}") from None
    result = normalize_items(
        kind,
        values,
        source=",".join(p.name for p in sources) or "<none>",
        existing=previous_items(paths, kind),
        pronunciations=pronunciations,
    )
    result = apply_lexicon(result, lexicon)
    if kind != "names":
        return result
    try:
        return apply_suppression(result, read_suppression(paths))[0]
    except SuppressionListError as exc:
        raise DatasetSourceError(str(exc)) from None


def apply_withdrawals(paths: ProjectDirs, kind: str, withdraw: list[str], restore: list[str]) -> set[str]:
    """Withdraw or restore uploads by key (``names-<sha16>``); returns the withdrawn prefixes."""
    if not withdraw and not restore:
        return withdrawn(paths, kind)
    known = {sha[:16] for _, sha in stored_uploads(paths, kind)}
    wanted = {k.rsplit("-", 1)[-1] for k in withdraw}
    back = {k.rsplit("-", 1)[-1] for k in restore}
    unknown = sorted((wanted | back) - known)
    if unknown:
        raise DatasetSourceError(f"no stored {kind} upload with key(s) ending {unknown}: see the dataset_uploads partitions")
    state = (withdrawn(paths, kind) | wanted) - back
    atomic_write_text(paths.dataset_store / kind / WITHDRAWN_FILE, json.dumps(sorted(state)))
    return state


def snapshot_fingerprint(paths: ProjectDirs, kind: str) -> str | None:
    """The fingerprint recorded in the ``kind`` snapshot (None before the first, or unreadable)."""
    try:
        return json.loads(snapshot_path(paths, kind).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def displays_for(paths: ProjectDirs, kind: SegmentKind) -> dict[str, str]:
    """slug → display text of the dataset ``kind``'s segments are spoken from ({} for scripts)."""
    return {} if kind is SegmentKind.SCRIPT else read_snapshot(paths, DATASET_OF[kind])
