"""Retiring messages whose template, developer or name left the campaign (pure).

``output/<template>/<developer>/`` folders of a removed template or developer go whole;
in the others, the files and manifest rows of removed names go. Nothing else is touched:
a manifest is rewritten only when it loses a row, other files keep their mtimes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_audio_dagster.core.fsutil import file_lock
from hybrid_audio_dagster.core.messages.manifest import MANIFEST_NAME, ManifestWriter, read_column, read_manifest, recover_spools

LOCK_NAME = ".manifest.lock"


@dataclass
class Retirement:
    partitions: list[str] = field(default_factory=list)  # "<template>/<developer>" folders removed
    files: int = 0  # message files removed (in removed folders too)
    rows: int = 0  # manifest rows removed from the partitions that stay
    manifests_rewritten: int = 0

    def to_dict(self) -> dict:
        return {"partitions": self.partitions, "files": self.files, "rows": self.rows, "manifests_rewritten": self.manifests_rewritten}


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def retire_outputs(
    output_root: str | Path, *, templates: Collection[str], developers: Collection[str], names: Collection[str]
) -> Retirement:
    """Remove every message of an item no longer in ``templates``/``developers``/``names``."""
    root = Path(output_root)
    done = Retirement()
    if not root.is_dir():
        return done
    for tdir in _dirs(root):
        for ddir in _dirs(tdir):
            if tdir.name in templates and ddir.name in developers:
                _retire_names(ddir, names, done)
                continue
            with file_lock(ddir / LOCK_NAME):
                done.files += sum(1 for p in ddir.glob("*.wav"))
                shutil.rmtree(ddir)
            done.partitions.append(f"{tdir.name}/{ddir.name}")
        if tdir.name not in templates and not any(tdir.iterdir()):
            tdir.rmdir()
    return done


def drop_rows(folder: Path, keep: Callable[[str], bool]) -> int:
    """Rewrite the folder's manifest without the rows whose name key ``keep`` refuses (call it
    under the partition's lock); how many rows went. Rows a dead writer left in a spool are
    folded in first (the spools hold names too), so nothing else is lost."""
    manifest = folder / MANIFEST_NAME
    recovered = recover_spools(manifest, folder.parents[1])
    if not recovered.spools and all(keep(k) for k in read_column(manifest, "name_key")):
        return 0  # the usual case: nothing to drop, and one column is ~10x cheaper to read than the rows
    rows = {r["name_key"]: r for r in read_manifest(manifest)}
    rows.update(recovered.rows)
    kept = [r for k, r in rows.items() if keep(k)]
    if len(kept) != len(rows) or recovered.spools:
        writer = ManifestWriter(manifest)
        for row in kept:
            writer.add(row)
        writer.commit()
        for spool in recovered.spools:
            spool.unlink(missing_ok=True)
    return len(rows) - len(kept)


def _retire_names(folder: Path, names: Collection[str], done: Retirement) -> None:
    with file_lock(folder / LOCK_NAME):
        dropped = drop_rows(folder, lambda key: key in names)
        done.rows += dropped
        done.manifests_rewritten += bool(dropped)
        # scandir, not glob: a folder holds every name's message (10,000s of entries)
        with os.scandir(folder) as entries:
            gone = [e for e in entries if e.name.endswith(".wav") and e.name[:-4] not in names and e.is_file()]
        for entry in gone:
            stem = entry.name[:-4]
            os.unlink(entry.path)
            done.files += 1
            for picture in folder.glob(f".timing-{stem}-*.png"):
                picture.unlink()


def lock_partitions(stack: ExitStack, folders: list[Path]) -> None:
    """Hold the messages asset's per-partition lock of every folder, taken in sorted order (no deadlock)."""
    for folder in sorted(set(folders), key=str):
        stack.enter_context(file_lock(folder / LOCK_NAME))
