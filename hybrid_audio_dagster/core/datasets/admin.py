"""Dataset management: what the CLI and the inbox sensor call to add, inspect and remove lists.

Layout (all under the project folders, :class:`~hybrid_audio_dagster.core.layout.ProjectDirs`):

* ``data/inbox/`` -- drop zone watched by ``inbox_sensor``; :func:`upload` can place files here.
* ``data/store/<kind>/<UTC timestamp>-<sha8>-<safe name>`` -- accepted files, one per
  accepted version (a re-upload under the same name is a new file; the old one is kept).
  A hidden sidecar ``.<stored name>.report.json`` holds the validation report. The dataset
  assets read every non-hidden file here (see :func:`hybrid_audio_dagster.core.datasets.snapshot.dataset_sources`).
* ``data/rejected/<UTC timestamp>-<sha8>-<safe name>`` plus ``<that>.report.json`` --
  refused files and the report naming every problem (row, value, reason).
* ``data/rejected/duplicates/`` -- files whose exact content was already accepted.

Validation is :func:`core.inbox.ingest` (the dataset assets' parser and normaliser) plus the
inbox's *strict* rule: a file with any refused row (other than :data:`BENIGN_REJECTS`) is
refused whole, so a half-broken export never reaches the datasets.

The per-file steps (validation, placing a file in the store or the rejected folder) live in
:mod:`hybrid_audio_dagster.core.datasets.files`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hybrid_audio_dagster.core.datasets.constants import KINDS, UPLOAD_ROLES
from hybrid_audio_dagster.core.datasets.files import (
    BENIGN_REJECTS,
    REPORT_SUFFIX,
    STORED_NAME,
    DatasetAdminError,
    Verdict,
    find_stored,
    reject_file,
    remove_stored,
    safe_basename,
    set_aside_duplicate,
    store_accepted,
    unique_path,
    validate,
)
from hybrid_audio_dagster.core.datasets.items import DatasetResult
from hybrid_audio_dagster.core.datasets.snapshot import build_dataset, snapshot_path, write_snapshot
from hybrid_audio_dagster.core.fsutil import atomic_write_bytes, safe_join
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, detect_role
from hybrid_audio_dagster.core.inbox.report import Report
from hybrid_audio_dagster.core.layout import ProjectDirs


@dataclass
class UploadResult:
    """What :func:`upload` did. ``placed`` is the inbox or store path (None when refused)."""

    report: Report
    placed: Path | None = None
    ingested: bool = False
    new_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok


def refresh_snapshot(paths: ProjectDirs, kind: str) -> DatasetResult:
    """Rebuild ``data/normalized/<kind>.json`` from every source with the dataset asset's code.

    Raises :class:`DatasetAdminError` (and writes nothing) when the dataset would be empty.
    """
    if kind not in KINDS:
        raise DatasetAdminError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    result = build_dataset(paths, kind)
    if not result.items:
        raise DatasetAdminError(f"the {kind} dataset would be empty; snapshot not written")
    write_snapshot(paths, kind, result)
    return result


def _snapshot_keys(paths: ProjectDirs, kind: str) -> set[str]:
    path = snapshot_path(paths, kind)
    if not path.exists():
        return set()
    return {i["key"] for i in json.loads(path.read_text(encoding="utf-8"))["items"]}


def ingest_verdict(paths: ProjectDirs, verdict: Verdict, *, now: datetime | None = None) -> tuple[Path, list[str]]:
    """Store an accepted file and refresh its snapshot; return (stored path, slugs new to the snapshot).

    If the rebuilt dataset cannot be written the stored file is removed again (all or nothing).
    """
    kind = verdict.role
    before = _snapshot_keys(paths, kind)
    stored = store_accepted(paths, verdict, now=now)
    if kind not in KINDS:  # the suppression list: its asset reads the store, no snapshot here
        return stored, []
    try:
        result = refresh_snapshot(paths, kind)
    except BaseException:
        remove_stored(stored)
        raise
    return stored, [k for k in result.keys if k not in before]


# ---------------------------------------------------------------------------- public API


def upload(
    paths: ProjectDirs,
    source: str | os.PathLike[str] | bytes,
    *,
    filename: str | None = None,
    role: str | None = None,
    ingest: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> UploadResult:
    """Validate a file, then place it in the inbox (default) or ingest it directly.

    Args:
        paths: the installation's folders.
        source: a path, or the file's bytes (then ``filename`` is required).
        filename: the name to file it under (default: the path's name); only its last
            component is used, reduced to safe characters.
        role: ``"names"`` / ``"developers"``; overrides the role derived from the name. In the
            inbox the file is then named ``<role>--<name>`` so the sensor sees the same role.
        ingest: store it in ``data/store`` and refresh the snapshot now instead of leaving it
            to the inbox sensor (partitions and stems then come from the next asset run).

    Returns:
        an :class:`UploadResult`; a refused file is not placed anywhere (``placed is None``)
        and its report says why.
    """
    if role is not None and role not in UPLOAD_ROLES:
        raise DatasetAdminError(f"unknown role {role!r}; expected one of {', '.join(UPLOAD_ROLES)}")
    if filename is None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise TypeError("upload(bytes) needs filename=")
        filename = os.fspath(source)
    verdict = validate(source, filename=filename, role=role, max_bytes=max_bytes, max_rows=max_rows)
    if not verdict.ok:
        return UploadResult(report=verdict.report)
    if ingest:
        stored, new_keys = ingest_verdict(paths, verdict)
        return UploadResult(report=verdict.report, placed=stored, ingested=True, new_keys=new_keys)
    name = safe_basename(filename)
    if detect_role(name) != verdict.role:
        name = f"{verdict.role}--{name}"
    target = unique_path(paths.inbox / name)
    atomic_write_bytes(target, verdict.data)  # temp file is hidden: the sensor never sees it half-written
    return UploadResult(report=verdict.report, placed=target)


def preview(
    paths: ProjectDirs,
    file: str | os.PathLike[str] | bytes,
    role: str | None = None,
    n: int = 20,
    *,
    filename: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict:
    """First ``n`` normalised items and every reject of a file, without ingesting it.

    ``paths`` is unused today (kept so every admin function has the same first argument).
    ``report.status`` is ``"rejected"`` when an upload of the file would be refused.
    """
    del paths
    verdict = validate(file, filename=filename, role=role, max_bytes=max_bytes, max_rows=max_rows)
    result = verdict.ingested.result
    return {
        "report": verdict.report.to_dict(),
        "items": [i.to_dict() for i in (result.items[:n] if result else ())],
        "total_items": len(result.items) if result else 0,
        "rejects": [r.to_dict() for r in verdict.report.rejects],
    }


def list_datasets(paths: ProjectDirs, kinds: tuple[str, ...] = UPLOAD_ROLES) -> list[dict]:
    """Every dataset source of ``kinds``: the seed files (not deletable) and the accepted uploads.

    Each entry: ``kind``, ``name`` (relative to ``data/store`` for uploads; what
    :func:`delete` takes), ``source`` (``seed``/``upload``), ``size``, ``accepted_at``,
    ``sha256``, ``items``/``rejects`` (from the stored report, when present).
    """
    out: list[dict] = []
    for kind in kinds:
        seed = paths.data / f"{kind}.csv"
        if seed.is_file():
            out.append({"kind": kind, "name": seed.name, "source": "seed", "size": seed.stat().st_size})
        folder = paths.dataset_store / kind
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            entry: dict = {"kind": kind, "name": f"{kind}/{p.name}", "source": "upload", "size": p.stat().st_size}
            m = STORED_NAME.match(p.name)
            if m:
                entry["accepted_at"] = datetime.strptime(m["ts"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).isoformat()
                entry["original_name"] = m["name"]
            sidecar = p.with_name(f".{p.name}{REPORT_SUFFIX}")
            if sidecar.is_file():
                try:
                    rep = json.loads(sidecar.read_text(encoding="utf-8"))
                    entry.update(sha256=rep.get("sha256"), items=rep.get("accepted"), rejects=len(rep.get("rejects") or ()))
                except (OSError, ValueError):
                    pass
            out.append(entry)
    return out


def delete(paths: ProjectDirs, relative_name: str, *, refresh: bool = True) -> Path:
    """Delete an accepted upload ``<kind>/<file>`` from ``data/store`` (and its report).

    Refuses absolute paths, ``..``, hidden files, folders, symlinks, seed files and anything
    not directly inside ``data/store/<kind>/``. With ``refresh`` the kind's snapshot is
    rebuilt (unless it would be empty); partitions are not removed.
    """
    if not isinstance(relative_name, str) or not relative_name:
        raise DatasetAdminError("give the dataset name as listed, e.g. 'names/<file>'")
    if os.path.isabs(relative_name) or relative_name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative_name):
        raise DatasetAdminError(f"refused: {relative_name!r} is an absolute path; give a name relative to the dataset store")
    parts = relative_name.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DatasetAdminError(f"refused: {relative_name!r} contains '..', '.' or an empty component")
    if len(parts) != 2 or parts[0] not in UPLOAD_ROLES or parts[1].startswith("."):
        raise DatasetAdminError(f"refused: {relative_name!r} is not an uploaded dataset (expected '<names|developers|suppression>/<file>')")
    unresolved = paths.dataset_store / parts[0] / parts[1]
    if unresolved.is_symlink():
        raise DatasetAdminError(f"refused: {relative_name!r} is a symbolic link")
    try:
        target = safe_join(paths.dataset_store, *parts)
    except ValueError as exc:
        raise DatasetAdminError(f"refused: {exc}") from None
    if not target.is_file():
        raise DatasetAdminError(f"no uploaded dataset {relative_name!r} in {paths.dataset_store}")
    remove_stored(target)
    if refresh and parts[0] in KINDS:  # the suppression list has no snapshot here: its asset reads the store
        try:
            refresh_snapshot(paths, parts[0])
        except DatasetAdminError:
            pass  # nothing left: the dataset asset will report the empty dataset
    return target


__all__ = [
    "BENIGN_REJECTS",
    "DatasetAdminError",
    "InboxFileError",
    "UploadResult",
    "Verdict",
    "delete",
    "find_stored",
    "ingest_verdict",
    "list_datasets",
    "preview",
    "refresh_snapshot",
    "reject_file",
    "safe_basename",
    "set_aside_duplicate",
    "store_accepted",
    "upload",
    "validate",
    "write_snapshot",
]
