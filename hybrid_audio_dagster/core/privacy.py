"""Erasing one person from a campaign (a privacy request), pure file work.

Everything that names them goes: their rows in every dataset source (the seed file, the
stored uploads, rejected copies and the reports beside them), their snapshot entry, their
messages and manifest rows, and the stems only they use. Every file is rewritten
atomically, so an interrupted erase leaves each file either as it was or without them; a
second erase finishes the job. The Dagster side (partition, event records) is the job's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_audio_dagster.core.datasets.items import DatasetItem, DatasetResult
from hybrid_audio_dagster.core.datasets.slugs import fold
from hybrid_audio_dagster.core.datasets.validation import clean_value
from hybrid_audio_dagster.core.fsutil import atomic_write_text, file_lock
from hybrid_audio_dagster.core.inbox.decode import decode_text
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.formats import choose_delimiter, pick_column
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME
from hybrid_audio_dagster.core.messages.retire import LOCK_NAME, drop_rows
from hybrid_audio_dagster.core.stems.index import Slot
from hybrid_audio_dagster.core.stems.store import StemStore, engine_dirname

REPORT_SUFFIX = ".report.json"  # beside every stored or rejected upload


@dataclass
class Erasure:
    key: str
    sources_rewritten: list[str] = field(default_factory=list)
    rows_removed: int = 0
    messages_removed: int = 0
    manifest_rows_removed: int = 0
    stems_removed: int = 0
    # what went, relative to the stem store and the output folder (for the bucket's copies)
    stem_files: list[str] = field(default_factory=list)
    message_files: list[str] = field(default_factory=list)
    manifests_rewritten: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "sources_rewritten": self.sources_rewritten,
            "rows_removed": self.rows_removed,
            "messages_removed": self.messages_removed,
            "manifest_rows_removed": self.manifest_rows_removed,
            "stems_removed": self.stems_removed,
        }

    def bucket_objects(self, layout) -> tuple[list[str], list[tuple[str, str]]]:
        """(objects to delete, (manifest relative path, object) pairs to upload again)."""
        gone = [layout.stem_object(p) for p in self.stem_files] + [layout.output_object(p) for p in self.message_files]
        return gone, [(p, layout.output_object(p)) for p in self.manifests_rewritten]


def _matches(kind: str, raw: object, target: str) -> bool:
    try:
        return fold(clean_value(kind, raw)) == target
    except (ValueError, TypeError):
        return isinstance(raw, str) and fold(raw.strip()) == target


def strip_person(text: str, suffix: str, kind: str, target: str) -> tuple[str, int]:
    """``text`` of a dataset file without the rows whose value folds to ``target``."""
    if suffix in (".csv", ".tsv"):
        delim = choose_delimiter(text, kind, suffix == ".tsv")
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delim, lineterminator="\n")
        idx: int | None = None
        removed = 0
        for record in records:
            if idx is None and any(c.strip() for c in record):
                idx = pick_column(kind, record, "column")
            elif idx is not None and idx < len(record) and _matches(kind, record[idx], target):
                removed += 1
                continue
            writer.writerow(record)
        return out.getvalue(), removed
    if suffix == ".json":
        doc = json.loads(text)
        items = None if isinstance(doc, list) else next(k for k in doc if k.casefold() in ("items", kind))
        values = doc if items is None else doc[items]

        def names_them(x: object) -> bool:
            if isinstance(x, dict):
                return any(isinstance(v, str) and _matches(kind, v, target) for v in x.values())
            return _matches(kind, x, target)

        kept = [x for x in values if not names_them(x)]
        removed = len(values) - len(kept)
        if items is None:
            return json.dumps(kept, ensure_ascii=False, indent=1), removed
        return json.dumps({**doc, items: kept}, ensure_ascii=False, indent=1), removed
    lines = text.splitlines(keepends=True)
    kept = [ln for ln in lines if not _matches(kind, ln.strip(), target)]
    return "".join(kept), len(lines) - len(kept)


def _strip_report(path: Path, target: str) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rejects = doc.get("rejects") or []
    kept = [r for r in rejects if fold(str(r.get("value", ""))) != target]
    if len(kept) == len(rejects):
        return False
    atomic_write_text(path, json.dumps({**doc, "rejects": kept}, indent=2, ensure_ascii=True) + "\n")
    return True


def erase_from_sources(files: Iterable[Path], kind: str, display: str, done: Erasure) -> None:
    target = fold(display)
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.endswith(REPORT_SUFFIX):
            if _strip_report(path, target):
                done.sources_rewritten.append(str(path))
            continue
        try:
            text, _ = decode_text(path.read_bytes())
            new, removed = strip_person(text.lstrip("\ufeff"), path.suffix.lower(), kind, target)
        except (ValueError, StopIteration, KeyError, OSError, csv.Error, InboxFileError):
            continue  # a file the parser cannot read holds no row of theirs the datasets use
        if removed:
            atomic_write_text(path, new)
            done.sources_rewritten.append(str(path))
            done.rows_removed += removed


def erase_from_snapshot(snapshot: Path, key: str, display: str) -> None:
    data = json.loads(snapshot.read_text(encoding="utf-8"))
    result = DatasetResult.from_dict(data)
    target = fold(display)
    items = tuple(i for i in result.items if i.key != key)
    rejects = tuple(r for r in result.rejects if fold(r.value) != target)
    kept = DatasetResult(kind=result.kind, source=result.source, items=items, rejects=rejects)
    atomic_write_text(snapshot, json.dumps(kept.to_dict(), ensure_ascii=False, indent=1))


def erase_messages(output_root: Path, keys: Collection[str], done: Erasure) -> None:
    """The messages and manifest rows of ``keys``, one partition folder at a time under its
    lock: the rows go in one atomic rewrite (so a partition lists all of them or none), then
    their files and timing pictures (a crash between leaves files no row lists; a second
    call removes them)."""
    if not output_root.is_dir() or not keys:
        return
    doomed = set(keys)
    folders = {m.parent for m in output_root.glob(f"*/*/{MANIFEST_NAME}")}
    folders |= {w.parent for key in doomed for w in output_root.glob(f"*/*/{key}.wav")}
    for folder in sorted(folders):
        with file_lock(folder / LOCK_NAME):
            dropped = drop_rows(folder, lambda name_key: name_key not in doomed) if (folder / MANIFEST_NAME).exists() else 0
            if dropped:
                done.manifest_rows_removed += dropped
                done.manifests_rewritten.append((folder / MANIFEST_NAME).relative_to(output_root).as_posix())
            for key in sorted(doomed):
                wav = folder / f"{key}.wav"
                if wav.is_file():
                    wav.unlink()
                    done.messages_removed += 1
                    done.message_files.append(wav.relative_to(output_root).as_posix())
                for picture in folder.glob(f".timing-{key}-*.png"):
                    picture.unlink()


def stems_only_theirs(their: Iterable[Slot], others: Iterable[Slot]) -> tuple[set[str], set[tuple[str, str]]]:
    """(texts, (engine dir, signature) pairs) of ``their`` stems that none of ``others`` uses:
    what :func:`erase_stems` may remove while everyone else keeps theirs."""
    others = list(others)
    keep_texts = {s.text for s in others}
    keep = {(engine_dirname(s.engine), s.signature) for s in others}
    their = list(their)
    return {s.text for s in their} - keep_texts, {(engine_dirname(s.engine), s.signature) for s in their} - keep


def erase_stems(store: StemStore, texts: set[str], signatures: Iterable[tuple[str, str]], done: Erasure) -> None:
    """Remove the given (engine, signature) stems, and any stored stem whose text is one of
    ``texts`` (the person's rendered name segments, under any voice)."""
    doomed = set(signatures)
    for engine_dir, sig in store.signatures():
        if (engine_dir, sig) in doomed:
            continue
        folder = store.root / engine_dir / sig[:2] / sig
        for sidecar in folder.glob("*.json"):
            try:
                text = json.loads(sidecar.read_text(encoding="utf-8"))["record"]["text"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if text in texts:
                doomed.add((engine_dir, sig))
                break
    for engine, sig in doomed:
        folder = store.signature_dir(engine, sig)
        if folder.is_dir():
            done.stem_files += [f.relative_to(store.root).as_posix() for f in folder.iterdir() if f.suffix in (".wav", ".json")]
        done.stems_removed += store.remove(engine, sig)


def item_of(snapshot: Path, key_or_display: str) -> DatasetItem | None:
    data = DatasetResult.from_dict(json.loads(snapshot.read_text(encoding="utf-8")))
    for item in data.items:
        if item.key == key_or_display:
            return item
    target = fold(key_or_display)
    return next((i for i in data.items if fold(i.display) == target), None)
