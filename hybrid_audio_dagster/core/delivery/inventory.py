"""What the local side holds, as :class:`InventoryEntry` lists, and the file checks of repair.

Pure library (no Dagster): the Dagster layer reads the stem records and the manifests and
passes them in.

- :func:`partition_entries`: one template × developer partition's messages and the stems
  (WAV and ``.json`` sidecar) their timelines use, each stem in the category of the
  template segment it fills (``name_stems`` / ``developer_stems`` / ``script_stems``).
- :func:`stem_entries`: the WAV and sidecar of stem records, by category.
- :func:`stamp_manifest`: writes each row's ``gs://`` URI into a manifest, atomically.
- :func:`validate_file`: the "local wins when it passes validation" check (WAVs through
  ``core.audio.wav.load_wav``, sidecars by their identity hash, manifests by parquet footer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from hybrid_audio_dagster.core.audio.wav import load_wav
from hybrid_audio_dagster.core.delivery.layout import InventoryEntry
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, ManifestWriter, read_fingerprint, read_manifest
from hybrid_audio_dagster.core.stems.identity import signature_of_identity
from hybrid_audio_dagster.core.stems.store import StemRecord

__all__ = ["GS_URI_COLUMN", "partition_entries", "sidecar_relpath", "stamp_manifest", "stem_entries", "validate_file"]

GS_URI_COLUMN = "gs_uri"


def sidecar_relpath(wav_relpath: str) -> str:
    """The ``.json`` record beside a stem WAV (the stem store's layout)."""
    return str(PurePosixPath(wav_relpath).with_suffix(".json"))


def _stem_pair(category: str, stems_root: Path, rel: str) -> list[InventoryEntry]:
    side = sidecar_relpath(rel)
    return [InventoryEntry(category, rel, stems_root / rel), InventoryEntry(category, side, stems_root / side)]


def stem_entries(records: Mapping[str, Iterable[StemRecord]], stems_root: str | Path) -> list[InventoryEntry]:
    """WAV and sidecar of every record, ``records`` keyed by category."""
    root = Path(stems_root)
    out: list[InventoryEntry] = []
    for category, recs in records.items():
        for record in recs:
            out += _stem_pair(category, root, record.path)
    return out


def partition_entries(
    rows: Iterable[Mapping],
    *,
    output_root: str | Path,
    stems_root: str | Path,
    segment_categories: Mapping[str, str],
) -> tuple[list[InventoryEntry], list[InventoryEntry]]:
    """(message entries, stem entries) of one partition's manifest ``rows``.

    ``segment_categories``: the template's segment id → stem category. A timeline entry of a
    segment the template no longer has is skipped (its message is rebuilt by the next run).
    """
    out_root, stem_root = Path(output_root), Path(stems_root)
    messages: list[InventoryEntry] = []
    stems: dict[str, list[InventoryEntry]] = {}
    for row in rows:
        messages.append(InventoryEntry("messages", row["path"], out_root / row["path"]))
        try:
            timeline = json.loads(row["timeline"])
            paths = timeline["stem_paths"]
            entries = timeline["entries"]
        except (KeyError, TypeError, ValueError):
            continue
        for e in entries:
            rel = paths.get(e.get("stem_sha256"))
            category = segment_categories.get(e.get("segment_id"))
            if rel and category and rel not in stems:
                stems[rel] = _stem_pair(category, stem_root, rel)
    return messages, [e for pair in stems.values() for e in pair]


def stamp_manifest(folder: str | Path, uris: Mapping[str, str | None]) -> tuple[bool, list[dict]]:
    """Set each row's ``gs_uri`` to ``uris[row path]`` (``None`` when absent); rewrite the
    manifest (temp file, then rename) only when a value changes. The caller holds the
    partition's ``.manifest.lock``. Returns (rewritten, rows)."""
    path = Path(folder) / MANIFEST_NAME
    fingerprint, _ = read_fingerprint(path)  # a gs:// URI is no input of a message: it stays valid
    rows = read_manifest(path)
    changed = False
    for row in rows:
        uri = uris.get(row["path"])
        if row.get(GS_URI_COLUMN) != uri:
            row[GS_URI_COLUMN] = uri
            changed = True
    if changed:
        writer = ManifestWriter(path)
        try:
            for row in rows:
                writer.add(row)
            writer.commit(fingerprint=fingerprint)
        except BaseException:
            writer.abort()
            raise
    return changed, rows


def validate_file(path: Path) -> bool:
    """Whether a local (or downloaded) file is sound enough to win over the bucket's copy.

    Raises (which the repair counts as "fails validation") or returns ``False`` otherwise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".wav":
        load_wav(path.read_bytes(), str(path.name))
        return True
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        record = StemRecord.from_dict(data["record"])
        return signature_of_identity(data["identity"]) == record.signature
    if suffix == ".parquet":
        pq.read_metadata(path)
        return True
    return path.stat().st_size > 0
