"""``dataset_uploads``: one partition per file dropped in the inbox.

The inbox sensor only decides: it asks for the partition and an ingest run naming the file
and the content hash it saw. The run validates the file with the dataset rules and either
stores it as a new version in ``data/store/<kind>/`` or moves it to ``data/rejected/`` with
a report (the partition's materialization then fails, naming the problem). The rosters
(``names_dataset`` / ``developers_dataset``) are rebuilt in the same run.
"""


import base64
import binascii
import hashlib
import os

import dagster as dg

from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.report import Report
from hybrid_audio_dagster.core.datasets.files import find_stored, reject_file, set_aside_duplicate, store_accepted, validate
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.partitions import uploads_partitions
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.defs.tags import TRIGGER_TAG


class UploadConfig(dg.Config):
    """What the sensor saw: the file's name in the inbox and its content hash. An upload over
    HTTP (the CLI) carries the bytes instead: ``content_b64`` (base64, at most ``max_bytes``
    decoded) with ``filename``; they are validated exactly like an inbox file's."""

    inbox_file: str = ""
    sha256: str
    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    content_b64: str = ""
    filename: str = ""


def _plain_name(name: str, what: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise dg.Failure(f"{what} {name!r} is not a plain file name")
    return name


def _carried(config: UploadConfig) -> bytes:
    """The bytes an upload over HTTP carried in run config (bounded before decoding)."""
    if len(config.content_b64) > 4 * (config.max_bytes // 3 + 2):
        raise dg.Failure(f"upload {config.filename!r} is larger than {config.max_bytes} bytes")
    try:
        data = base64.b64decode(config.content_b64, validate=True)
    except (binascii.Error, ValueError):
        raise dg.Failure(f"upload {config.filename!r}: content_b64 is not base64") from None
    if len(data) > config.max_bytes:
        raise dg.Failure(f"upload {config.filename!r} is larger than {config.max_bytes} bytes")
    return data


@dg.asset(partitions_def=uploads_partitions, group_name="datasets", kinds={"csv"})
def dataset_uploads(context: dg.AssetExecutionContext, config: UploadConfig, paths: ProjectPaths) -> dg.MaterializeResult:
    """An uploaded names or developers file: validated, then stored as a dataset version or rejected."""
    carried = bool(config.content_b64)
    name = _plain_name(config.filename if carried else config.inbox_file, "upload file name" if carried else "inbox file name")
    audit = run_auditor(context, paths)
    path = None if carried else paths.inbox / name
    provenance = {"inbox_file" if not carried else "uploaded_file": name, "sha256": config.sha256, "run_id": context.run.run_id,
                  "trigger": context.run.tags.get("dagster/sensor_name") or context.run.tags.get(TRIGGER_TAG, "manual")}
    stored_as = find_stored(paths, config.sha256)
    if carried:
        data = _carried(config)
    else:
        if not os.path.lexists(path):
            if stored_as:  # a re-execution of a run that already stored it
                return dg.MaterializeResult(metadata={"status": "stored", "stored_as": stored_as, "provenance": dg.MetadataValue.json(provenance)})
            raise dg.Failure(f"{name!r} is no longer in the inbox ({paths.inbox}) and was never stored")
        if path.is_symlink() or not path.is_file():
            err = InboxFileError("unreadable", "not a regular file (symbolic links and devices are not read)", filename=name)
            target = reject_file(paths, path, Report.from_error(err))
            raise dg.Failure(f"rejected {name!r}: not a regular file; moved to {target}")
        if path.stat().st_size > config.max_bytes:
            verdict = validate(path, filename=name, max_bytes=config.max_bytes, max_rows=config.max_rows)
            target = reject_file(paths, path, verdict.report)
            audit("dataset_rejected", problem=verdict.report.problem_code, sha256=config.sha256)
            raise dg.Failure(f"rejected {name!r} ({verdict.report.problem_code}): {verdict.report.problem_message}; moved to {target.name}")
        data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != config.sha256:
        raise dg.Failure(f"{name!r} changed since the sensor saw it (sha256 {sha[:12]}… ≠ {config.sha256[:12]}…); the next tick picks up the new content")
    verdict = validate(data, filename=name, max_bytes=config.max_bytes, max_rows=config.max_rows)
    report = verdict.report
    if stored_as:
        if path is not None:
            set_aside_duplicate(paths, path, report, stored_as)
        return dg.MaterializeResult(metadata={"status": "duplicate", "stored_as": stored_as, "provenance": dg.MetadataValue.json(provenance)})
    if not verdict.ok:
        target = reject_file(paths, path, report, data=data if path is None else None)
        audit("dataset_rejected", problem=report.problem_code, sha256=sha)
        raise dg.Failure(
            f"rejected {name!r} ({report.problem_code}): {report.problem_message}; moved to {target.name} with a report",
            metadata={"rejects": len(report.rejects), "problem": report.problem_code or ""},
        )
    stored = store_accepted(paths, verdict)
    if path is not None:
        path.unlink(missing_ok=True)
    items = verdict.ingested.result.items if verdict.ingested.result else ()
    audit("dataset_ingested", role=verdict.role or "", stored_as=f"{verdict.role}/{stored.name}", rows=len(items),
          rejected_rows=len(report.rejects), sha256=sha)
    preview = "\n".join(f"| {i.row} | {table_cell(i.display)} |" for i in items[:50])
    rejects = "\n".join(f"| {r.row} | {table_cell(r.value)} | {r.reason} |" for r in report.rejects[:100])
    return dg.MaterializeResult(
        metadata={
            "status": "stored",
            "role": verdict.role or "",
            "rows": len(items),
            "rejected_rows": len(report.rejects),
            "stored_as": f"{verdict.role}/{stored.name}",
            "bytes": len(data),
            "provenance": dg.MetadataValue.json(provenance),
            "preview": dg.MetadataValue.md("| row | value |\n|---|---|\n" + preview),
            "rejects": dg.MetadataValue.md("| row | value | reason |\n|---|---|---|\n" + rejects if rejects else "none"),
        }
    )
