"""Throwaway project folders: seed datasets and (some of) the shipped templates."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from hybrid_audio_dagster.defs.resources.paths import ProjectPaths

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, header: str, values: Sequence[str]) -> None:
    """A one-column CSV with every value quoted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(f'"{v}"' for v in values) + "\n", encoding="utf-8")


def make_project(
    root: Path, names: Sequence[str], developers: Sequence[str], *, variants: bool = False, templates: Sequence[str] | None = None
) -> ProjectPaths:
    """A project folder with seed datasets and the shipped templates (only ``templates``, by id,
    when given).

    The templates' variants are left out unless ``variants``: the counts most tests and the
    bench assert (messages, partitions, TTS calls) are those of one voice per template; the
    variants' own costs and outputs are tested in tests/defs/stems/test_variants.py."""
    write_csv(root / "data" / "names.csv", "name", names)
    write_csv(root / "data" / "developers.csv", "developer", developers)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    for source in sorted((PROJECT_ROOT / "templates").glob("*.json")):
        if templates is not None and source.stem not in templates:
            continue
        data = json.loads(source.read_text(encoding="utf-8"))
        if not variants and data.pop("variants", None) is not None:
            (root / "templates" / source.name).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        else:
            shutil.copyfile(source, root / "templates" / source.name)
    return ProjectPaths(root=str(root))
