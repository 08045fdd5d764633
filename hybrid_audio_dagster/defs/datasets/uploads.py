"""``dataset_uploads``: one partition per file dropped in the inbox or uploaded by the CLI.

The inbox sensor only decides: it asks for the partition and an ingest run naming the file
and the content hash it saw. The run validates the file with the dataset rules and either
stores it as a new version in ``data/store/<kind>/`` or moves it to ``data/rejected/`` with
a report (the partition's materialization then fails, naming the problem). The rosters
(``names_dataset`` / ``developers_dataset``) are rebuilt in the same run.

A file comes by reference or by value. By reference (``inbox_file``): a plain file name in
the inbox, read where it lies, up to ``REFERENCE_MAX_BYTES`` / ``REFERENCE_MAX_ROWS`` (a
300,000-name list is ~5.4 MB); the sensor and ``hybrid-audio datasets upload --from-inbox``
go this way. By value (``content_b64``): the CLI's upload of a small file, its bytes in the
run config, at most ``DEFAULT_MAX_BYTES`` so the run config stays small. Both are validated,
stored or rejected, and audited alike. A refusal is raised with :func:`refused`, so the CLI
exits 2 with the reason.
"""

import base64
import binascii
import hashlib
import os

import dagster as dg

from hybrid_audio_dagster.core.datasets.constants import UPLOAD_ROLES
from hybrid_audio_dagster.core.datasets.files import find_stored, reject_file, set_aside_duplicate, store_accepted, validate
from hybrid_audio_dagster.core.fsutil import safe_join
from hybrid_audio_dagster.core.inbox.errors import InboxFileError
from hybrid_audio_dagster.core.inbox.parse import DEFAULT_MAX_BYTES, REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS
from hybrid_audio_dagster.core.inbox.report import Report
from hybrid_audio_dagster.core.markdown import table_cell
from hybrid_audio_dagster.defs.cli_result import refused
from hybrid_audio_dagster.defs.partitions import uploads_partitions
from hybrid_audio_dagster.defs.resources.audit import run_auditor
from hybrid_audio_dagster.defs.resources.paths import ProjectPaths
from hybrid_audio_dagster.defs.tags import TRIGGER_TAG


class UploadConfig(dg.Config):
    """Which file and the content hash it must have.

    ``inbox_file``: a plain file name in the inbox (never a path), read there (by reference).
    ``content_b64`` with ``filename``: the bytes themselves (base64, at most
    ``DEFAULT_MAX_BYTES`` decoded, whatever ``max_bytes`` says). ``role`` (names,
    developers or suppression) overrides the role the file name says."""

    inbox_file: str = ""
    sha256: str
    max_bytes: int = REFERENCE_MAX_BYTES
    max_rows: int = REFERENCE_MAX_ROWS
    content_b64: str = ""
    filename: str = ""
    role: str = ""


def plain_name(name: str, what: str) -> str:
    """``name`` if it is a plain file name (no folder, not hidden), else a refusal."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name or name.startswith("."):
        raise refused(f"{what} {name!r} is not a plain file name", problem="unsafe_name")
    return name


def inbox_path(paths: ProjectPaths, name: str):
    """The inbox entry named ``name`` (a symbolic link is returned as is: the run rejects it)."""
    path = paths.inbox / plain_name(name, "inbox file name")
    if not path.is_symlink():
        try:
            return safe_join(paths.inbox, name)
        except ValueError as exc:
            raise refused(f"inbox file name {name!r}: {exc}", problem="unsafe_name") from None
    return path


def _carried(config: UploadConfig) -> bytes:
    """The bytes an upload over HTTP carried in run config (bounded before decoding)."""
    limit = min(config.max_bytes, DEFAULT_MAX_BYTES)
    too_big = refused(
        f"upload {config.filename!r} is larger than {limit} bytes, the most a run's config carries; "
        "put it in the inbox and ingest it from there (`hybrid-audio datasets upload --from-inbox NAME`)",
        problem="too_large",
    )
    if len(config.content_b64) > 4 * (limit // 3 + 2):
        raise too_big
    try:
        data = base64.b64decode(config.content_b64, validate=True)
    except (binascii.Error, ValueError):
        raise refused(f"upload {config.filename!r}: content_b64 is not base64", problem="not_base64") from None
    if len(data) > limit:
        raise too_big
    return data


# Declared, not materialized by a function: the UI's "Materialize all" leaves it out (an
# upload is a file someone sends, not something a bulk click can make); `ingest_job`'s op
# records each partition.
dataset_uploads = dg.AssetSpec(
    "dataset_uploads",
    partitions_def=uploads_partitions,
    group_name="datasets",
    kinds={"csv"},
    description="An uploaded names, developers or suppression file: validated, then stored as a dataset version or rejected "
    "(recorded by `ingest_job`, one partition per upload).",
)


@dg.op(name="dataset_uploads", description="Validates one upload, stores it as a dataset version or rejects it.")
def ingest_upload(context: dg.OpExecutionContext, config: UploadConfig, paths: ProjectPaths) -> None:
    """Validate the upload, store it or reject it, and record its ``dataset_uploads`` partition."""
    context.log_event(
        dg.AssetMaterialization(asset_key=dataset_uploads.key, partition=context.partition_key, metadata=_ingest(context, config, paths))
    )


def _ingest(context: dg.OpExecutionContext, config: UploadConfig, paths: ProjectPaths) -> dict:
    """The partition's metadata; a refusal raises (the run fails, naming the problem)."""
    carried = bool(config.content_b64)
    if config.role and config.role not in UPLOAD_ROLES:
        raise refused(f"unknown role {config.role!r}: names, developers or suppression", problem="unknown_role")
    role = config.role or None
    name = plain_name(config.filename, "upload file name") if carried else config.inbox_file
    path = None if carried else inbox_path(paths, name)
    audit = run_auditor(context, paths)
    provenance = {
        "inbox_file" if not carried else "uploaded_file": name,
        "sha256": config.sha256,
        "run_id": context.run.run_id,
        "trigger": context.run.tags.get("dagster/sensor_name") or context.run.tags.get(TRIGGER_TAG, "manual"),
    }
    stored_as = find_stored(paths, config.sha256)
    if carried:
        data = _carried(config)
    else:
        if not os.path.lexists(path):
            if stored_as:  # a re-execution of a run that already stored it
                return {"status": "stored", "stored_as": stored_as, "provenance": dg.MetadataValue.json(provenance)}
            raise refused(f"{name!r} is not in the inbox ({paths.inbox}) and was never stored", problem="not_in_inbox")
        if path.is_symlink() or not path.is_file():
            err = InboxFileError("unreadable", "not a regular file (symbolic links and devices are not read)", filename=name)
            target = reject_file(paths, path, Report.from_error(err))
            raise refused(f"rejected {name!r}: not a regular file; moved to {target}", problem="unreadable")
        if path.stat().st_size > config.max_bytes:
            verdict = validate(path, filename=name, role=role, max_bytes=config.max_bytes, max_rows=config.max_rows)
            target = reject_file(paths, path, verdict.report)
            audit("dataset_rejected", problem=verdict.report.problem_code, sha256=config.sha256)
            raise refused(
                f"rejected {name!r} ({verdict.report.problem_code}): {verdict.report.problem_message}; moved to {target.name}",
                problem=verdict.report.problem_code or "rejected",
            )
        data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != config.sha256:
        raise refused(
            f"{name!r} changed since it was looked at (sha256 {sha[:12]}… ≠ {config.sha256[:12]}…); ingest it again "
            "(the inbox sensor's next tick does)",
            problem="changed",
        )
    verdict = validate(data, filename=name, role=role, max_bytes=config.max_bytes, max_rows=config.max_rows)
    report = verdict.report
    if stored_as:
        if path is not None:
            set_aside_duplicate(paths, path, report, stored_as)
        return {"status": "duplicate", "stored_as": stored_as, "provenance": dg.MetadataValue.json(provenance)}
    if not verdict.ok:
        target = reject_file(paths, path, report, data=data if path is None else None)
        audit("dataset_rejected", problem=report.problem_code, sha256=sha)
        raise refused(
            f"rejected {name!r} ({report.problem_code}): {report.problem_message}; moved to {target.name} with a report",
            problem=report.problem_code or "rejected",
            rejects=len(report.rejects),
        )
    stored = store_accepted(paths, verdict)
    if path is not None:
        path.unlink(missing_ok=True)
    items = verdict.ingested.result.items if verdict.ingested.result else ()
    audit(
        "dataset_ingested",
        role=verdict.role or "",
        stored_as=f"{verdict.role}/{stored.name}",
        rows=len(items),
        rejected_rows=len(report.rejects),
        sha256=sha,
    )
    preview = "\n".join(f"| {i.row} | {table_cell(i.display)} |" for i in items[:50])
    rejects = "\n".join(f"| {r.row} | {table_cell(r.value)} | {r.reason} |" for r in report.rejects[:100])
    return {
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
